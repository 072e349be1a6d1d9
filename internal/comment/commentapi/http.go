// Package commentapi is the comments service's HTTP API: the handlers of
// /comments and its OpenAPI document, over the comment domain's Store.
package commentapi

import (
	"context"
	_ "embed"
	"log/slog"
	"net/http"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"blog/internal/api"
	"blog/internal/comment"
	"blog/internal/page"
)

// OpenAPI is the service's OpenAPI 3.1 document, served at /openapi.json
// and held against the registered routes by a test.
//
//go:embed openapi.json
var OpenAPI []byte

// Handler serves the comments API over a comment.Store.
type Handler struct {
	Store comment.Store
	Log   *slog.Logger
	// Now is the clock, replaceable in tests; times are kept to the
	// millisecond because MongoDB stores no finer.
	Now func() time.Time
	// Auth guards edits and deletes (nil: none). Creating a comment stays
	// public, as on any blog, and is guarded by Throttle (nil: unlimited).
	Auth, Throttle api.Middleware
	// Idempotency replays the answer to a retried POST /comments that
	// carries an Idempotency-Key (nil: the header is ignored).
	Idempotency api.Middleware
	// ListBytes is the byte budget of a GET /comments/{postId} page; 0
	// means api.DefaultListBytes.
	ListBytes int
	// PostExists reports whether a post exists (nil error) or not
	// (comment.ErrPostNotFound), so that listing the comments of a post that does
	// not exist answers 404, as creating one on it does. It is asked only
	// when a listing comes back empty, so a busy post costs nothing more.
	// Nil: an unknown post lists as empty (the seed's behaviour).
	PostExists func(ctx context.Context, postID string) error
}

// Register adds the comments routes to rt. GET /comments/{id} is the
// seed's GET /comments/:postId and lists the comments of the post {id};
// PATCH and DELETE on the same path address one comment by its own id.
// OpenAPI forbids two templates of one shape (/comments/{postId} beside
// /comments/{id}), so the three share one and the document says, per
// operation, what the id names.
func (h *Handler) Register(rt *api.Router) {
	// A replayed answer costs no rate-limit token: idempotency goes first.
	rt.HandleFunc("POST /comments", h.Idempotency.Wrap(h.Throttle.Wrap(api.Errors(h.Log, h.create))))
	rt.HandleFunc("GET /comments/{id}", api.Errors(h.Log, h.list))
	rt.HandleFunc("PATCH /comments/{id}", h.Auth.Wrap(api.Errors(h.Log, h.update)))
	rt.HandleFunc("DELETE /comments/{id}", h.Auth.Wrap(api.Errors(h.Log, h.delete)))
}

func (h *Handler) now() time.Time { return api.Now(h.Now) }

func (h *Handler) create(w http.ResponseWriter, r *http.Request) error {
	in, err := api.DecodeValid[comment.NewComment](w, r)
	if err != nil {
		return err
	}
	c := comment.Comment{ID: bson.NewObjectID().Hex(), PostID: in.PostID, Text: in.Text, CreatedAt: h.now()}
	if err := h.Store.Create(r.Context(), c); err != nil {
		return err
	}
	w.Header().Set("Location", "/comments/"+c.PostID)
	api.WriteJSON(w, http.StatusCreated, c)
	return nil
}

func (h *Handler) list(w http.ResponseWriter, r *http.Request) error {
	postID, err := api.PathID(r, "id")
	if err != nil {
		return err
	}
	q, err := api.PageQuery(r)
	if err != nil {
		return err
	}
	fetch := func(ctx context.Context, q page.Query) ([]comment.Comment, error) {
		cs, err := h.Store.ListByPost(ctx, postID, q)
		if err == nil && len(cs) == 0 && h.PostExists != nil {
			err = h.PostExists(ctx, postID)
		}
		return cs, err
	}
	return api.WriteBudgetPage(w, r, q, h.ListBytes, fetch, comment.Comment.Cursor)
}

func (h *Handler) update(w http.ResponseWriter, r *http.Request) error {
	id, err := api.PathID(r, "id")
	if err != nil {
		return err
	}
	in, err := api.DecodeValid[comment.PatchComment](w, r)
	if err != nil {
		return err
	}
	c, err := h.Store.Update(r.Context(), id, *in.Text, h.now())
	if err != nil {
		return err
	}
	api.WriteJSON(w, http.StatusOK, c)
	return nil
}

func (h *Handler) delete(w http.ResponseWriter, r *http.Request) error {
	id, err := api.PathID(r, "id")
	if err != nil {
		return err
	}
	if _, err := h.Store.Delete(r.Context(), id); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
