package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"blog/internal/post"
)

// errDrift makes `blog verify` exit non-zero when it found drift it did not
// repair.
var errDrift = errors.New("drift found")

// verify compares every post's embedded comments and commentCount with the
// comments store and prints each difference; with -repair it rebuilds each
// drifted post from the comments and checks again. It exits non-zero while
// drift remains.
func verify(ctx context.Context, repair bool, cfg Config, log *slog.Logger, stdout io.Writer) error {
	st, err := openStore(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer func() {
		if err := st.close(); err != nil {
			log.Error("close store", "err", err)
		}
	}()
	var drifted []string
	checked, err := post.Verify(ctx, st.posts, st.comments, cfg.embedLimit(), func(d post.Drift) error {
		fmt.Fprintln(stdout, "drift:", d)
		drifted = append(drifted, d.PostID)
		return nil
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "checked %d posts: %d drifted\n", checked, len(drifted))
	if len(drifted) == 0 {
		return nil
	}
	if !repair {
		return fmt.Errorf("%w in %d posts (run blog verify -repair to fix)", errDrift, len(drifted))
	}
	rp, ok := st.posts.(post.Repairer)
	if !ok {
		return errors.New("this store cannot repair posts")
	}
	for _, id := range drifted {
		// A post deleted since it was checked needs no repair.
		if err := rp.RebuildPost(ctx, id); err != nil && !errors.Is(err, post.ErrNotFound) {
			return fmt.Errorf("repair post %s: %w", id, err)
		}
	}
	remaining := 0
	if _, err := post.Verify(ctx, st.posts, st.comments, cfg.embedLimit(), func(d post.Drift) error {
		fmt.Fprintln(stdout, "still drifted:", d)
		remaining++
		return nil
	}); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "repaired %d posts; %d still drifted\n", len(drifted), remaining)
	if remaining > 0 {
		return fmt.Errorf("%w in %d posts after repair (the services may still be writing)", errDrift, remaining)
	}
	return nil
}
