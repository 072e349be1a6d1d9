package sqlite

import (
	"context"
	"testing"

	"blog/internal/changes"
	"blog/internal/post"
)

// TestCascadeSavesCheckpointOnlyWhenItActed checks that the cascade does not
// write its checkpoint for a batch of post updates (one per synced comment,
// none its business) right after a save, and always does for a batch that
// deletes a post.
func TestCascadeSavesCheckpointOnlyWhenItActed(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, t.TempDir(), testOptions)
	sink := db.PostCascade()
	const consumer = "comments.posts"
	apply := func(name string, tok string, evs ...changes.Event[post.Post]) {
		t.Helper()
		if err := sink.Apply(ctx, consumer, changes.Batch[post.Post]{Events: evs, Token: changes.Token(tok)}); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	want := func(name, tok string) {
		t.Helper()
		got, err := sink.Checkpoint(ctx, consumer)
		if err != nil || string(got) != tok {
			t.Fatalf("%s: checkpoint %q (%v), want %q", name, got, err, tok)
		}
	}
	apply("first", "1")
	want("first batch saved", "1")
	apply("updates", "5", changes.Event[post.Post]{Op: changes.Update, Key: id(), Token: changes.Token("5")})
	want("a batch of updates right after a save", "1")
	apply("delete", "9", changes.Event[post.Post]{Op: changes.Delete, Key: id(), Token: changes.Token("9")})
	want("a batch with a delete", "9")
}
