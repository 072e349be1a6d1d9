package mongo

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"blog/internal/changes"
)

// leaser implements changes.Leaser over the leases collection.
//
// Expiry is judged by the acquiring replica's clock, so the lease TTL must be
// well above the clock skew between replicas (seconds against NTP's
// milliseconds). Correctness does not rest on the clock, though: every write
// a consumer makes under a lease is fenced (checkFence), so a replica that
// wrongly believes it still holds the lease is refused.
type leaser struct{ db *DB }

var _ changes.Leaser = (*leaser)(nil)

// leaseDoc is one lease. Holder is "" once released, so that the next
// acquisition, even by the same replica, starts a new fence.
type leaseDoc struct {
	ID      string    `bson:"_id"`
	Holder  string    `bson:"holder"`
	Fence   int64     `bson:"fence"`
	Expires time.Time `bson:"expires"`
}

// Acquire takes, renews or fails to take the lease in one transaction, so
// two replicas racing for an expired lease cannot both win: on a real server
// the loser's transaction hits a write conflict and re-reads the winner's.
func (l *leaser) Acquire(ctx context.Context, name, holder string, ttl time.Duration) (int64, bool, error) {
	if err := changes.CheckLease(name, holder, ttl); err != nil {
		return 0, false, fmt.Errorf("mongo: acquire: %w", err)
	}
	var fence int64
	var held bool
	err := l.db.b.WithTransaction(ctx, func(ctx context.Context) error {
		now := time.Now()
		d := leaseDoc{ID: name}
		err := l.db.leases.findOne(ctx, bson.D{{Key: "_id", Value: name}}, &d)
		if err != nil && !errors.Is(err, ErrNoDocuments) {
			return err
		}
		if d.Holder != "" && d.Holder != holder && d.Expires.After(now) {
			fence, held = d.Fence, false
			return nil
		}
		if d.Holder != holder {
			d.Fence++ // the lease changes hands
		}
		set := bson.D{{Key: "$set", Value: bson.D{
			{Key: "holder", Value: holder},
			{Key: "fence", Value: d.Fence},
			{Key: "expires", Value: ms(now.Add(ttl))},
		}}}
		if _, err := l.db.leases.updateOne(ctx, bson.D{{Key: "_id", Value: name}}, set, true); err != nil {
			return err
		}
		fence, held = d.Fence, true
		return nil
	})
	if err != nil {
		return 0, false, fmt.Errorf("mongo: acquire lease %q for %q: %w", name, holder, err)
	}
	return fence, held, nil
}

// Release ends holder's lease at once, if holder has it, so a standby need
// not wait for it to expire. The fence is kept: the next holder bumps it.
func (l *leaser) Release(ctx context.Context, name, holder string) error {
	filter := bson.D{{Key: "_id", Value: name}, {Key: "holder", Value: holder}}
	set := bson.D{{Key: "$set", Value: bson.D{
		{Key: "holder", Value: ""},
		{Key: "expires", Value: time.UnixMilli(0).UTC()},
	}}}
	if _, err := l.db.leases.updateOne(ctx, filter, set, false); err != nil {
		return fmt.Errorf("mongo: release lease %q for %q: %w", name, holder, err)
	}
	return nil
}

// checkFence refuses, with changes.ErrFenced, a write made under a fence
// that is no longer the lease's. It must run inside the write's transaction,
// and it writes to the lease (not just reads it) so that on a real server a
// concurrent hand-over conflicts with the write instead of slipping past a
// snapshot read. fence 0 means the consumer runs without a lease.
func (db *DB) checkFence(ctx context.Context, name string, fence int64) error {
	if fence == 0 {
		return nil
	}
	filter := bson.D{{Key: "_id", Value: name}, {Key: "fence", Value: fence}}
	set := bson.D{{Key: "$set", Value: bson.D{{Key: "usedAt", Value: ms(time.Now())}}}}
	r, err := db.leases.updateOne(ctx, filter, set, false)
	if err != nil {
		return fmt.Errorf("check lease fence: %w", err)
	}
	if r.Matched == 0 {
		return changes.ErrFenced
	}
	return nil
}
