package leasesql

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// TestLockBounded: a lease write waits for the write lock at most its
// bound (or its context), fails saying so, and the turn it gave up is
// handed on: the lock is free again once its holder unlocks.
func TestLockBounded(t *testing.T) {
	var mu sync.Mutex
	s := &Store{WriteLock: &mu}
	mu.Lock()
	if _, err := s.lock(context.Background(), 50*time.Millisecond); !errors.Is(err, errLockWait) {
		t.Fatalf("held lock, wait 50ms: %v, want errLockWait", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.lock(ctx, time.Minute); !errors.Is(err, context.Canceled) {
		t.Fatalf("held lock, cancelled context: %v, want context.Canceled", err)
	}
	mu.Unlock()
	unlock, err := s.lock(context.Background(), 10*time.Second)
	if err != nil {
		t.Fatalf("after the holder unlocked: %v", err)
	}
	if mu.TryLock() {
		t.Fatal("the lock is free while a lease write holds it")
	}
	unlock()
	if !mu.TryLock() {
		t.Fatal("the lock is still held after the lease write unlocked")
	}
	mu.Unlock()

	// Without a write lock (PostgreSQL) nothing waits.
	unlock, err = (&Store{}).lock(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	unlock()
}
