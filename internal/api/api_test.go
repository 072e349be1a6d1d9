package api_test

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"blog/internal/api"
)

type input struct {
	Title  string  `json:"title"`
	PostID string  `json:"postId"`
	Note   *string `json:"note"`
}

func TestUnmarshal(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		status  int    // 0: accepted
		pointer string // expected field pointer, if a validation problem
	}{
		{name: "ok", body: `{"title":"a","postId":"b"}`},
		{name: "ok-whitespace", body: " \n{\"title\":\"a\"}\n "},
		{name: "empty", body: ``, status: 400},
		{name: "blank", body: "  \n", status: 400},
		{name: "array", body: `[{"title":"a"}]`, status: 400},
		{name: "string", body: `"title"`, status: 400},
		{name: "null", body: `null`, status: 400},
		{name: "syntax", body: `{"title":}`, status: 400},
		{name: "truncated", body: `{"title":"a"`, status: 400},
		{name: "two-objects", body: `{"title":"a"}{"title":"b"}`, status: 400},
		{name: "trailing-garbage", body: `{"title":"a"} x`, status: 400},
		{name: "unknown-field", body: `{"title":"a","author":"me"}`, status: 400, pointer: "#/author"},
		{name: "server-owned-id", body: `{"_id":"672a2b5ab2c87aa17bd7b49b","title":"a"}`, status: 400, pointer: "#/_id"},
		{name: "server-owned-createdAt", body: `{"title":"a","createdAt":"2020-01-01T00:00:00Z"}`, status: 400, pointer: "#/createdAt"},
		{name: "operator-object", body: `{"postId":{"$ne":null}}`, status: 400, pointer: "#/postId"},
		{name: "number-for-string", body: `{"title":42}`, status: 400, pointer: "#/title"},
		{name: "invalid-utf8", body: "{\"title\":\"\xff\xfe\"}", status: 400},
		{name: "duplicate-key-400", body: `{"title":"a","postId":"b","title":"c"}`, status: 400, pointer: "#/title"},
		{name: "duplicate-key-other-case-400", body: `{"title":"a","Title":"c"}`, status: 400, pointer: "#/Title"},
		{name: "duplicate-key-null-400", body: `{"note":"a","note":null}`, status: 400, pointer: "#/note"},
		{name: "same-key-in-two-objects-is-not-a-duplicate", body: `{"title":"a","postId":"b","note":"title"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var v input
			err := api.Unmarshal([]byte(tt.body), &v)
			if tt.status == 0 {
				if err != nil {
					t.Fatalf("rejected a valid body: %v", err)
				}
				return
			}
			p, ok := err.(*api.Problem)
			if !ok {
				t.Fatalf("got %v (%T), want a *api.Problem", err, err)
			}
			if p.Status != tt.status {
				t.Errorf("status %d, want %d", p.Status, tt.status)
			}
			if tt.pointer != "" && (len(p.Errors) != 1 || p.Errors[0].Pointer != tt.pointer) {
				t.Errorf("errors %+v, want one for %s", p.Errors, tt.pointer)
			}
		})
	}
}

func TestDecodeLimitsAndMediaType(t *testing.T) {
	tests := []struct {
		name        string
		contentType string
		body        string
		status      int
	}{
		{name: "json", contentType: "application/json", body: `{"title":"a"}`, status: 200},
		{name: "json-charset", contentType: "application/json; charset=utf-8", body: `{"title":"a"}`, status: 200},
		{name: "json-suffix", contentType: "application/merge-patch+json", body: `{"title":"a"}`, status: 200},
		{name: "no-content-type-415", body: `{"title":"a"}`, status: 415},
		{name: "text-plain-415", contentType: "text/plain;charset=UTF-8", body: `{"title":"a"}`, status: 415},
		{name: "malformed-content-type-415", contentType: "application/json; ;", body: `{"title":"a"}`, status: 415},
		{name: "form-415", contentType: "application/x-www-form-urlencoded", body: `title=a`, status: 415},
		{name: "too-large-413", contentType: "application/json", body: `{"title":"` + strings.Repeat("x", 200) + `"}`, status: 413},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if _, err := api.Decode[input](w, r, 100); err != nil {
					api.WriteError(w, r, slog.New(slog.DiscardHandler), err)
					return
				}
				w.WriteHeader(http.StatusOK)
			})
			r := httptest.NewRequest("POST", "/x", strings.NewReader(tt.body))
			if tt.contentType != "" {
				r.Header.Set("Content-Type", tt.contentType)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tt.status {
				t.Fatalf("status %d, want %d; body %s", w.Code, tt.status, w.Body)
			}
			if tt.status != 200 && w.Header().Get("Content-Type") != "application/problem+json" {
				t.Errorf("content type %q, want application/problem+json", w.Header().Get("Content-Type"))
			}
		})
	}
}

func TestRouterProblems(t *testing.T) {
	rt := api.NewRouter(slog.New(slog.DiscardHandler))
	rt.HandleFunc("GET /things/{id}", func(w http.ResponseWriter, r *http.Request) {
		api.WriteJSON(w, 200, map[string]string{"id": r.PathValue("id")})
	})
	rt.HandleFunc("GET /boom", func(w http.ResponseWriter, r *http.Request) { panic("bug") })
	srv := httptest.NewServer(rt)
	defer srv.Close()

	tests := []struct {
		name, method, path string
		status             int
		allow              string
	}{
		{name: "found", method: "GET", path: "/things/1", status: 200},
		{name: "unknown-path-404", method: "GET", path: "/nope", status: 404},
		{name: "wrong-method-405", method: "DELETE", path: "/things/1", status: 405, allow: "GET, HEAD"},
		{name: "panic-500", method: "GET", path: "/boom", status: 500},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, srv.URL+tt.path, nil)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			body, _ := io.ReadAll(res.Body)
			if res.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", res.StatusCode, tt.status, body)
			}
			if tt.status == 200 {
				return
			}
			if ct := res.Header.Get("Content-Type"); ct != "application/problem+json" {
				t.Errorf("content type %q", ct)
			}
			var p api.Problem
			if err := json.Unmarshal(body, &p); err != nil || p.Status != tt.status || p.Title == "" {
				t.Errorf("problem %+v (%v) from %s", p, err, body)
			}
			if strings.Contains(string(body), "bug") {
				t.Errorf("internal text leaked: %s", body)
			}
			if tt.allow != "" && res.Header.Get("Allow") != tt.allow {
				t.Errorf("Allow %q, want %q", res.Header.Get("Allow"), tt.allow)
			}
		})
	}
}

// FuzzUnmarshal: any bytes decode into the request type or give a 4xx
// problem; nothing panics and nothing else comes out.
func FuzzUnmarshal(f *testing.F) {
	for _, s := range []string{`{"title":"a","postId":"b"}`, `{"postId":{"$ne":null}}`, `[]`, `{"title":"a"}{}`, "{\"title\":\"\xff\"}", `{"_id":"x"}`, `{"note":null}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var v input
		err := api.Unmarshal(body, &v)
		if err == nil {
			return
		}
		p, ok := err.(*api.Problem)
		if !ok || p.Status < 400 || p.Status > 499 {
			t.Fatalf("%q gave %v (%T)", body, err, err)
		}
	})
}

func TestProblemSizeCapped(t *testing.T) {
	// Finding 7: 6,000 unknown query parameters made a 377 KB problem.
	q := url.Values{}
	for i := range 6000 {
		q.Set(fmt.Sprintf("p%d%s", i, strings.Repeat("x", 300)), "1")
	}
	r := httptest.NewRequest("GET", "/things?"+q.Encode(), nil)
	_, err := api.PageQuery(r)
	if err == nil {
		t.Fatal("unknown parameters accepted")
	}
	w := httptest.NewRecorder()
	api.WriteError(w, r, slog.New(slog.DiscardHandler), err)
	if w.Code != 400 || w.Body.Len() > 8<<10 {
		t.Fatalf("status %d, %d bytes; want 400 within 8 KB", w.Code, w.Body.Len())
	}
	var p api.Problem
	if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil || len(p.Errors) != api.MaxFieldErrors || !strings.Contains(p.Detail, "6000") {
		t.Fatalf("problem %d errors, detail %q, err %v", len(p.Errors), p.Detail, err)
	}
}
