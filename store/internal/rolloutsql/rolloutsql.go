// Package rolloutsql stores patch plans, the rollouts they become and
// every host's job in them, the server's job-signing key, the release age
// of updates and webhook deliveries, on database/sql for SQLite and
// PostgreSQL alike.
//
// A rollout's aggregate (state, ring, bake) is one row changed by compare
// and swap on its version; each host's job is its own row, settled by a
// conditional update on (attempt, no outcome yet): a stale or repeated
// report changes nothing.
package rolloutsql

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/patchbay/patchbay/audit"
	"github.com/patchbay/patchbay/job"
	"github.com/patchbay/patchbay/rollout"
	"github.com/patchbay/patchbay/store/internal/auditsql"
	"github.com/patchbay/patchbay/store/internal/leasesql"
	"github.com/patchbay/patchbay/store/internal/sqlrows"
	"github.com/patchbay/patchbay/store/internal/unixnano"
)

// Dialect holds one database's SQL for plans, rollouts, server keys,
// update releases and notifications.
type Dialect struct {
	// Key reads a server key: (name) → private_key.
	Key string
	// InsertKey stores a server key, nothing when one exists: (name,
	// private_key, created_at).
	InsertKey string
	// SwapKey replaces a server key's value only while it is the one
	// expected: (new private_key, name, expected private_key).
	SwapKey string
	// InsertNotification queues a delivery: (event, subject, target,
	// payload, created_at, next_at).
	InsertNotification string
	// InsertPlan stores a plan at version 1: (id, state, plan, created_at,
	// updated_at).
	InsertPlan string
	// InsertPlanHost stores a plan's host: (plan_id, host_id, seq, ring, host).
	InsertPlanHost string
	// Plan reads a plan: (id) → plan, machine, version.
	Plan string
	// Plans lists plans, newest first: (limit) → plan, machine, version.
	Plans string
	// Hosts reads a plan's hosts in dispatch order: (plan_id) → host,
	// attempt, started_at, outcome, result, reported_at.
	Hosts string
	// Jobs reads a rollout's jobs in dispatch order: (plan_id) → host_id,
	// ring, attempt, started_at, outcome.
	Jobs string
	// UpdatePlan writes a plan by compare and swap on its version: (state,
	// plan, machine, machine_state, updated_at, id, version).
	UpdatePlan string
	// StepPlan writes a rollout's aggregate by compare and swap on its
	// version: (machine, machine_state, updated_at, id, version).
	StepPlan string
	// StartJob starts a job not started yet: (attempt, started_at, job,
	// dispatch_seq, plan_id, host_id).
	StartJob string
	// SettleJob settles a job not settled yet: (outcome, attempt,
	// reported_at, plan_id, host_id, attempt).
	SettleJob string
	// RevertJob starts the revert of a host's succeeded job after its
	// rollout halted: (attempt, job, dispatch_seq, plan_id, host_id,
	// attempt), only from the attempt before, once; the job's start and
	// result stay until the revert reports.
	RevertJob string
	// Alert is the SQL of received alerts and job timelines.
	Alert AlertDialect
	// ReportJob settles the running attempt of a job: (outcome, result,
	// reported_at, plan_id, host_id, attempt).
	ReportJob string
	// Pending lists a host's pending jobs in dispatch order: (host_id) →
	// plan_id, job.
	Pending string
	// DispatchedSince lists the pending jobs dispatched after a sequence:
	// (dispatch_seq) → host_id, dispatch_seq.
	DispatchedSince string
	// SeeUpdate records an update's first sighting, nothing when seen
	// before: (ecosystem, name, version, first_seen).
	SeeUpdate string
	// Released reads an ecosystem's update releases: (ecosystem) → name,
	// version, first_seen.
	Released string
	// Notifications lists deliveries, newest first: (limit) →
	// NotificationColumns.
	Notifications string
	// NotificationsOf is Notifications of one subject: (subject, limit).
	NotificationsOf string
	// Due lists the deliveries due: (next_at, limit) → NotificationColumns.
	Due string
	// Delivered, Failed and Retry record a delivery attempt: (last_status,
	// last_error, delivered_at, id), (last_status, last_error, failed_at,
	// id) and (last_status, last_error, next_at, id).
	Delivered, Failed, Retry string
}

// Store keeps plans and rollouts.
type Store struct {
	DB     *sql.DB
	D      *Dialect
	S      *ScheduleDialect
	Audit  *auditsql.Store
	Leases *leasesql.Store
	// WriteLock serialises this process's write transactions on SQLite.
	WriteLock *sync.Mutex
}

