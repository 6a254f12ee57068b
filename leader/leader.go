// Package leader elects one process among several server replicas to run
// the work that must run once (feed sync, re-matching, the rollout
// scheduler). A lease row with a time to live is held by one process; only
// the same holder and term may renew it; when it expires another process
// takes it with the next term. The term is a fencing token: every write the
// leader makes checks it in the same transaction, so a stale leader's
// writes are refused. No session advisory locks are used: they break under
// transaction pooling and vanish silently on failover.
package leader

import (
	"context"
	"errors"
	"log/slog"
	"time"
)

// ErrLost is returned when a lease could not be renewed: another process
// holds it now, or it expired.
var ErrLost = errors.New("lease lost")

// ErrFenced is returned for a write made under a term that is no longer
// the lease's.
var ErrFenced = errors.New("write refused: the lease has a newer term (stale leader)")

// Lease is the state of a lease row.
type Lease struct {
	Name    string
	Holder  string
	Term    int64
	Expires time.Time
}

// Store keeps lease rows. Implementations make each call atomic.
type Store interface {
	// Acquire takes the lease for holder when it is free or expired (the
	// term grows by one), or renews it when holder already holds it; it
	// returns the lease as it is afterwards, held by holder or not.
	Acquire(ctx context.Context, name, holder string, now time.Time, ttl time.Duration) (Lease, error)
	// Renew extends the lease held by holder under term; ErrLost when the
	// lease has another holder or term, or expired.
	Renew(ctx context.Context, name, holder string, term int64, now time.Time, ttl time.Duration) error
	// Fence checks that term is still the lease's; ErrFenced otherwise.
	// Leaders call it inside the transaction of every write they make.
	Fence(ctx context.Context, name string, term int64) error
	// Release gives the lease up when holder still holds it under term:
	// it expires now, so the next Acquire takes it (with the next term)
	// without waiting out the TTL. Otherwise it changes nothing.
	Release(ctx context.Context, name, holder string, term int64) error
}

// Elector runs the election for one process. It never sleeps on its own
// clock in Step, so tests drive it with an injected time.
type Elector struct {
	Store    Store
	Name     string        // the lease: "scheduler"
	ID       string        // this process
	TTL      time.Duration // lease time to live
	Interval time.Duration // how often to renew or try (well below TTL)
	Now      func() time.Time

	term int64 // current term while leader, 0 otherwise
}

// Leading returns the term this process leads under, 0 when it does not.
func (e *Elector) Leading() int64 { return e.term }

// Step renews the lease when leading, or tries to take it. It returns the
// term it leads under after the step (0: not leading).
func (e *Elector) Step(ctx context.Context) (int64, error) {
	now := e.Now()
	if e.term != 0 {
		err := e.Store.Renew(ctx, e.Name, e.ID, e.term, now, e.TTL)
		if err == nil {
			return e.term, nil
		}
		e.term = 0
		if !errors.Is(err, ErrLost) {
			return 0, err
		}
	}
	l, err := e.Store.Acquire(ctx, e.Name, e.ID, now, e.TTL)
	if err != nil {
		return 0, err
	}
	if l.Holder == e.ID {
		e.term = l.Term
	}
	return e.term, nil
}

// Run steps every Interval until ctx ends, calling lead with a context
// that is cancelled when leadership is lost. Failed steps are logged and
// retried at the next tick. When ctx ends while leading, Run waits for
// lead to return, then releases the lease (if still held under its term)
// so another process, or this one restarted, leads at once.
func (e *Elector) Run(ctx context.Context, log *slog.Logger, lead func(ctx context.Context, term int64)) error {
	stop := func() {}
	var led chan struct{} // closed when the current lead returns
	defer func() {
		stop()
		if led != nil {
			<-led
		}
		e.release(ctx, log)
	}()
	t := time.NewTicker(e.Interval)
	defer t.Stop()
	for {
		was := e.term
		term, err := e.Step(ctx)
		if err != nil && log != nil && ctx.Err() == nil {
			log.Warn("leader election step failed", "lease", e.Name, "err", err)
		}
		if term != was {
			stop()
			stop, led = func() {}, nil
			if term != 0 {
				lctx, cancel := context.WithCancel(ctx)
				done := make(chan struct{})
				stop, led = cancel, done
				go func() {
					defer close(done)
					lead(lctx, term)
				}()
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// release gives the lease up at the end of Run, on a context of its own
// (ctx has ended), within a few seconds.
func (e *Elector) release(ctx context.Context, log *slog.Logger) {
	if e.term == 0 {
		return
	}
	term := e.term
	e.term = 0
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := e.Store.Release(rctx, e.Name, e.ID, term); err != nil {
		if log != nil {
			log.Warn("release the leader lease (another process leads once it expires)", "lease", e.Name, "term", term, "err", err)
		}
		return
	}
	if log != nil {
		log.Info("leader lease released", "lease", e.Name, "term", term)
	}
}
