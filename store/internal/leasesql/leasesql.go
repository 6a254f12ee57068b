// Package leasesql keeps leader leases on database/sql, shared by the
// SQLite and PostgreSQL stores, each with its own SQL.
package leasesql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/patchbay/patchbay/leader"
)

// Dialect holds one database's SQL for leases.
type Dialect struct {
	Ensure   string // insert the row if missing: (name)
	Lock     string // read and lock the row: (name) → holder, term, expires_at
	Take     string // (holder, term, expires_at, name)
	Renew    string // (expires_at, name, holder, term, now)
	ReadTerm string // (name) → term, locked for the rest of the transaction
	Release  string // expire the lease now: (name, holder, term)
}

// Store implements leader.Store.
type Store struct {
	DB *sql.DB
	D  *Dialect
	// WriteLock, when set (SQLite), is the lock this process's write
	// transactions queue on for the database's single writer. Lease
	// writes queue on it too, for a bounded time shorter than the lease:
	// waiting in SQLite's busy handler instead, a renewal polls and
	// misses the instants between a bulk writer's back-to-back
	// transactions, and the lease is lost. FenceTx runs inside a writer
	// holding it and never takes it.
	WriteLock *sync.Mutex
}

// maxWait bounds the wait for the write lock of a lease write without a
// TTL of its own (Release, Fence); their callers bound them too.
const maxWait = 5 * time.Second

// errLockWait: the write lock was not had within the bound.
var errLockWait = errors.New("the database's other writers held the write lock")

// lock takes the write lock within wait (or until ctx ends), and returns
// its unlock. A renewal's wait is half the lease's TTL: it either renews
// in time or fails with time left to retry before the lease expires.
func (s *Store) lock(ctx context.Context, wait time.Duration) (func(), error) {
	if s.WriteLock == nil {
		return func() {}, nil
	}
	if s.WriteLock.TryLock() {
		return s.WriteLock.Unlock, nil
	}
	got := make(chan struct{})
	go func() {
		s.WriteLock.Lock() // queued with the other writers, in turn
		close(got)
	}()
	t := time.NewTimer(wait)
	defer t.Stop()
	var err error
	select {
	case <-got:
		return s.WriteLock.Unlock, nil
	case <-t.C:
		err = fmt.Errorf("%w for %s", errLockWait, wait)
	case <-ctx.Done():
		err = ctx.Err()
	}
	// Given up: the queued Lock still gets its turn, and hands it on.
	go func() {
		<-got
		s.WriteLock.Unlock()
	}()
	return nil, err
}

var _ leader.Store = (*Store)(nil)

// Acquire implements leader.Store.
func (s *Store) Acquire(ctx context.Context, name, holder string, now time.Time, ttl time.Duration) (leader.Lease, error) {
	var l leader.Lease
	unlock, err := s.lock(ctx, ttl/2)
	if err != nil {
		return l, fmt.Errorf("lease %s: %w", name, err)
	}
	defer unlock()
	tx, err := s.DB.BeginTx(ctx, nil)
	if err != nil {
		return l, fmt.Errorf("lease %s: %w", name, err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, s.D.Ensure, name); err != nil {
		return l, fmt.Errorf("lease %s: %w", name, err)
	}
	var exp int64
	if err := tx.QueryRowContext(ctx, s.D.Lock, name).Scan(&l.Holder, &l.Term, &exp); err != nil {
		return l, fmt.Errorf("lease %s: %w", name, err)
	}
	l.Name, l.Expires = name, time.Unix(0, exp)
	switch {
	case l.Holder == holder && l.Expires.After(now):
		// Held by us: a renewal under the same term.
	case !l.Expires.After(now):
		l.Holder, l.Term = holder, l.Term+1 // free or expired: the next term
	default:
		return l, tx.Commit() // someone else holds it
	}
	l.Expires = now.Add(ttl)
	if _, err := tx.ExecContext(ctx, s.D.Take, l.Holder, l.Term, l.Expires.UnixNano(), name); err != nil {
		return l, fmt.Errorf("lease %s: %w", name, err)
	}
	return l, tx.Commit()
}

// Renew implements leader.Store.
func (s *Store) Renew(ctx context.Context, name, holder string, term int64, now time.Time, ttl time.Duration) error {
	unlock, err := s.lock(ctx, ttl/2)
	if err != nil {
		return fmt.Errorf("renew lease %s (term %d): %w", name, term, err)
	}
	defer unlock()
	res, err := s.DB.ExecContext(ctx, s.D.Renew, now.Add(ttl).UnixNano(), name, holder, term, now.UnixNano())
	if err != nil {
		return fmt.Errorf("renew lease %s: %w", name, err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return fmt.Errorf("renew lease %s (term %d): %w", name, term, leader.ErrLost)
	}
	return nil
}

// Release implements leader.Store.
func (s *Store) Release(ctx context.Context, name, holder string, term int64) error {
	unlock, err := s.lock(ctx, maxWait)
	if err != nil {
		return fmt.Errorf("release lease %s (term %d): %w", name, term, err)
	}
	defer unlock()
	if _, err := s.DB.ExecContext(ctx, s.D.Release, name, holder, term); err != nil {
		return fmt.Errorf("release lease %s (term %d): %w", name, term, err)
	}
	return nil
}

// Fence implements leader.Store.
func (s *Store) Fence(ctx context.Context, name string, term int64) error {
	unlock, err := s.lock(ctx, maxWait)
	if err != nil {
		return fmt.Errorf("fence %s: %w", name, err)
	}
	defer unlock()
	tx, err := s.DB.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := s.FenceTx(ctx, tx, name, term); err != nil {
		return err
	}
	return tx.Commit()
}

// FenceTx checks the term inside the transaction of a leader's write; the
// write must be abandoned when it fails.
func (s *Store) FenceTx(ctx context.Context, tx *sql.Tx, name string, term int64) error {
	var cur int64
	if err := tx.QueryRowContext(ctx, s.D.ReadTerm, name).Scan(&cur); err != nil {
		return fmt.Errorf("fence %s: %w", name, err)
	}
	if cur != term {
		return fmt.Errorf("term %d, lease %s is at term %d: %w", term, name, cur, leader.ErrFenced)
	}
	return nil
}