func (s *Store) tx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	if s.WriteLock != nil {
		s.WriteLock.Lock()
		defer s.WriteLock.Unlock()
	}
	tx, err := s.DB.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit()
}

// Key returns the named key, made by gen and stored at the first call:
// every replica signs with the one key the first made.
func (s *Store) Key(ctx context.Context, name string, gen func() (string, error), now time.Time) (string, error) {
	var k string
	err := s.DB.QueryRowContext(ctx, s.D.Key, name).Scan(&k)
	if err == nil {
		return k, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("server key %s: %w", name, err)
	}
	fresh, err := gen()
	if err != nil {
		return "", err
	}
	if err := s.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, s.D.InsertKey, name, fresh, now.UnixNano())
		return err
	}); err != nil {
		return "", fmt.Errorf("server key %s: %w", name, err)
	}
	if err := s.DB.QueryRowContext(ctx, s.D.Key, name).Scan(&k); err != nil {
		return "", fmt.Errorf("server key %s: %w", name, err)
	}
	return k, nil
}

// StoredKey reads the named key's value; ok is false when there is none.
func (s *Store) StoredKey(ctx context.Context, name string) (value string, ok bool, err error) {
	err = s.DB.QueryRowContext(ctx, s.D.Key, name).Scan(&value)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("server key %s: %w", name, err)
	}
	return value, true, nil
}

// SwapKey replaces the named key's value with next only while it holds
// old (compare-and-swap: of replicas migrating the same key, one does),
// and tells whether it did.
func (s *Store) SwapKey(ctx context.Context, name, old, next string) (bool, error) {
	var n int64
	if err := s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.D.SwapKey, next, name, old)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	}); err != nil {
		return false, fmt.Errorf("server key %s: %w", name, err)
	}
	return n == 1, nil
}

func (s *Store) record(ctx context.Context, tx *sql.Tx, subject string, now time.Time, evs []rollout.Event) error {
	for _, e := range evs {
		digest, err := audit.DigestOf(e.Change)
		if err != nil {
			return err
		}
		if _, err := s.Audit.AppendTx(ctx, tx, e.Actor, e.Action, e.Object, digest); err != nil {
			return err
		}
		if e.Notify == "" {
			continue
		}
		b, err := json.Marshal(e.Payload)
		if err != nil {
			return err
		}
		for _, t := range e.Targets {
			if _, err := tx.ExecContext(ctx, s.D.InsertNotification,
				e.Notify, subject, t, string(b), now.UnixNano(), now.UnixNano()); err != nil {
				return fmt.Errorf("queue notification: %w", err)
			}
		}
	}
	return nil
}

// CreatePlan stores a resolved plan and its hosts, with its events.
func (s *Store) CreatePlan(ctx context.Context, p *rollout.Plan, now time.Time, evs ...rollout.Event) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if err := s.createPlanTx(ctx, tx, p, now); err != nil {
			return err
		}
		return s.record(ctx, tx, p.ID, now, evs)
	})
}

func marshal(v any) (string, error) {
	b, err := json.Marshal(v)
	return string(b), err
}

// Plan reads a plan (with its hosts when hosts is set).
func (s *Store) Plan(ctx context.Context, id string, hosts bool) (rollout.Row, error) {
	var r rollout.Row
	var pj, mj string
	err := s.DB.QueryRowContext(ctx, s.D.Plan, id).Scan(&pj, &mj, &r.Version)
	if errors.Is(err, sql.ErrNoRows) {
		return r, fmt.Errorf("%w: %s", rollout.ErrNotFound, id)
	}
	if err != nil {
		return r, fmt.Errorf("plan %s: %w", id, err)
	}
	if err := json.Unmarshal([]byte(pj), &r.Plan); err != nil {
		return r, fmt.Errorf("plan %s: %w", id, err)
	}
	if mj != "" {
		if err := json.Unmarshal([]byte(mj), &r.Machine); err != nil {
			return r, fmt.Errorf("plan %s: rollout: %w", id, err)
		}
	}
	if hosts {
		hs, err := s.Hosts(ctx, id)
		if err != nil {
			return r, err
		}
		for _, h := range hs {
			r.Plan.Hosts = append(r.Plan.Hosts, h.PlanHost)
		}
	}
	return r, nil
}

