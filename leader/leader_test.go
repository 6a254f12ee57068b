package leader_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/patchbay/patchbay/internal/pgtest"
	"github.com/patchbay/patchbay/leader"
	"github.com/patchbay/patchbay/store"
)

// crashed is a store whose Release never reaches the database: a process
// that dies without a graceful shutdown.
type crashed struct{ leader.Store }

func (crashed) Release(context.Context, string, string, int64) error { return nil }

func TestRunHandsOverWhenTheLeaderStopsSQLite(t *testing.T) {
	testRunHandsOver(t, filepath.Join(t.TempDir(), "patchbay.db"))
}

func TestRunHandsOverWhenTheLeaderStopsPostgres(t *testing.T) {
	testRunHandsOver(t, pgtest.Fresh(t))
}

// testRunHandsOver runs two electors for real (the failover timing itself
// is proven with an injected clock in the store contract): the first
// leads, stops, and the second takes over with the next term while the
// first's leadership context is cancelled. A first that stops gracefully
// releases the lease, so the second leads at its next step, well within
// the TTL; one that crashes leaves the lease to expire first.
func testRunHandsOver(t *testing.T, dsn string) {
	db, err := store.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	const ttl, every = 3 * time.Second, 100 * time.Millisecond
	for i, graceful := range []bool{true, false} {
		name := map[bool]string{true: "graceful stop", false: "crash"}[graceful]
		t.Run(name, func(t *testing.T) {
			lease := []string{"sync-graceful", "sync-crash"}[i]
			var mu sync.Mutex
			terms := map[string]int64{}
			lost := map[string]bool{}
			lead := func(id string) func(ctx context.Context, term int64) {
				return func(ctx context.Context, term int64) {
					mu.Lock()
					terms[id] = term
					mu.Unlock()
					<-ctx.Done()
					mu.Lock()
					lost[id] = true
					mu.Unlock()
				}
			}
			var sa leader.Store = db.Leases
			if !graceful {
				sa = crashed{db.Leases}
			}
			a := &leader.Elector{Store: sa, Name: lease, ID: "a", TTL: ttl, Interval: every, Now: time.Now}
			b := &leader.Elector{Store: db.Leases, Name: lease, ID: "b", TTL: ttl, Interval: every, Now: time.Now}
			ctxA, stopA := context.WithCancel(context.Background())
			doneA := make(chan struct{})
			go func() { a.Run(ctxA, nil, lead("a")); close(doneA) }()
			waitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); return terms["a"] == 1 })

			ctxB, stopB := context.WithCancel(context.Background())
			doneB := make(chan struct{})
			defer func() { stopB(); <-doneB }()
			go func() { b.Run(ctxB, nil, lead("b")); close(doneB) }()
			time.Sleep(5 * every)
			mu.Lock()
			if terms["b"] != 0 {
				t.Fatalf("b leads (term %d) while a renews", terms["b"])
			}
			mu.Unlock()

			stopA() // a stops renewing
			<-doneA
			mu.Lock()
			if !lost["a"] {
				t.Error("a's Run returned before its lead did")
			}
			mu.Unlock()
			stopped := time.Now()
			waitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); return terms["b"] == 2 })
			took := time.Since(stopped)
			if graceful && took > ttl/2 {
				t.Errorf("b led %v after a stopped gracefully; want at its next step (every %v), not after the TTL %v", took, every, ttl)
			}
			if !graceful && took < ttl-time.Second {
				t.Errorf("b led %v after a crashed; want after the lease's TTL %v", took, ttl)
			}
		})
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached within 10 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
