package storetest

import (
	"testing"
	"time"

	"blog/internal/changes"
)

// RunLeases checks the lease keeper (Stores.Leases): at most one holder at a
// time, renewals that keep the fence, and a fence that grows every time the
// lease changes hands, whether it was released or expired.
func RunLeases(t *testing.T, open func(t *testing.T) Stores) {
	t.Run("lease-acquire-renew-conflict", func(t *testing.T) { testLeaseAcquireRenewConflict(t, open) })
	t.Run("lease-expiry-hands-over", func(t *testing.T) { testLeaseExpiryHandsOver(t, open) })
	t.Run("lease-release-by-other-holder-is-noop", func(t *testing.T) { testLeaseReleaseByOtherHolderIsNoop(t, open) })
	t.Run("lease-names-are-independent", func(t *testing.T) { testLeaseNamesAreIndependent(t, open) })
}

// testLeaseAcquireRenewConflict is the contract subtest "lease-acquire-renew-conflict".
func testLeaseAcquireRenewConflict(t *testing.T, open func(t *testing.T) Stores) {
	s := open(t)
	l := needLeases(t, s)
	fa := mustAcquire(t, l, "l", "a", time.Hour)
	if fa <= 0 {
		t.Errorf("first fence %d, want > 0 (0 means no lease)", fa)
	}
	if f := mustAcquire(t, l, "l", "a", time.Hour); f != fa {
		t.Errorf("renewal changed the fence from %d to %d", fa, f)
	}
	mustNotAcquire(t, l, "l", "b")
	mustRelease(t, l, "l", "a")
	fb := mustAcquire(t, l, "l", "b", time.Hour)
	if fb <= fa {
		t.Errorf("fence after hand-over %d, want > %d", fb, fa)
	}
	mustNotAcquire(t, l, "l", "a")
	if f := mustAcquire(t, l, "l", "b", time.Hour); f != fb {
		t.Errorf("renewal changed the fence from %d to %d", fb, f)
	}
}

// testLeaseExpiryHandsOver is the contract subtest "lease-expiry-hands-over".
func testLeaseExpiryHandsOver(t *testing.T, open func(t *testing.T) Stores) {
	s := open(t)
	l := needLeases(t, s)
	fa := mustAcquire(t, l, "l", "a", 50*time.Millisecond)
	// b waits for a's lease to expire; polling, as a standby does.
	fb := waitAcquire(t, l, "l", "b")
	if fb <= fa {
		t.Errorf("fence after expiry %d, want > %d", fb, fa)
	}
	// a, back from a pause, cannot renew what b now holds.
	mustNotAcquire(t, l, "l", "a")
	mustRelease(t, l, "l", "b")
	if fa2 := mustAcquire(t, l, "l", "a", time.Hour); fa2 <= fb {
		t.Errorf("fence after a took the lease back %d, want > %d", fa2, fb)
	}
}

// testLeaseReleaseByOtherHolderIsNoop is the contract subtest "lease-release-by-other-holder-is-noop".
func testLeaseReleaseByOtherHolderIsNoop(t *testing.T, open func(t *testing.T) Stores) {
	s := open(t)
	l := needLeases(t, s)
	fa := mustAcquire(t, l, "l", "a", time.Hour)
	mustRelease(t, l, "l", "b")
	mustNotAcquire(t, l, "l", "b")
	if f := mustAcquire(t, l, "l", "a", time.Hour); f != fa {
		t.Errorf("fence %d after another holder's release, want %d", f, fa)
	}
}

// testLeaseNamesAreIndependent is the contract subtest "lease-names-are-independent".
func testLeaseNamesAreIndependent(t *testing.T, open func(t *testing.T) Stores) {
	s := open(t)
	l := needLeases(t, s)
	mustAcquire(t, l, "x", "a", time.Hour)
	mustAcquire(t, l, "y", "b", time.Hour)
	mustNotAcquire(t, l, "x", "b")
	mustNotAcquire(t, l, "y", "a")
}

func needLeases(t *testing.T, s Stores) changes.Leaser {
	t.Helper()
	if s.Leases == nil {
		t.Skip("the adapter provides no Stores.Leases")
	}
	return s.Leases
}

func mustAcquire(t *testing.T, l changes.Leaser, name, holder string, ttl time.Duration) int64 {
	t.Helper()
	f, held, err := l.Acquire(ctxFor(t), name, holder, ttl)
	if err != nil {
		t.Fatalf("acquire %s for %s: %v", name, holder, err)
	}
	if !held {
		t.Fatalf("acquire %s for %s: not held", name, holder)
	}
	return f
}

func mustNotAcquire(t *testing.T, l changes.Leaser, name, holder string) {
	t.Helper()
	_, held, err := l.Acquire(ctxFor(t), name, holder, time.Hour)
	if err != nil {
		t.Fatalf("acquire %s for %s: %v", name, holder, err)
	}
	if held {
		t.Fatalf("acquire %s for %s: held while another holder has it", name, holder)
	}
}

func mustRelease(t *testing.T, l changes.Leaser, name, holder string) {
	t.Helper()
	if err := l.Release(ctxFor(t), name, holder); err != nil {
		t.Fatalf("release %s for %s: %v", name, holder, err)
	}
}

// waitAcquire polls until holder gets the lease, or fails after Wait.
func waitAcquire(t *testing.T, l changes.Leaser, name, holder string) int64 {
	t.Helper()
	ctx := ctxFor(t)
	for {
		f, held, err := l.Acquire(ctx, name, holder, time.Hour)
		if err != nil {
			t.Fatalf("acquire %s for %s: %v", name, holder, err)
		}
		if held {
			return f
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s never got lease %s", holder, name)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// handOver makes the lease name change hands once and returns the stale
// fence (of the first holder) and the current one (of the second).
func handOver(t *testing.T, l changes.Leaser, name string) (stale, current int64) {
	t.Helper()
	stale = mustAcquire(t, l, name, "first", time.Hour)
	mustRelease(t, l, name, "first")
	current = mustAcquire(t, l, name, "second", time.Hour)
	if current == stale {
		t.Fatalf("fence stayed %d across a hand-over", current)
	}
	return stale, current
}
