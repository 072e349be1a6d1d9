package post

import (
	_ "embed"
	"log/slog"
	"net/http"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"blog/internal/api"
	"blog/internal/page"
)

// Limits on a post's fields, documented in the README and the API.
const (
	MaxTitleChars   = 300
	MaxContentBytes = 100 << 10
)

// OpenAPI is the service's OpenAPI 3.1 document, served at /openapi.json
// and held against the registered routes by a test.
//
//go:embed openapi.json
var OpenAPI []byte

// Handler serves the posts API over a Store.
type Handler struct {
	Store Store
	Log   *slog.Logger
	// Now is the clock, replaceable in tests; times are kept to the
	// millisecond because MongoDB stores no finer.
	Now func() time.Time
	// Auth guards every write (nil: none); reads are public.
	Auth api.Middleware
	// Cache, when set, serves recently read posts from memory; it must be
	// given to the Hub that follows the posts feed (Hub.Cache), which
	// invalidates it.
	Cache *Cache
}

// Register adds the posts routes to rt.
func (h *Handler) Register(rt *api.Router) {
	rt.HandleFunc("POST /posts", h.Auth.Wrap(h.create))
	rt.HandleFunc("GET /posts", h.list)
	rt.HandleFunc("GET /posts/{id}", h.get)
	rt.HandleFunc("PATCH /posts/{id}", h.Auth.Wrap(h.update))
	rt.HandleFunc("DELETE /posts/{id}", h.Auth.Wrap(h.delete))
}

func (h *Handler) now() time.Time { return api.Now(h.Now) }

// NewPost is the body of POST /posts.
type NewPost struct {
	Title   string `json:"title"`
	Content string `json:"content"`
}

// Validate returns a validation problem listing every invalid field, or nil.
func (n NewPost) Validate() error {
	problems := map[string]string{}
	api.CheckText(problems, "#/title", n.Title, MaxTitleChars, 0)
	api.CheckText(problems, "#/content", n.Content, 0, MaxContentBytes)
	return api.Invalid(problems)
}

// PatchPost is the body of PATCH /posts/{id}: absent fields stay as they are.
type PatchPost struct {
	Title   *string `json:"title"`
	Content *string `json:"content"`
}

// Validate checks the fields present and that at least one is.
func (p PatchPost) Validate() error {
	problems := map[string]string{}
	if p.Title == nil && p.Content == nil {
		problems["#"] = "must set title or content"
	}
	if p.Title != nil {
		api.CheckText(problems, "#/title", *p.Title, MaxTitleChars, 0)
	}
	if p.Content != nil {
		api.CheckText(problems, "#/content", *p.Content, 0, MaxContentBytes)
	}
	return api.Invalid(problems)
}

func (h *Handler) create(w http.ResponseWriter, r *http.Request) {
	in, err := api.DecodeValid[NewPost](w, r)
	if err != nil {
		api.WriteError(w, r, h.Log, err)
		return
	}
	p := Post{
		ID:        bson.NewObjectID().Hex(),
		Title:     in.Title,
		Content:   in.Content,
		Comments:  []Comment{},
		CreatedAt: h.now(),
	}
	if err := h.Store.Create(r.Context(), p); err != nil {
		api.WriteError(w, r, h.Log, err)
		return
	}
	w.Header().Set("Location", "/posts/"+p.ID)
	api.WriteJSON(w, http.StatusCreated, p)
}

func (h *Handler) list(w http.ResponseWriter, r *http.Request) {
	q, err := api.PageQuery(r)
	if err != nil {
		api.WriteError(w, r, h.Log, err)
		return
	}
	posts, err := h.Store.List(r.Context(), api.Fetch(q))
	if err != nil {
		api.WriteError(w, r, h.Log, err)
		return
	}
	writePosts(w, r, q, posts)
}

// writePosts is api.WritePage for posts, encoding them with AppendJSON in
// one buffer: a page of 20 posts with their comments is 70 KB or more, and
// encoding/json re-checks every MarshalJSON result, which took a quarter of
// the list's CPU time.
func writePosts(w http.ResponseWriter, r *http.Request, q page.Query, posts []Post) {
	if len(posts) > q.Limit {
		posts = posts[:q.Limit]
		api.SetNextLink(w, r, q.Limit, posts[len(posts)-1].Cursor())
	}
	n := 2
	for _, p := range posts {
		n += 256 + len(p.Content) + 192*len(p.Comments)
	}
	buf := make([]byte, 0, n)
	buf = append(buf, '[')
	for i, p := range posts {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = p.AppendJSON(buf)
	}
	buf = append(buf, ']', '\n')
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(buf)
}

func (h *Handler) get(w http.ResponseWriter, r *http.Request) {
	id, err := api.PathID(r, "id")
	if err != nil {
		api.WriteError(w, r, h.Log, err)
		return
	}
	e, gen := h.Cache.lookup(id)
	if e == nil {
		p, err := h.Store.Get(r.Context(), id)
		if err != nil {
			api.WriteError(w, r, h.Log, err)
			return
		}
		e = encodePost(p)
		h.Cache.put(id, gen, e)
	}
	e.serve(w, r)
}

func (h *Handler) update(w http.ResponseWriter, r *http.Request) {
	id, err := api.PathID(r, "id")
	if err != nil {
		api.WriteError(w, r, h.Log, err)
		return
	}
	in, err := api.DecodeValid[PatchPost](w, r)
	if err != nil {
		api.WriteError(w, r, h.Log, err)
		return
	}
	p, err := h.Store.Update(r.Context(), id, Patch{Title: in.Title, Content: in.Content}, h.now())
	h.Cache.forget(id)
	if err != nil {
		api.WriteError(w, r, h.Log, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, normalize(p))
}

func (h *Handler) delete(w http.ResponseWriter, r *http.Request) {
	id, err := api.PathID(r, "id")
	if err != nil {
		api.WriteError(w, r, h.Log, err)
		return
	}
	err = h.Store.Delete(r.Context(), id)
	h.Cache.forget(id)
	if err != nil {
		api.WriteError(w, r, h.Log, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// normalize makes a post's JSON shape independent of the store: comments is
// always an array, never null.
func normalize(p Post) Post {
	if p.Comments == nil {
		p.Comments = []Comment{}
	}
	return p
}
