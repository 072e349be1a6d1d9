package post

import "blog/internal/fault"

// Limits on a post's fields, in characters (Unicode code points), the one
// unit of every limit: the API, its OpenAPI document (JSON Schema's
// maxLength counts code points too), the web forms and the README.
const (
	MaxTitleChars   = 300
	MaxContentChars = 100_000
)

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
