package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"blog/internal/changes"
)

// Leases returns the lease keeper that lets several replicas share one
// consumer: only the holder of the lease named after the consumer applies
// its feed, and every sink here refuses a batch carrying a fence that is no
// longer the lease's (changes.ErrFenced).
//
// Expiry uses this machine's clock (time.Now): every process sharing the
// file runs on the machine that holds it.
func (db *DB) Leases() changes.Leaser { return &leaser{db: db} }

type leaser struct{ db *DB }

// qAcquire takes the lease when it is free (no row), expired, or already
// the holder's, in one statement, and returns its fence; it returns no row
// while another holder's lease is unexpired. The fence grows by one when the
// holder changes, which includes a holder taking back a lease it released
// (Release clears the holder: a release ends the term), and stays the same
// when the holder renews or takes back a lease it let expire, which nobody
// took meanwhile.
// In an UPDATE every expression reads the row as it was, so fence compares
// the old holder with the new.
const qAcquire = `INSERT INTO leases (name, holder, fence, expires_at) VALUES (?1, ?2, 1, ?3)
	ON CONFLICT (name) DO UPDATE SET
		fence = CASE WHEN leases.holder = excluded.holder THEN leases.fence ELSE leases.fence + 1 END,
		holder = excluded.holder,
		expires_at = excluded.expires_at
	WHERE leases.holder = excluded.holder OR leases.expires_at <= ?4
	RETURNING fence`

// Acquire takes or renews the named lease for holder until ttl from now.
// held is false, and fence 0, while another holder's lease is unexpired.
func (l *leaser) Acquire(ctx context.Context, name, holder string, ttl time.Duration) (int64, bool, error) {
	if err := changes.CheckLease(name, holder, ttl); err != nil {
		return 0, false, fmt.Errorf("sqlite: acquire: %w", err)
	}
	var (
		fence int64
		held  bool
	)
	err := l.db.write(ctx, func(tx *sql.Tx) error {
		now := time.Now()
		err := tx.QueryRowContext(ctx, qAcquire, name, holder, ms(now.Add(ttl)), ms(now)).Scan(&fence)
		if errors.Is(err, sql.ErrNoRows) {
			fence = 0
			return nil
		}
		held = err == nil
		return err
	})
	if err != nil {
		return 0, false, fmt.Errorf("sqlite: acquire lease %q for %q: %w", name, holder, err)
	}
	return fence, held, nil
}

// Release ends holder's lease and its term at once: the holder is cleared,
// so whoever acquires next, this holder included, gets a greater fence. It
// does nothing if another holder has the lease.
func (l *leaser) Release(ctx context.Context, name, holder string) error {
	err := l.db.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx,
			`UPDATE leases SET holder = '', expires_at = 0 WHERE name = ? AND holder = ?`, name, holder)
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: release lease %q for %q: %w", name, holder, err)
	}
	return nil
}

// checkFence returns changes.ErrFenced (wrapped) unless fence is 0 (no
// lease) or the named lease's current fence. It runs inside the write
// transaction it guards: SQLite admits one writer at a time, so no other
// holder can take the lease between the check and the commit.
//
// An expired lease that nobody has taken since still has the same fence, so
// its holder may still write: fencing is about a successor, not the clock.
func checkFence(ctx context.Context, tx *sql.Tx, name string, fence int64) error {
	if fence == 0 {
		return nil
	}
	var current int64
	err := tx.QueryRowContext(ctx, `SELECT fence FROM leases WHERE name = ?`, name).Scan(&current)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("fence %d, but lease %q does not exist: %w", fence, name, changes.ErrFenced)
	}
	if err != nil {
		return fmt.Errorf("read lease %q: %w", name, err)
	}
	if current != fence {
		return fmt.Errorf("fence %d, but lease %q is at fence %d: %w", fence, name, current, changes.ErrFenced)
	}
	return nil
}
