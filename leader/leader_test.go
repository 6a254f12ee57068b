package leader_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/patchbay/patchbay/leader"
	"github.com/patchbay/patchbay/store/sqlite"
)

// TestRunHandsOverWhenTheLeaderStops runs two electors for real (the
// failover timing itself is proven with an injected clock in the store
// contract): the first leads, stops, and the second takes over with the
// next term while the first's leadership context is cancelled.
func TestRunHandsOverWhenTheLeaderStops(t *testing.T) {
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "patchbay.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
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
	elector := func(id string) *leader.Elector {
		return &leader.Elector{Store: db.Leases, Name: "sync", ID: id, TTL: 2 * time.Second, Interval: 100 * time.Millisecond, Now: time.Now}
	}
	ctxA, stopA := context.WithCancel(context.Background())
	doneA := make(chan struct{})
	go func() { elector("a").Run(ctxA, nil, lead("a")); close(doneA) }()
	waitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); return terms["a"] == 1 })

	ctxB, stopB := context.WithCancel(context.Background())
	defer stopB()
	go elector("b").Run(ctxB, nil, lead("b"))
	time.Sleep(500 * time.Millisecond)
	mu.Lock()
	if terms["b"] != 0 {
		t.Fatalf("b leads (term %d) while a renews", terms["b"])
	}
	mu.Unlock()

	stopA() // a stops renewing
	<-doneA
	waitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); return terms["b"] == 2 && lost["a"] })
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
