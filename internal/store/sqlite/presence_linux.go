package sqlite

import (
	"os"
	"syscall"
)

// Open file description locks (Linux 3.15+): unlike classic POSIX record
// locks they belong to an open file, not a process, so two DBs in one
// process see each other too. The syscall package lacks their commands.
const (
	fOFDGetlk = 36 // F_OFD_GETLK
	fOFDSetlk = 37 // F_OFD_SETLK
)

// presence tells a DB whether another DB has its file open: each holds a
// shared lock on byte 0 of the presence file for as long as it is open,
// and asks whether an exclusive lock there would conflict with anyone's.
type presence struct{ f *os.File }

// openPresence takes this DB's shared lock; on any failure the DB assumes
// company, which costs polling, never a missed commit.
func openPresence(path string) *presence {
	f, err := presenceFile(path)
	if err != nil {
		return &presence{}
	}
	lk := syscall.Flock_t{Type: syscall.F_RDLCK, Whence: 0, Start: 0, Len: 1}
	if err := syscall.FcntlFlock(f.Fd(), fOFDSetlk, &lk); err != nil {
		_ = f.Close()
		return &presence{}
	}
	return &presence{f: f}
}

// others reports whether another DB holds the file open (true when unsure).
func (p *presence) others() bool {
	if p.f == nil {
		return true
	}
	lk := syscall.Flock_t{Type: syscall.F_WRLCK, Whence: 0, Start: 0, Len: 1}
	if err := syscall.FcntlFlock(p.f.Fd(), fOFDGetlk, &lk); err != nil {
		return true
	}
	return lk.Type != syscall.F_UNLCK
}

func (p *presence) close() {
	if p.f != nil {
		_ = p.f.Close()
	}
}
