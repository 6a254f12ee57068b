// Package kpi measures how well patching goes, now and as of any past
// date: mean, median and p90 time to patch beside the open exposure,
// the share patched within N days of the fix's release, SLA compliance,
// patch success rate, uptime, coverage, age buckets and reopen rate, cut
// by team, service, host group, label, priority, cycle and patch type,
// over a period and as daily, weekly or monthly series.
//
// Every figure is computed from the exposure ledger (one interval per
// asset, vulnerability and package for each time it was exposed), the
// hosts' check-in gaps and the rollouts' job results, which a Store
// returns; docs/kpis.md defines each figure, and this package is that
// definition in code. Nothing here is kept as a pre-computed number.
package kpi

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/patchbay/patchbay/job"
)

// Reason is why an exposure interval closed.
type Reason string

// Reasons an interval closes for.
const (
	Remediated  Reason = "remediated"
	Accepted    Reason = "accepted"
	NotAffected Reason = "not_affected"
)

// Interval is one period during which an asset was exposed to a
// vulnerability through a package: from its first sight (or its reopen)
// to its close.
type Interval struct {
	ID            int64
	FindingID     int64
	Asset         string
	Ecosystem     string
	Package       string
	Vulnerability string
	// Priority is "P1".."P4", "" when the finding had none.
	Priority string
	Cycle    string // system or application
	Fixed    string // the fixed version; "" when no fix exists
	// FixReleased is when the fix was released: when an agent first saw
	// the fixed version offered as an update, else when the interval
	// opened (the fix existed when it was first seen); zero when no fix
	// exists.
	FixReleased time.Time
	Opened      time.Time
	// Due is the SLA due date; zero for none.
	Due time.Time
	// Closed is zero while open; Reason says why it closed.
	Closed time.Time
	Reason Reason
	// ReopenOf is the interval of the same key before this one (0 for
	// the first).
	ReopenOf int64
}

// OpenAt says whether the interval was open at t: opened by then and not
// closed by then.
func (iv Interval) OpenAt(t time.Time) bool {
	return !iv.Opened.After(t) && (iv.Closed.IsZero() || iv.Closed.After(t))
}

// ClosedBy says whether the interval had closed at t.
func (iv Interval) ClosedBy(t time.Time) bool { return !iv.Closed.IsZero() && !iv.Closed.After(t) }

// Asset is a host or a service's uploaded inventory with what the
// figures are cut by.
type Asset struct {
	ID       string
	Hostname string
	// Service is set for a service's uploaded inventory (not a machine).
	Service  string
	Labels   map[string]string
	Team     string
	Services []string
	Groups   []string
	Enrolled time.Time
	LastSeen time.Time
}

// Gap is a pause in a host's check-ins of 15 minutes or more: From is
// the last check-in before it, To the one that ended it.
type Gap struct {
	Asset    string
	From, To time.Time
}

// Job is one host's job in a rollout, once settled.
type Job struct {
	Plan     string
	Strategy string
	Host     string
	Outcome  job.Outcome
	Started  time.Time // zero when it never started (no agent, skipped)
	Settled  time.Time
	Packages []string
	Types    []string // the patch types of its targets
	// Checks and ChecksFailed count the health checks the job ran (pre,
	// post, post-rollback) and those that failed.
	Checks, ChecksFailed int
}

// Range bounds what a Store returns: intervals opened by To that were
// still open after After (or are due in (After, To]); gaps that end after After
// and begin by To; jobs settled in (After, To].
type Range struct {
	After, To time.Time
	// Detail asks for what a listing shows (ecosystem, package,
	// vulnerability, fixed version); the figures need none of it.
	Detail bool
}

// Store is what the figures are read from.
type Store interface {
	// Intervals returns the exposure intervals opened by r.To that were
	// open at some time after r.After, or are due in (r.After, r.To].
	Intervals(ctx context.Context, r Range) ([]Interval, error)
	// OpenIntervals returns the intervals open at t with only what a
	// listing sorts and filters by: ID, Asset, Priority, Cycle, Opened,
	// Due.
	OpenIntervals(ctx context.Context, t time.Time) ([]Interval, error)
	// IntervalsByID returns the intervals of ids whole (with detail),
	// their fix release as known at t.
	IntervalsByID(ctx context.Context, ids []int64, t time.Time) ([]Interval, error)
	// Gaps returns the check-in gaps overlapping (r.After, r.To].
	Gaps(ctx context.Context, r Range) ([]Gap, error)
	// Jobs returns the jobs settled in (r.After, r.To].
	Jobs(ctx context.Context, r Range) ([]Job, error)
}

// Assets lists the assets with their cut dimensions (team, services,
// host groups): the server resolves them from the policy.
type Assets func(ctx context.Context) ([]Asset, error)

// ErrBadQuery is what every error about a query's values is (errors.Is):
// the query, not the store, is at fault.
var ErrBadQuery = errors.New("bad KPI query")

// QueryError says what is wrong with a query.
type QueryError struct{ Msg string }

func (e *QueryError) Error() string { return e.Msg }

// Is makes a QueryError an ErrBadQuery.
func (e *QueryError) Is(target error) bool { return target == ErrBadQuery }

func badQuery(format string, args ...any) error {
	return &QueryError{Msg: fmt.Sprintf(format, args...)}
}
