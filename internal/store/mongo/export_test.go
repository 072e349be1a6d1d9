package mongo

// SetDeleteChunk sets how many comments one transaction of a post's
// comment deletion removes (DeleteByPost and the cascade), so tests reach
// several chunks with few comments. Set it before db is used.
func SetDeleteChunk(db *DB, n int) { db.deleteChunk = n }
