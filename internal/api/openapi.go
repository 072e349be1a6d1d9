package api

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
)

// ServeDoc registers GET /openapi.json answering with doc, a service's
// OpenAPI 3.1 document, and GET on each problem type URI other than
// about:blank (TypeValidation), answering with its description, as RFC 9457
// (section 3.1.1) asks of a type URI that can be dereferenced.
func (rt *Router) ServeDoc(doc []byte) {
	rt.HandleFunc("GET /openapi.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(doc)
	})
	rt.HandleFunc("GET "+TypeValidation, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = io.WriteString(w, validationDoc)
	})
}

// validationDoc describes the problem type TypeValidation.
const validationDoc = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Validation problem</title></head>
<body>
<h1>Your request is not valid</h1>
<p>A <code>400</code> answer of type <code>/problems/validation</code> means the request's
JSON body, query or path holds values the service does not accept. Nothing was stored.</p>
<p>Its <code>errors</code> member lists each one as <code>{"pointer", "detail"}</code>:
<code>pointer</code> is an RFC 6901 JSON Pointer, in its URI fragment form, to a member of
the body (<code>#/title</code>), a query parameter (<code>#/limit</code>) or a path
parameter (<code>#/id</code>); <code>detail</code> says what to change. Lengths are counted in
characters (Unicode code points).</p>
</body></html>
`

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
