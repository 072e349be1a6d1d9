package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"runtime"

	"blog/internal/page"
)

// DefaultListBytes is the byte budget of one list page (GET /posts, GET
// /comments/{postId}): the JSON body stops growing once the next item would
// take it past this, so a page holds fewer than `limit` items when they are
// large, and its Link rel="next" continues after the last item it holds.
// A page always holds at least one item (so paging moves on), which may
// take it past the budget by that item (at most a few MB for a post).
const DefaultListBytes = 1 << 20

// listSlots bounds how many list pages are read and encoded at once in
// this process: one fewer than the CPUs (at least one), so one CPU stays
// free for every other request, health checks included. The work is
// CPU-bound, so more at once would not serve lists faster, only make
// everything else wait for a CPU; the rest wait their turn without holding
// a CPU or a page's memory. It is process-wide because the CPUs are.
var listSlots = make(chan struct{}, max(1, runtime.GOMAXPROCS(0)-1))

// firstChunk is how many items a budgeted page reads from its store at
// first; later reads are sized from the items seen so far, so a page of
// large items never loads more than a few of them beyond what fits.
const firstChunk = 4

// WriteBudgetPage answers a list request for q with a JSON array of at most
// q.Limit items and at most budget bytes (DefaultListBytes when <= 0; see
// there), read from fetch in chunks after q.After, adding a rel="next"
// Link (limit q.Limit, after the cursor of the last item sent) when more
// items follow. Memory held is bounded by the budget plus one chunk, and
// the body is encoded before anything is sent, so a slow reader holds the
// budget, not the list. It returns fetch's error before writing anything.
func WriteBudgetPage[T any](w http.ResponseWriter, r *http.Request, q page.Query, budget int,
	fetch func(context.Context, page.Query) ([]T, error), cursor func(T) page.Cursor) error {
	if budget <= 0 {
		budget = DefaultListBytes
	}
	select {
	case listSlots <- struct{}{}:
	case <-r.Context().Done():
		return nil // the client left while waiting: no one to answer
	}
	held := true
	release := func() {
		if held {
			<-listSlots
			held = false
		}
	}
	defer release()
	var (
		buf   = make([]byte, 0, 16<<10)
		n     int
		last  page.Cursor
		more  bool
		chunk = min(firstChunk, q.Limit)
		next  = q
	)
	buf = append(buf, '[')
fill:
	for n < q.Limit {
		want := min(chunk, q.Limit-n)
		next.Limit = want + 1 // one more tells whether the list goes on
		items, err := fetch(r.Context(), next)
		if err != nil {
			return err
		}
		for i, it := range items {
			if i == want {
				break
			}
			start := len(buf)
			if n > 0 {
				buf = append(buf, ',')
			}
			if buf, err = appendItem(buf, it); err != nil {
				return err
			}
			if n > 0 && len(buf)+2 > budget { // 2: the closing "]\n"
				buf = buf[:start]
				more = true
				break fill
			}
			n++
			last = cursor(it)
		}
		if len(items) <= want {
			more = false // the end of the list
			break
		}
		more = true
		cur := last
		next.After = &cur
		// Read next about as many items as the rest of the budget holds.
		chunk = max(1, (budget-len(buf))/max(1, len(buf)/n)+1)
	}
	buf = append(buf, "]\n"...)
	release() // writing may wait on a slow reader; it needs no CPU slot
	if more && n > 0 {
		SetNextLink(w, r, q.Limit, last)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(buf)
	return nil
}

// JSONAppender is a list item that encodes itself, appending its JSON to
// buf. Posts do, because encoding/json re-checks every MarshalJSON result
// (the timestamps of a post's embedded comments), which took a quarter of
// a list's CPU time.
type JSONAppender interface {
	AppendJSON(buf []byte) []byte
}

// appendItem appends one list item's JSON to buf, by the item's own
// AppendJSON where it has one (straight into buf, with no copy of its own).
func appendItem(buf []byte, it any) ([]byte, error) {
	if a, ok := it.(JSONAppender); ok {
		return a.AppendJSON(buf), nil
	}
	b, err := json.Marshal(it)
	if err != nil {
		return buf, fmt.Errorf("encode list item: %w", err)
	}
	return append(buf, b...), nil
}
