package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"blog/internal/post"
	"blog/internal/store/sqlite"
)

// storeExists returns an error naming the file when cfg points at an
// embedded store that does not exist. Opening the embedded store creates it,
// so the tools that only read one (verify, deadletters) check first: else
// they would make an empty store in the wrong directory and report it clean.
func storeExists(cfg Config, what string) error {
	if cfg.MongoURI != "" {
		return nil
	}
	file := filepath.Join(cfg.DataDir, sqlite.FileName)
	if _, err := os.Stat(file); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("no embedded store at %s: nothing to %s (give the services' BLOG_DATA_DIR with -data-dir, or MONGO_URI)", file, what)
	} else if err != nil {
		return fmt.Errorf("embedded store: %w", err)
	}
	return nil
}

// errDrift makes `blog verify` exit non-zero when it found drift it did not
// repair.
var errDrift = errors.New("drift found")

// verify compares every post's embedded comments and commentCount with the
// comments store and prints each difference; with -repair it rebuilds each
// drifted post from the comments and checks again. It exits non-zero while
// drift remains.
func verify(ctx context.Context, repair bool, cfg Config, log *slog.Logger, stdout io.Writer) error {
	if err := storeExists(cfg, "verify"); err != nil {
		return err
	}
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
		fmt.Fprint(stdout, describeDrift("drift", d))
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
		fmt.Fprint(stdout, describeDrift("still drifted", d))
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

// describeDrift names what differs in one post, a line each: its
// commentCount, then the embedded comments that are missing, extra (no
// longer among the latest, or gone), changed (another text or edit time)
// or out of order, by id.
func describeDrift(label string, d post.Drift) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: post %s\n", label, d.PostID)
	if d.Count != d.WantCount {
		fmt.Fprintf(&b, "  commentCount %d, want %d\n", d.Count, d.WantCount)
	}
	have := map[string]post.Comment{}
	for _, c := range d.Embedded {
		have[c.ID] = c
	}
	want := map[string]bool{}
	var missing, extra, changed, order []string
	for _, c := range d.WantEmbedded {
		want[c.ID] = true
		h, ok := have[c.ID]
		switch {
		case !ok:
			missing = append(missing, c.ID)
		case h.Text != c.Text || !h.CreatedAt.Equal(c.CreatedAt) || !sameTime(h.UpdatedAt, c.UpdatedAt):
			changed = append(changed, c.ID)
		}
	}
	for _, c := range d.Embedded {
		if !want[c.ID] {
			extra = append(extra, c.ID)
		}
	}
	if len(missing) == 0 && len(extra) == 0 && len(changed) == 0 {
		for i := range d.Embedded {
			if i < len(d.WantEmbedded) && d.Embedded[i].ID != d.WantEmbedded[i].ID {
				order = append(order, d.Embedded[i].ID)
			}
		}
	}
	for _, l := range []struct {
		what string
		ids  []string
	}{
		{"missing (stored, not embedded)", missing},
		{"extra (embedded, not among the latest stored)", extra},
		{"changed (embedded copy differs)", changed},
		{"out of order", order},
	} {
		if len(l.ids) > 0 {
			fmt.Fprintf(&b, "  %s: %s\n", l.what, strings.Join(l.ids, ", "))
		}
	}
	return b.String()
}

// sameTime reports whether two optional times are both unset or equal.
func sameTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(*b)
}
