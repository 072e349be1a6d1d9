package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"text/tabwriter"
	"time"

	"blog/internal/changes"
	"blog/internal/post"
)

// parkers returns the sinks whose parked events `blog deadletters` lists,
// by consumer name, in a fixed order.
func parkers(st *stores) ([]string, map[string]changes.DeadLetterStore, error) {
	names := []string{post.CommentsConsumer, CascadeConsumer}
	byName := map[string]changes.DeadLetterStore{}
	for name, sink := range map[string]any{post.CommentsConsumer: st.posts, CascadeConsumer: st.cascade} {
		ds, ok := sink.(changes.DeadLetterStore)
		if !ok {
			return nil, nil, fmt.Errorf("the %s sink cannot list dead letters", name)
		}
		byName[name] = ds
	}
	return names, byName, nil
}

// deadLetters lists the events the consumers have parked (consumer,
// position, op, key, reason, when), or, with retry set, applies the parked
// event of that id again and removes it (changes.DeadLetterStore).
func deadLetters(ctx context.Context, retry string, cfg Config, log *slog.Logger, stdout io.Writer) error {
	if err := storeExists(cfg, "list"); err != nil {
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
	names, sinks, err := parkers(st)
	if err != nil {
		return err
	}
	if retry != "" {
		for _, name := range names {
			err := sinks[name].RetryDeadLetter(ctx, name, retry)
			if errors.Is(err, changes.ErrNoDeadLetter) {
				continue
			}
			if err != nil {
				return fmt.Errorf("retry dead letter %s: %w", retry, err)
			}
			fmt.Fprintf(stdout, "retried %s of %s: applied and removed\n", retry, name)
			return nil
		}
		return fmt.Errorf("no dead letter has id %q (blog deadletters lists them)", retry)
	}
	w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tCONSUMER\tPOSITION\tOP\tKEY\tPARKED\tREASON")
	total := 0
	for _, name := range names {
		ds, err := sinks[name].DeadLetters(ctx, name)
		if err != nil {
			return err
		}
		for _, d := range ds {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", d.ID, d.Consumer, position(d.Token), d.Op, d.Key,
				d.At.UTC().Format(time.RFC3339), d.Reason)
		}
		total += len(ds)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%d dead letters\n", total)
	return nil
}

// position returns a feed position for display: the embedded store's are
// decimal text already; MongoDB's resume tokens are BSON, shown as hex.
func position(t changes.Token) string {
	for _, b := range t {
		if b < 0x20 || b > 0x7e {
			return fmt.Sprintf("%x", []byte(t))
		}
	}
	return string(t)
}
