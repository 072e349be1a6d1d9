package live_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"blog/internal/changes"
	"blog/internal/live"
	"blog/internal/post"
)

// lostFeed is a posts feed whose first stream delivers one quiet batch at
// position "1" and then loses its position (as after a dropped or renamed
// collection); later streams stay quiet. It records where each stream was
// opened.
type lostFeed struct {
	mu    sync.Mutex
	opens []changes.Token
}

func (f *lostFeed) Open(_ context.Context, after changes.Token) (changes.Stream[post.Post], error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.opens = append(f.opens, after)
	return &lostStream{first: len(f.opens) == 1}, nil
}

func (f *lostFeed) Head(context.Context) (changes.Token, error) { return changes.Token("1"), nil }

func (f *lostFeed) openTokens() []changes.Token {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.opens)
}

type lostStream struct {
	first bool
	n     int
}

func (s *lostStream) Next(ctx context.Context) (changes.Batch[post.Post], error) {
	s.n++
	if s.first && s.n == 2 {
		return changes.Batch[post.Post]{}, fmt.Errorf("collection dropped: %w", changes.ErrHistoryLost)
	}
	if s.n > 1 {
		<-ctx.Done()
		return changes.Batch[post.Post]{}, ctx.Err()
	}
	return changes.Batch[post.Post]{Token: changes.Token("1")}, nil
}

func (s *lostStream) Close(context.Context) error { return nil }

// TestHubReopensAtHeadWhenStreamLosesHistory (issue 10, defect 1): when a
// running stream fails with ErrHistoryLost, the hub opens its next stream at
// the head (nil), not after its last position, which would meet the same
// loss forever.
func TestHubReopensAtHeadWhenStreamLosesHistory(t *testing.T) {
	f := &lostFeed{}
	hub := live.NewHub(f, nil, slog.New(slog.DiscardHandler))
	hub.MinBackoff = time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = hub.Run(ctx) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(10 * time.Second)
	for len(f.openTokens()) < 2 {
		if time.Now().After(deadline) {
			t.Fatal("the hub did not reopen the feed within 10 s")
		}
		time.Sleep(2 * time.Millisecond) // poll, bounded by the deadline
	}
	if d := cmp.Diff([]changes.Token{nil, nil}, f.openTokens()[:2]); d != "" {
		t.Errorf("streams opened at (-want +got):\n%s", d)
	}
}
