package post

import (
	"context"
	_ "embed"
	"log/slog"
	"net/http"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"blog/internal/api"
	"blog/internal/fault"
	"blog/internal/page"
)

// Limits on a post's fields, in characters (Unicode code points), the one
// unit of every limit: the API, its OpenAPI document (JSON Schema's
// maxLength counts code points too), the web forms and the README.
const (
	MaxTitleChars   = 300
	MaxContentChars = 100_000
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
	// Idempotency replays the answer to a retried POST /posts that carries
	// an Idempotency-Key (nil: the header is ignored). It runs after Auth,
	// so only an authorised client sees a replay.
	Idempotency api.Middleware
	// ListBytes is the byte budget of a GET /posts page; 0 means
	// api.DefaultListBytes.
	ListBytes int
	// Cache, when set, serves recently read posts from memory; it must be
	// given to the Hub that follows the posts feed (Hub.Cache), which
	// invalidates it.
	Cache *Cache
}

// Register adds the posts routes to rt.
func (h *Handler) Register(rt *api.Router) {
	rt.HandleFunc("POST /posts", h.Auth.Wrap(h.Idempotency.Wrap(api.Errors(h.Log, h.create))))
	rt.HandleFunc("GET /posts", api.Errors(h.Log, h.list))
	rt.HandleFunc("GET /posts/{id}", api.Errors(h.Log, h.get))
	rt.HandleFunc("PATCH /posts/{id}", h.Auth.Wrap(api.Errors(h.Log, h.update)))
	rt.HandleFunc("DELETE /posts/{id}", h.Auth.Wrap(api.Errors(h.Log, h.delete)))
}

func (h *Handler) now() time.Time { return api.Now(h.Now) }

// NewPost is the body of POST /posts.
type NewPost struct {
	Title   string `json:"title"`
	Content string `json:"content"`
}

// Validate returns a validation problem listing every invalid field, or nil.
func (n NewPost) Validate() error {
	problems := fault.Fields{}
	problems.CheckTitle("#/title", n.Title, MaxTitleChars)
	problems.CheckText("#/content", n.Content, MaxContentChars, 0)
	return problems.Err()
}

// PatchPost is the body of PATCH /posts/{id}: absent fields stay as they are.
type PatchPost struct {
	Title   *string `json:"title"`
	Content *string `json:"content"`
}

// Validate checks the fields present and that at least one is.
func (p PatchPost) Validate() error {
	problems := fault.Fields{}
	if p.Title == nil && p.Content == nil {
		problems["#"] = "must set title or content"
	}
	if p.Title != nil {
		problems.CheckTitle("#/title", *p.Title, MaxTitleChars)
	}
	if p.Content != nil {
		problems.CheckText("#/content", *p.Content, MaxContentChars, 0)
	}
	return problems.Err()
}

func (h *Handler) create(w http.ResponseWriter, r *http.Request) error {
	in, err := api.DecodeValid[NewPost](w, r)
	if err != nil {
		return err
	}
	p := Post{
		ID:        bson.NewObjectID().Hex(),
		Title:     in.Title,
		Content:   in.Content,
		Comments:  []Comment{},
		CreatedAt: h.now(),
	}
	if err := h.Store.Create(r.Context(), p); err != nil {
		return err
	}
	w.Header().Set("Location", "/posts/"+p.ID)
	api.WriteJSON(w, http.StatusCreated, p)
	return nil
}

func (h *Handler) list(w http.ResponseWriter, r *http.Request) error {
	q, err := api.PageQuery(r)
	if err != nil {
		return err
	}
	fetch := func(ctx context.Context, q page.Query) ([]Post, error) {
		posts, err := h.Store.List(ctx, q)
		for i := range posts {
			posts[i] = normalize(posts[i])
		}
		return posts, err
	}
	return api.WriteBudgetPage(w, r, q, h.ListBytes, fetch, Post.Cursor)
}

func (h *Handler) get(w http.ResponseWriter, r *http.Request) error {
	id, err := api.PathID(r, "id")
	if err != nil {
		return err
	}
	e, gen := h.Cache.lookup(id)
	if e == nil {
		p, err := h.Store.Get(r.Context(), id)
		if err != nil {
			return err
		}
		e = encodePost(p)
		h.Cache.put(id, gen, e)
	}
	e.serve(w, r)
	return nil
}

func (h *Handler) update(w http.ResponseWriter, r *http.Request) error {
	id, err := api.PathID(r, "id")
	if err != nil {
		return err
	}
	in, err := api.DecodeValid[PatchPost](w, r)
	if err != nil {
		return err
	}
	p, err := h.Store.Update(r.Context(), id, Patch(in), h.now())
	h.Cache.forget(id)
	if err != nil {
		return err
	}
	api.WriteJSON(w, http.StatusOK, normalize(p))
	return nil
}

func (h *Handler) delete(w http.ResponseWriter, r *http.Request) error {
	id, err := api.PathID(r, "id")
	if err != nil {
		return err
	}
	err = h.Store.Delete(r.Context(), id)
	h.Cache.forget(id)
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// normalize makes a post's JSON shape independent of the store: comments is
// always an array, never null.
func normalize(p Post) Post {
	if p.Comments == nil {
		p.Comments = []Comment{}
	}
	return p
}
