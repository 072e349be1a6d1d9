package comment

import "blog/internal/jsonenc"

// AppendJSON appends the comment's JSON, as the API serves it, to dst:
// the fields in declaration order, timestamps in the seed's toISOString
// form (jsonenc.TimeLayout).
func (c Comment) AppendJSON(dst []byte) []byte {
	dst = append(dst, `{"_id":`...)
	dst = jsonenc.AppendString(dst, c.ID)
	dst = append(dst, `,"postId":`...)
	dst = jsonenc.AppendString(dst, c.PostID)
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

// MarshalJSON encodes the comment as AppendJSON does, so every encoder
// gives the seed's timestamps.
func (c Comment) MarshalJSON() ([]byte, error) {
	return c.AppendJSON(make([]byte, 0, 160+len(c.Text))), nil
}
