package comment

import "blog/internal/fault"

// MaxTextChars limits a comment's text, in characters (Unicode code
// points), the unit of every limit in the API, its OpenAPI document, the
// web form and the README.
const MaxTextChars = 10_000

// NewComment is the body of POST /comments.
type NewComment struct {
	PostID string `json:"postId"`
	Text   string `json:"text"`
}

// Validate returns a validation problem listing every invalid field, or nil.
func (n NewComment) Validate() error {
	problems := fault.Fields{}
	problems.CheckID("#/postId", n.PostID)
	problems.CheckText("#/text", n.Text, MaxTextChars, 0)
	return problems.Err()
}

// PatchComment is the body of PATCH /comments/{id}.
type PatchComment struct {
	Text *string `json:"text"`
}

// Validate checks that text is present and acceptable.
func (p PatchComment) Validate() error {
	problems := fault.Fields{}
	if p.Text == nil {
		problems["#/text"] = "is required and must not be blank"
	} else {
		problems.CheckText("#/text", *p.Text, MaxTextChars, 0)
	}
	return problems.Err()
}
