package post

import (
	"strconv"

	"blog/internal/jsonenc"
)

// AppendJSON appends the post's JSON, as the API serves it, to dst: the
// fields in declaration order, timestamps in the seed's toISOString form
// (jsonenc.TimeLayout), comments an array even when nil.
func (p Post) AppendJSON(dst []byte) []byte {
	dst = append(dst, `{"_id":`...)
	dst = jsonenc.AppendString(dst, p.ID)
	dst = append(dst, `,"title":`...)
	dst = jsonenc.AppendString(dst, p.Title)
	dst = append(dst, `,"content":`...)
	dst = jsonenc.AppendString(dst, p.Content)
	dst = append(dst, `,"comments":[`...)
	for i, c := range p.Comments {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = c.AppendJSON(dst)
	}
	dst = append(dst, `],"commentCount":`...)
	dst = strconv.AppendInt(dst, int64(p.CommentCount), 10)
	dst = append(dst, `,"createdAt":`...)
	dst = jsonenc.AppendTime(dst, p.CreatedAt)
	if p.UpdatedAt != nil {
		dst = append(dst, `,"updatedAt":`...)
		dst = jsonenc.AppendTime(dst, *p.UpdatedAt)
	}
	return append(dst, '}')
}

// MarshalJSON encodes the post as AppendJSON does, so every encoder gives
// the seed's timestamps.
func (p Post) MarshalJSON() ([]byte, error) {
	return p.AppendJSON(make([]byte, 0, 512+128*len(p.Comments)+len(p.Content))), nil
}

// AppendJSON appends the embedded comment's JSON to dst.
func (c Comment) AppendJSON(dst []byte) []byte {
	dst = append(dst, `{"_id":`...)
	dst = jsonenc.AppendString(dst, c.ID)
	dst = append(dst, `,"text":`...)
	dst = jsonenc.AppendString(dst, c.Text)
	dst = append(dst, `,"createdAt":`...)
	dst = jsonenc.AppendTime(dst, c.CreatedAt)
	if c.UpdatedAt != nil {
		dst = append(dst, `,"updatedAt":`...)
		dst = jsonenc.AppendTime(dst, *c.UpdatedAt)
	}
	return append(dst, '}')
}

// MarshalJSON encodes the comment as AppendJSON does.
func (c Comment) MarshalJSON() ([]byte, error) {
	return c.AppendJSON(make([]byte, 0, 128+len(c.Text))), nil
}
