package web

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"blog/internal/api"
	"blog/internal/comment"
	"blog/internal/post"
)

// apiClient calls the posts and comments APIs. It is the only way this
// service reaches data.
type apiClient struct {
	posts, comments *url.URL
	http            *http.Client
	token           string
	proxyKey        string // sent in api.ProxyKeyHeader when set
}

// problemError is a 4xx answer of an API: its problem document, whose field
// errors a form can show.
type problemError struct{ api.Problem }

func (e *problemError) Error() string { return fmt.Sprintf("api: %d %s", e.Status, e.Detail) }

// status returns the HTTP status an API error stands for: the problem's
// status, or 503 when the API was unreachable or failed.
func status(err error) int {
	var p *problemError
	if errors.As(err, &p) {
		return p.Status
	}
	return http.StatusServiceUnavailable
}

// call sends a JSON request and decodes a JSON answer into out (if not nil).
// Writes carry the token when one is configured. It returns the answer's
// headers, a *problemError for a 4xx, or an error wrapping errUnavailable.
// idempotencyKey carries, in a request's context, the Idempotency-Key to
// send with the API call made for it (a form's one-time token).
type idempotencyKey struct{}

// withIdempotencyKey returns ctx whose POSTs to an API carry key.
func withIdempotencyKey(ctx context.Context, key string) context.Context {
	return context.WithValue(ctx, idempotencyKey{}, key)
}

// clientIPKey carries the browser's address in a request's context, from
// withClientIP to the API calls made for it.
type clientIPKey struct{}

// withClientIP remembers each request's client address, so the APIs' per-
// client limits apply to each browser rather than to this service.
func withClientIP(proxies *api.Proxies, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), clientIPKey{}, proxies.ClientIP(r))))
	})
}

func (c *apiClient) call(ctx context.Context, method string, base *url.URL, path string, q url.Values, in, out any) (http.Header, error) {
	u := *base
	u.Path = strings.TrimRight(base.Path, "/") + path
	u.RawQuery = q.Encode()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if ip, ok := ctx.Value(clientIPKey{}).(string); ok {
		req.Header.Set("X-Forwarded-For", ip)
	}
	if c.proxyKey != "" {
		req.Header.Set(api.ProxyKeyHeader, c.proxyKey)
	}
	if key, ok := ctx.Value(idempotencyKey{}).(string); ok && method == http.MethodPost {
		req.Header.Set(api.IdempotencyKeyHeader, strconv.Quote(key))
	}
	if c.token != "" && method != http.MethodGet {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	res, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %s %s: %w", errUnavailable, method, u.Redacted(), err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, 32<<20))
	if err != nil {
		return nil, fmt.Errorf("%w: %s %s: %w", errUnavailable, method, u.Redacted(), err)
	}
	switch {
	case res.StatusCode >= 200 && res.StatusCode < 300:
		if out != nil && res.StatusCode != http.StatusNoContent {
			if err := json.Unmarshal(data, out); err != nil {
				return nil, fmt.Errorf("%w: %s %s: decode: %w", errUnavailable, method, u.Redacted(), err)
			}
		}
		return res.Header, nil
	case res.StatusCode >= 400 && res.StatusCode < 500:
		p := &problemError{}
		if mt, _, _ := mime.ParseMediaType(res.Header.Get("Content-Type")); mt != "application/problem+json" || json.Unmarshal(data, &p.Problem) != nil {
			p.Problem = api.Problem{Title: http.StatusText(res.StatusCode)}
		}
		p.Status = res.StatusCode
		if ra := res.Header.Get("Retry-After"); ra != "" && p.Detail == "" {
			p.Detail = "Try again in " + ra + " seconds."
		}
		return res.Header, p
	default:
		return nil, fmt.Errorf("%w: %s %s: status %d", errUnavailable, method, u.Redacted(), res.StatusCode)
	}
}

func (c *apiClient) listPosts(ctx context.Context, after string, limit int) ([]post.Post, string, error) {
	var ps []post.Post
	h, err := c.call(ctx, "GET", c.posts, "/posts", pageQuery(after, limit), nil, &ps)
	if err != nil {
		return nil, "", err
	}
	return ps, nextCursor(h), nil
}

func (c *apiClient) getPost(ctx context.Context, id string) (post.Post, error) {
	var p post.Post
	_, err := c.call(ctx, "GET", c.posts, "/posts/"+url.PathEscape(id), nil, nil, &p)
	return p, err
}

func (c *apiClient) createPost(ctx context.Context, in post.NewPost) (post.Post, error) {
	var p post.Post
	_, err := c.call(ctx, "POST", c.posts, "/posts", nil, in, &p)
	return p, err
}

func (c *apiClient) updatePost(ctx context.Context, id string, in post.PatchPost) (post.Post, error) {
	var p post.Post
	_, err := c.call(ctx, "PATCH", c.posts, "/posts/"+url.PathEscape(id), nil, in, &p)
	return p, err
}

func (c *apiClient) deletePost(ctx context.Context, id string) error {
	_, err := c.call(ctx, "DELETE", c.posts, "/posts/"+url.PathEscape(id), nil, nil, nil)
	return err
}

func (c *apiClient) listComments(ctx context.Context, postID, after string, limit int) ([]comment.Comment, string, error) {
	var cs []comment.Comment
	h, err := c.call(ctx, "GET", c.comments, "/comments/"+url.PathEscape(postID), pageQuery(after, limit), nil, &cs)
	if err != nil {
		return nil, "", err
	}
	return cs, nextCursor(h), nil
}

func (c *apiClient) createComment(ctx context.Context, postID, text string) (comment.Comment, error) {
	var cm comment.Comment
	_, err := c.call(ctx, "POST", c.comments, "/comments", nil, comment.NewComment{PostID: postID, Text: text}, &cm)
	return cm, err
}

func (c *apiClient) deleteComment(ctx context.Context, id string) error {
	_, err := c.call(ctx, "DELETE", c.comments, "/comments/"+url.PathEscape(id), nil, nil, nil)
	return err
}

// ready asks an API's readiness probe.
func (c *apiClient) ready(ctx context.Context, base *url.URL) error {
	var v map[string]string
	_, err := c.call(ctx, "GET", base, "/readyz", nil, nil, &v)
	return err
}

func pageQuery(after string, limit int) url.Values {
	q := url.Values{}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if after != "" {
		q.Set("after", after)
	}
	return q
}

// nextCursor returns the after parameter of a Link header's rel="next"
// URL, or "" on the last page.
func nextCursor(h http.Header) string {
	for _, v := range h.Values("Link") {
		for link := range strings.SplitSeq(v, ",") {
			target, params, ok := strings.Cut(link, ";")
			if !ok || !isNext(params) {
				continue
			}
			target = strings.Trim(strings.TrimSpace(target), "<>")
			u, err := url.Parse(target)
			if err != nil {
				continue
			}
			return u.Query().Get("after")
		}
	}
	return ""
}

func isNext(params string) bool {
	for p := range strings.SplitSeq(params, ";") {
		k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
		if strings.EqualFold(k, "rel") && slices.Contains(strings.Fields(strings.Trim(v, `"`)), "next") {
			return true
		}
	}
	return false
}
