package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// ServeDoc registers GET /openapi.json answering with doc, a service's
// OpenAPI 3.1 document.
func (rt *Router) ServeDoc(doc []byte) {
	rt.HandleFunc("GET /openapi.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(doc)
	})
}

// DocumentedRoutes lists an OpenAPI document's operations as ServeMux
// patterns ("GET /posts/{id}"), sorted, so a test can compare them with
// Router.Routes and keep the document true.
func DocumentedRoutes(doc []byte) ([]string, error) {
	var d struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(doc, &d); err != nil {
		return nil, fmt.Errorf("openapi: %w", err)
	}
	var out []string
	for path, ops := range d.Paths {
		for method := range ops {
			switch method {
			case "get", "put", "post", "patch", "delete", "head", "options":
				out = append(out, strings.ToUpper(method)+" "+path)
			}
		}
	}
	slices.Sort(out)
	return out, nil
}
