//go:build !linux

package sqlite

// presence without open file description locks: assume other processes may
// share the file, so the watcher always polls.
type presence struct{}

func openPresence(string) *presence { return &presence{} }

func (*presence) others() bool { return true }

func (*presence) close() {}
