// Package postapi is the posts service's HTTP API: the handlers of /posts
// and its OpenAPI document, over the post domain's Store, with the post
// cache (package live) in front of GET /posts/{id}.
package postapi

import (
	"context"
	_ "embed"
	"log/slog"
	"net/http"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"blog/internal/api"
	"blog/internal/live"
	"blog/internal/page"
	"blog/internal/post"
)

// OpenAPI is the service's OpenAPI 3.1 document, served at /openapi.json
// and held against the registered routes by a test.
//
//go:embed openapi.json
var OpenAPI []byte

// Handler serves the posts API over a post.Store.
type Handler struct {
	Store post.Store
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
	// given to the live.Hub that follows the posts feed (Hub.Cache), which
	// invalidates it.
	Cache *live.Cache
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

func (h *Handler) create(w http.ResponseWriter, r *http.Request) error {
	in, err := api.DecodeValid[post.NewPost](w, r)
	if err != nil {
		return err
	}
	p := post.Post{
		ID:        bson.NewObjectID().Hex(),
		Title:     in.Title,
		Content:   in.Content,
		Comments:  []post.Comment{},
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
	fetch := func(ctx context.Context, q page.Query) ([]post.Post, error) {
		posts, err := h.Store.List(ctx, q)
		for i := range posts {
			posts[i] = normalize(posts[i])
		}
		return posts, err
	}
	return api.WriteBudgetPage(w, r, q, h.ListBytes, fetch, post.Post.Cursor)
}

func (h *Handler) get(w http.ResponseWriter, r *http.Request) error {
	id, err := api.PathID(r, "id")
	if err != nil {
		return err
	}
	e, gen := h.Cache.Lookup(id)
	if e == nil {
		p, err := h.Store.Get(r.Context(), id)
		if err != nil {
			return err
		}
		e = live.Encode(p)
		h.Cache.Put(id, gen, e)
	}
	e.Serve(w, r)
	return nil
}

func (h *Handler) update(w http.ResponseWriter, r *http.Request) error {
	id, err := api.PathID(r, "id")
	if err != nil {
		return err
	}
	in, err := api.DecodeValid[post.PatchPost](w, r)
	if err != nil {
		return err
	}
	p, err := h.Store.Update(r.Context(), id, post.Patch(in), h.now())
	h.Cache.Forget(id)
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
	h.Cache.Forget(id)
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// normalize makes a post's JSON shape independent of the store: comments is
// always an array, never null.
func normalize(p post.Post) post.Post {
	if p.Comments == nil {
		p.Comments = []post.Comment{}
	}
	return p
}
