package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// TestLeaseRenewsBetweenWriteChunks: while this process writes back to
// back in long transactions, each holding the write lock (the way a bulk
// re-decision writes a fleet a chunk at a time), the leader lease is
// renewed at its normal period: every renewal succeeds, each returns
// before the lease it extends would have expired (so the lease never
// lapses), and the holder keeps its term throughout.
func TestLeaseRenewsBetweenWriteChunks(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(t.TempDir(), "patchbay.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	const ttl, every, chunk = 1500 * time.Millisecond, 500 * time.Millisecond, 80 * time.Millisecond
	l, err := db.Leases.Acquire(ctx, "scheduler", "a", time.Now(), ttl)
	if err != nil || l.Holder != "a" {
		t.Fatalf("acquire: %+v, %v", l, err)
	}

	wctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	chunks := 0
	var werr error
	go func() {
		defer wg.Done()
		for i := 0; wctx.Err() == nil; i++ {
			if werr = writeChunk(wctx, db, i, chunk); werr != nil {
				if wctx.Err() != nil {
					werr = nil
				}
				return
			}
			chunks++
		}
	}()

	expires := l.Expires
	for i := range 6 {
		time.Sleep(every)
		now := time.Now()
		if err := db.Leases.Renew(ctx, "scheduler", "a", l.Term, now, ttl); err != nil {
			t.Errorf("renewal %d: %v", i, err)
			continue
		}
		if done := time.Now(); !done.Before(expires) {
			t.Errorf("renewal %d returned at %s, %s after the lease it extended had expired", i, done.Format(time.StampMilli), done.Sub(expires))
		}
		expires = now.Add(ttl)
	}
	stop()
	wg.Wait()
	if werr != nil {
		t.Fatalf("write chunks: %v", werr)
	}
	if chunks < 10 {
		t.Fatalf("only %d write chunks ran beside the renewals", chunks)
	}
	got, err := db.Leases.Acquire(ctx, "scheduler", "b", time.Now(), ttl)
	if err != nil {
		t.Fatal(err)
	}
	if got.Holder != "a" || got.Term != l.Term {
		t.Errorf("after the writes: lease held by %q at term %d, want %q at term %d", got.Holder, got.Term, "a", l.Term)
	}
}

// writeChunk writes in one transaction holding the write lock for d, as
// every big writer of this process does.
func writeChunk(ctx context.Context, db *DB, i int, d time.Duration) error {
	writeLock.Lock()
	defer writeLock.Unlock()
	tx, err := db.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `INSERT INTO leases(name, holder, term, expires_at) VALUES(?, '', 0, 0)`, fmt.Sprintf("chunk-%d", i)); err != nil {
		return err
	}
	select {
	case <-time.After(d):
	case <-ctx.Done():
		return ctx.Err()
	}
	return tx.Commit()
}
