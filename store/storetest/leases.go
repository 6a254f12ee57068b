package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/patchbay/patchbay/leader"
)

// Leases runs the leader lease contract. Time is an injected clock.
func Leases(t *testing.T, open func(t *testing.T) leader.Store) {
	ctx := context.Background()

	t.Run("failover within TTL plus one interval, stale leader fenced", func(t *testing.T) {
		s := open(t)
		now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
		clock := func() time.Time { return now }
		const ttl, every = 10 * time.Second, 3 * time.Second
		a := &leader.Elector{Store: s, Name: "scheduler", ID: "a", TTL: ttl, Interval: every, Now: clock}
		b := &leader.Elector{Store: s, Name: "scheduler", ID: "b", TTL: ttl, Interval: every, Now: clock}
		step := func(e *leader.Elector) int64 {
			t.Helper()
			term, err := e.Step(ctx)
			if err != nil {
				t.Fatal(err)
			}
			return term
		}
		if step(a) != 1 || step(b) != 0 {
			t.Fatalf("first election: a %d, b %d", a.Leading(), b.Leading())
		}
		for i := 0; i < 5; i++ { // a renews, b keeps trying
			now = now.Add(every)
			if step(a) != 1 || step(b) != 0 {
				t.Fatalf("round %d: a %d, b %d", i, a.Leading(), b.Leading())
			}
		}
		died := now // a's last renewal
		for step(b) == 0 {
			now = now.Add(every)
			if now.Sub(died) > ttl+every {
				t.Fatalf("b not leader %s after a died", now.Sub(died))
			}
		}
		if !now.After(died.Add(ttl)) || b.Leading() != 2 {
			t.Errorf("b took over at +%s with term %d; want after the TTL, term 2", now.Sub(died), b.Leading())
		}
		// a comes back: its writes under term 1 are refused, and it does
		// not lead again while b renews.
		if err := s.Fence(ctx, "scheduler", 1); !errors.Is(err, leader.ErrFenced) {
			t.Errorf("stale write: %v", err)
		}
		if err := s.Fence(ctx, "scheduler", 2); err != nil {
			t.Errorf("leader's write: %v", err)
		}
		if err := s.Renew(ctx, "scheduler", "a", 1, now, ttl); !errors.Is(err, leader.ErrLost) {
			t.Errorf("stale renewal: %v", err)
		}
		if step(a) != 0 || step(b) != 2 {
			t.Errorf("after a's return: a %d, b %d", a.Leading(), b.Leading())
		}
	})

	t.Run("concurrent acquisitions elect one", func(t *testing.T) {
		s := open(t)
		now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
		var mu sync.Mutex
		holders := map[string]int64{}
		var wg sync.WaitGroup
		for i := 0; i < 6; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				id := fmt.Sprintf("p%d", i)
				l, err := s.Acquire(ctx, "sync", id, now, time.Minute)
				if err != nil {
					t.Error(err)
					return
				}
				if l.Holder == id {
					mu.Lock()
					holders[id] = l.Term
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if len(holders) != 1 {
			t.Fatalf("holders %v", holders)
		}
		for _, term := range holders {
			if term != 1 {
				t.Errorf("term %d", term)
			}
		}
	})

	t.Run("released lease taken at once with the next term", func(t *testing.T) {
		s := open(t)
		now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
		const ttl = 15 * time.Second
		acquire := func(id string) leader.Lease {
			t.Helper()
			l, err := s.Acquire(ctx, "scheduler", id, now, ttl)
			if err != nil {
				t.Fatal(err)
			}
			return l
		}
		if l := acquire("a"); l.Holder != "a" || l.Term != 1 {
			t.Fatalf("a: %+v", l)
		}
		// Only the holder, under its term, releases.
		for _, r := range []struct {
			holder string
			term   int64
		}{{"b", 1}, {"a", 2}, {"a", 0}} {
			if err := s.Release(ctx, "scheduler", r.holder, r.term); err != nil {
				t.Fatal(err)
			}
			if l := acquire("b"); l.Holder != "a" {
				t.Fatalf("after a release by %s under term %d, b took the lease: %+v", r.holder, r.term, l)
			}
		}
		if err := s.Release(ctx, "scheduler", "a", 1); err != nil {
			t.Fatal(err)
		}
		if err := s.Renew(ctx, "scheduler", "a", 1, now, ttl); !errors.Is(err, leader.ErrLost) {
			t.Errorf("renewal of a released lease: %v", err)
		}
		if l := acquire("b"); l.Holder != "b" || l.Term != 2 {
			t.Fatalf("b after a released, at the same instant: %+v; want b, term 2", l)
		}
		if err := s.Fence(ctx, "scheduler", 1); !errors.Is(err, leader.ErrFenced) {
			t.Errorf("a write under the released term: %v", err)
		}
		// A late release by a, who lost the lease, leaves b's alone.
		if err := s.Release(ctx, "scheduler", "a", 1); err != nil {
			t.Fatal(err)
		}
		if l := acquire("c"); l.Holder != "b" || l.Term != 2 {
			t.Errorf("after a's late release: %+v; want b still, term 2", l)
		}
	})
}