// Plans lists plans, newest first, without their hosts.
func (s *Store) Plans(ctx context.Context, limit int) ([]rollout.Row, error) {
	rows, err := s.DB.QueryContext(ctx, s.D.Plans, limit)
	if err != nil {
		return nil, fmt.Errorf("plans: %w", err)
	}
	defer rows.Close()
	out := []rollout.Row{}
	for rows.Next() {
		var r rollout.Row
		var pj, mj string
		if err := rows.Scan(&pj, &mj, &r.Version); err != nil {
			return nil, fmt.Errorf("plans: %w", err)
		}
		if err := json.Unmarshal([]byte(pj), &r.Plan); err != nil {
			return nil, err
		}
		if mj != "" {
			if err := json.Unmarshal([]byte(mj), &r.Machine); err != nil {
				return nil, err
			}
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// Hosts reads a plan's hosts in dispatch order.
func (s *Store) Hosts(ctx context.Context, id string) ([]rollout.HostStatus, error) {
	rows, err := s.DB.QueryContext(ctx, s.D.Hosts, id)
	if err != nil {
		return nil, fmt.Errorf("plan %s hosts: %w", id, err)
	}
	defer rows.Close()
	var out []rollout.HostStatus
	for rows.Next() {
		var h rollout.HostStatus
		var hj, res string
		var started, reported int64
		if err := rows.Scan(&hj, &h.Attempt, &started, &h.Outcome, &res, &reported); err != nil {
			return nil, fmt.Errorf("plan %s hosts: %w", id, err)
		}
		if err := json.Unmarshal([]byte(hj), &h.PlanHost); err != nil {
			return nil, err
		}
		if res != "" {
			h.Result = json.RawMessage(res)
		}
		h.Started, h.ReportedAt = unixnano.To(started), unixnano.To(reported)
		out = append(out, h)
	}
	return out, rows.Err()
}

// Jobs reads a rollout's jobs for its state machine, in dispatch order.
func (s *Store) Jobs(ctx context.Context, id string) ([]*rollout.HostJob, error) {
	rows, err := s.DB.QueryContext(ctx, s.D.Jobs, id)
	if err != nil {
		return nil, fmt.Errorf("rollout %s jobs: %w", id, err)
	}
	defer rows.Close()
	var out []*rollout.HostJob
	for rows.Next() {
		j := &rollout.HostJob{}
		var started int64
		if err := rows.Scan(&j.Host, &j.Ring, &j.Attempt, &started, &j.Outcome); err != nil {
			return nil, fmt.Errorf("rollout %s jobs: %w", id, err)
		}
		j.Started = unixnano.To(started)
		out = append(out, j)
	}
	return out, rows.Err()
}

// Update writes a changed plan and, once started, its rollout's aggregate
// (the jobs are not written here), by compare and swap on the version it
// was read at (rollout.ErrConflict when it moved), with its events.
func (s *Store) Update(ctx context.Context, r rollout.Row, now time.Time, evs ...rollout.Event) error {
	id, version := r.Plan.ID, r.Version
	head := *r.Plan
	head.Hosts = nil
	pb, err := json.Marshal(head)
	if err != nil {
		return err
	}
	mj, mstate := "", ""
	if r.Machine != nil {
		mj, mstate, err = machineJSON(r.Machine)
		if err != nil {
			return err
		}
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.D.UpdatePlan,
			r.Plan.State, string(pb), mj, mstate, now.UnixNano(), id, version)
		if err != nil {
			return fmt.Errorf("update plan %s: %w", id, err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return fmt.Errorf("update plan %s: %w", id, rollout.ErrConflict)
		}
		return s.record(ctx, tx, id, now, evs)
	})
}

func machineJSON(m *rollout.Machine) (string, string, error) {
	agg := *m
	agg.Jobs = nil
	b, err := json.Marshal(agg)
	return string(b), string(m.State), err
}

// Step writes a scheduler step in one transaction, fenced by the
// leader's term: the aggregate (compare and swap on version), the jobs it
// starts (only those not started yet), the outcomes it settles (only
// those not settled yet) and its events. It returns how many jobs it
// started.
func (s *Store) Step(ctx context.Context, fence rollout.Fence, r rollout.Row, starts []rollout.Dispatch, settles []rollout.Settle, now time.Time, evs ...rollout.Event) (int, error) {
	id, version := r.Plan.ID, r.Version
	mj, mstate, err := machineJSON(r.Machine)
	if err != nil {
		return 0, err
	}
	started := 0
	err = s.tx(ctx, func(tx *sql.Tx) error {
		if fence.Term != 0 {
			if err := s.Leases.FenceTx(ctx, tx, fence.Lease, fence.Term); err != nil {
				return err
			}
		}
		res, err := tx.ExecContext(ctx, s.D.StepPlan,
			mj, mstate, now.UnixNano(), id, version)
		if err != nil {
			return fmt.Errorf("rollout %s step: %w", id, err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return fmt.Errorf("rollout %s step: %w", id, rollout.ErrConflict)
		}
		if len(starts) > 0 {
			var seq int64
			if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(dispatch_seq), 0) FROM plan_hosts`).Scan(&seq); err != nil {
				return err
			}
			st, err := tx.PrepareContext(ctx, s.D.StartJob)
			if err != nil {
				return err
			}
			defer st.Close()
			for _, d := range starts {
				seq++
				var res sql.Result
				if d.Revert {
					res, err = tx.ExecContext(ctx, s.D.RevertJob, d.Attempt, d.Job, seq, id, d.Host, d.Attempt)
				} else {
					res, err = st.ExecContext(ctx, d.Attempt, d.Started.UnixNano(), d.Job, seq, id, d.Host)
				}
				if err != nil {
					return fmt.Errorf("rollout %s: start %s: %w", id, d.Host, err)
				}
				if n, _ := res.RowsAffected(); n == 1 {
					started++
				}
			}
		}
		for _, st := range settles {
			if _, err := tx.ExecContext(ctx, s.D.SettleJob,
				st.Outcome, st.Attempt, now.UnixNano(), id, st.Host, st.Attempt); err != nil {
				return fmt.Errorf("rollout %s: settle %s: %w", id, st.Host, err)
			}
		}
		return s.record(ctx, tx, id, now, evs)
	})
	return started, err
}

// Report settles a host's job with its outcome and result, once: only the
// host's current attempt, only while unsettled.
func (s *Store) Report(ctx context.Context, id, host string, attempt int, o job.Outcome, result []byte, now time.Time, evs ...rollout.Event) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.D.ReportJob,
			o, string(result), now.UnixNano(), id, host, attempt)
		if err != nil {
			return fmt.Errorf("report %s/%s: %w", id, host, err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return fmt.Errorf("%w: job %s/%s attempt %d is not the host's running attempt", rollout.ErrStale, id, host, attempt)
		}
		return s.record(ctx, tx, id, now, evs)
	})
}

// Active lists the rollouts not yet ended (running, baking, awaiting
// promotion, paused).
func (s *Store) Active(ctx context.Context) ([]string, error) {
	return sqlrows.Strings(ctx, s.DB, "active rollouts", `SELECT id FROM plans WHERE machine_state IN ('running', 'baking', 'awaiting_promotion', 'paused') ORDER BY created_at`)
}

// PendingJob is a job dispatched to a host and not settled.
type PendingJob struct {
	Plan string
	Job  string
}

// Pending returns the signed jobs a host has to run: dispatched, not
// settled, of a rollout neither halted nor aborted (no job starts after).
func (s *Store) Pending(ctx context.Context, host string) ([]PendingJob, error) {
	rows, err := s.DB.QueryContext(ctx, s.D.Pending, host)
	if err != nil {
		return nil, fmt.Errorf("pending jobs of %s: %w", host, err)
	}
	defer rows.Close()
	var out []PendingJob
	for rows.Next() {
		var p PendingJob
		if err := rows.Scan(&p.Plan, &p.Job); err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// DispatchedSince returns the hosts with a job dispatched after seq and
// still pending, and the highest dispatch sequence seen.
func (s *Store) DispatchedSince(ctx context.Context, seq int64) ([]string, int64, error) {
	rows, err := s.DB.QueryContext(ctx, s.D.DispatchedSince, seq)
	if err != nil {
		return nil, seq, fmt.Errorf("dispatched jobs: %w", err)
	}
	defer rows.Close()
	var hosts []string
	for rows.Next() {
		var h string
		var n int64
		if err := rows.Scan(&h, &n); err != nil {
			return nil, seq, err
		}
		hosts = append(hosts, h)
		seq = max(seq, n)
	}
	return hosts, seq, rows.Err()
}

// LastSeen returns when every host was last seen.
func (s *Store) LastSeen(ctx context.Context) (map[string]time.Time, error) {
	rows, err := s.DB.QueryContext(ctx, `SELECT id, last_seen FROM hosts`)
	if err != nil {
		return nil, fmt.Errorf("hosts last seen: %w", err)
	}
	defer rows.Close()
	out := map[string]time.Time{}
	for rows.Next() {
		var id string
		var at int64
		if err := rows.Scan(&id, &at); err != nil {
			return nil, err
		}
		out[id] = unixnano.To(at)
	}
	return out, rows.Err()
}

// LastDispatch is the highest dispatch sequence so far.
func (s *Store) LastDispatch(ctx context.Context) (int64, error) {
	var n int64
	err := s.DB.QueryRowContext(ctx, `SELECT COALESCE(MAX(dispatch_seq), 0) FROM plan_hosts`).Scan(&n)
	return n, err
}

// SeeUpdates records when each update was first seen in the fleet.
func (s *Store) SeeUpdates(ctx context.Context, ecosystem string, updates [][2]string, now time.Time) error {
	if len(updates) == 0 {
		return nil
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		st, err := tx.PrepareContext(ctx, s.D.SeeUpdate)
		if err != nil {
			return err
		}
		defer st.Close()
		for _, u := range updates {
			if _, err := st.ExecContext(ctx, ecosystem, u[0], u[1], now.UnixNano()); err != nil {
				return fmt.Errorf("record update release: %w", err)
			}
		}
		return nil
	})
}

// Released returns when the updates of an ecosystem were first seen,
// keyed "name version".
func (s *Store) Released(ctx context.Context, ecosystem string) (map[string]time.Time, error) {
	rows, err := s.DB.QueryContext(ctx, s.D.Released, ecosystem)
	if err != nil {
		return nil, fmt.Errorf("update releases: %w", err)
	}
	defer rows.Close()
	out := map[string]time.Time{}
	for rows.Next() {
		var n, v string
		var at int64
		if err := rows.Scan(&n, &v, &at); err != nil {
			return nil, err
		}
		out[n+" "+v] = unixnano.To(at)
	}
	return out, rows.Err()
}

// NotificationColumns is the column list of Notifications,
// NotificationsOf and Due, in order.
const NotificationColumns = `id, event, subject, target, payload, created_at, attempts, next_at, delivered_at, failed_at, last_status, last_error`

func scanNotifications(rows *sql.Rows) ([]rollout.Notification, error) {
	defer rows.Close()
	out := []rollout.Notification{}
	for rows.Next() {
		var n rollout.Notification
		var payload string
		var created, next, delivered, failed int64
		if err := rows.Scan(&n.ID, &n.Event, &n.Subject, &n.Target, &payload, &created, &n.Attempts, &next, &delivered, &failed, &n.LastStatus, &n.LastError); err != nil {
			return nil, err
		}
		n.Payload = json.RawMessage(payload)
		n.CreatedAt, n.DeliveredAt, n.FailedAt = unixnano.To(created), unixnano.To(delivered), unixnano.To(failed)
		if delivered == 0 && failed == 0 {
			n.NextAt = unixnano.To(next)
		}
		out = append(out, n)
	}
	return out, rows.Err()
}

// Notifications lists deliveries, newest first; subject filters by plan.
func (s *Store) Notifications(ctx context.Context, subject string, limit int) ([]rollout.Notification, error) {
	q, args := s.D.Notifications, []any{limit}
	if subject != "" {
		q, args = s.D.NotificationsOf, []any{subject, limit}
	}
	rows, err := s.DB.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("notifications: %w", err)
	}
	return scanNotifications(rows)
}

// Due returns the deliveries due at now.
func (s *Store) Due(ctx context.Context, now time.Time, limit int) ([]rollout.Notification, error) {
	rows, err := s.DB.QueryContext(ctx, s.D.Due, now.UnixNano(), limit)
	if err != nil {
		return nil, fmt.Errorf("due notifications: %w", err)
	}
	return scanNotifications(rows)
}

// Attempted records a delivery attempt: delivered, retried at next, or
// given up (next zero, err set).
func (s *Store) Attempted(ctx context.Context, id int64, now time.Time, status int, errMsg string, delivered bool, next time.Time) error {
	var q string
	var at int64
	switch {
	case delivered:
		q, at = s.D.Delivered, now.UnixNano()
	case next.IsZero():
		q, at = s.D.Failed, now.UnixNano()
	default:
		q, at = s.D.Retry, next.UnixNano()
	}
	_, err := s.DB.ExecContext(ctx, q, status, truncate(errMsg, 500), at, id)
	if err != nil {
		return fmt.Errorf("record delivery %d: %w", id, err)
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}

// Record writes events outside a plan's change (a failed scheduled
// backup): their audit entries and notifications, about subject.
func (s *Store) Record(ctx context.Context, subject string, now time.Time, evs ...rollout.Event) error {
	return s.tx(ctx, func(tx *sql.Tx) error { return s.record(ctx, tx, subject, now, evs) })
}
