package api_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"blog/internal/api"
	"blog/internal/fault"
)

// TestErrorsAnswersTheHandlersError: api.Errors is the one place a
// handler's error becomes a problem response; a handler that succeeds
// answers itself.
func TestErrorsAnswersTheHandlersError(t *testing.T) {
	type answer struct {
		Status      int
		ContentType string
		Detail      string
	}
	for _, tc := range []struct {
		name   string
		err    error
		want   answer
		logged bool
	}{
		{"nil-answers-itself", nil, answer{http.StatusTeapot, "", ""}, false},
		{"problem-as-is", api.NewProblem(http.StatusConflict, "busy"), answer{409, "application/problem+json", "busy"}, false},
		{"not-found-kind-404", fault.New(fault.NotFound, "no such post"), answer{404, "application/problem+json", "no such post"}, false},
		{"invalid-kind-400", fault.New(fault.Invalid, "bad"), answer{400, "application/problem+json", "bad"}, false},
		{"fields-400-validation", fault.Fields{"#/title": "is required"}, answer{400, "application/problem+json", "See errors for what to change."}, false},
		{"other-500-logged-not-shown", errors.New("disk on fire"), answer{500, "application/problem+json", "The server could not complete the request; it has been logged."}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			log := slog.New(slog.NewTextHandler(&logs, nil))
			h := api.Errors(log, func(w http.ResponseWriter, r *http.Request) error {
				if tc.err == nil {
					w.WriteHeader(http.StatusTeapot)
				}
				return tc.err
			})
			rec := httptest.NewRecorder()
			h(rec, httptest.NewRequest("GET", "/x", nil))
			got := answer{Status: rec.Code, ContentType: rec.Header().Get("Content-Type")}
			if rec.Body.Len() > 0 {
				var p api.Problem
				if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
					t.Fatalf("body %q: %v", rec.Body, err)
				}
				got.Detail = p.Detail
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("answer (-want +got):\n%s", diff)
			}
			if logged := strings.Contains(logs.String(), "disk on fire"); logged != tc.logged {
				t.Errorf("logged the cause: %v, want %v (log: %q)", logged, tc.logged, logs.String())
			}
		})
	}
}
