// Package kpisql reads the exposure ledger, the check-in gaps and the
// job results for package kpi, and writes the daily snapshots. The
// ledger itself is kept by triggers on the findings tables (migration
// 00014), so it follows the findings whichever code writes them.
package kpisql

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/patchbay/patchbay/job"
	"github.com/patchbay/patchbay/kpi"
	"github.com/patchbay/patchbay/rollout"
	"github.com/patchbay/patchbay/store/internal/unixnano"
)

// Dialect is one database's SQL for the KPI store.
type Dialect struct {
	// Rebind turns '?' placeholders into the database's.
	Rebind func(string) string
	// WriteLock serialises writers (SQLite); nil where the database does.
	WriteLock *sync.Mutex
}

// Store is the KPI store.
type Store struct {
	DB *sql.DB
	D  *Dialect
}

var _ kpi.Store = (*Store)(nil)

// intervalColumns are what Intervals reads: the fix's release is the
// first time an agent saw the fixed version offered (update_releases)
// when that was known by the range's end (the as-of date), else the
// interval's open. detailColumns are added for a listing.
const (
	intervalColumns = `l.id, l.host_id, l.priority || ' ' || l.cycle || ' ' || l.close_reason,
	CASE WHEN l.fixed = '' THEN 0 WHEN r.first_seen <= ? THEN r.first_seen ELSE l.opened_at END,
	l.opened_at, l.due, l.closed_at, l.reopen_of`
	detailColumns = `, l.finding_id, l.ecosystem, l.package, l.vulnerability, l.fixed`
)

// Intervals implements kpi.Store.
func (s *Store) Intervals(ctx context.Context, r kpi.Range) ([]kpi.Interval, error) {
	after, to := unixnano.From(r.After), unixnano.From(r.To)
	cols := intervalColumns
	if r.Detail {
		cols += detailColumns
	}
	// Three parts, each on its index: what is open, what closed after
	// the range began, what closed before it but is due in it.
	from := ` FROM exposure_ledger l LEFT JOIN update_releases r ON r.ecosystem = l.ecosystem AND r.name = l.package AND r.version = l.fixed WHERE `
	rows, err := s.DB.QueryContext(ctx, s.D.Rebind(`SELECT `+cols+from+`l.closed_at = 0 AND l.opened_at <= ?
		UNION ALL SELECT `+cols+from+`l.closed_at > ? AND l.opened_at <= ?
		UNION ALL SELECT `+cols+from+`l.closed_at <> 0 AND l.closed_at <= ? AND l.due > ? AND l.due <= ? AND l.opened_at <= ?`),
		to, to, to, after, to, to, after, after, to, to)
	if err != nil {
		return nil, fmt.Errorf("exposure ledger: %w", err)
	}
	defer rows.Close()
	out, err := scanIntervals(rows, r.Detail)
	if err != nil {
		return nil, fmt.Errorf("exposure ledger: %w", err)
	}
	return out, nil
}

// scanIntervals reads intervalColumns (and detailColumns) rows; the
// assets' strings are shared, and the priority, cycle and reason come
// as one column (a few distinct values over many rows: each read once).
// The rows gather in chunks, copied once into a slice of their number.
func scanIntervals(rows *sql.Rows, detail bool) ([]kpi.Interval, error) {
	in := interner{}
	type kind struct {
		prio, cycle string
		reason      kpi.Reason
	}
	kinds := map[string]kind{}
	const chunk = 8192
	var chunks [][]kpi.Interval
	cur := make([]kpi.Interval, 0, chunk)
	var asset, pcr sql.RawBytes
	for rows.Next() {
		var iv kpi.Interval
		var released, opened, due, closed int64
		dest := []any{&iv.ID, &asset, &pcr, &released, &opened, &due, &closed, &iv.ReopenOf}
		if detail {
			dest = append(dest, &iv.FindingID, &iv.Ecosystem, &iv.Package, &iv.Vulnerability, &iv.Fixed)
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, err
		}
		k, ok := kinds[string(pcr)]
		if !ok {
			parts := strings.SplitN(string(pcr), " ", 3)
			if len(parts) != 3 {
				return nil, fmt.Errorf("interval %d: priority, cycle and reason %q", iv.ID, pcr)
			}
			k = kind{parts[0], parts[1], kpi.Reason(parts[2])}
			kinds[string(pcr)] = k
		}
		iv.Asset, iv.Priority, iv.Cycle, iv.Reason = in.get(asset), k.prio, k.cycle, k.reason
		iv.FixReleased, iv.Opened, iv.Due, iv.Closed = unixnano.To(released), unixnano.To(opened), unixnano.To(due), unixnano.To(closed)
		if len(cur) == chunk {
			chunks = append(chunks, cur)
			cur = make([]kpi.Interval, 0, chunk)
		}
		cur = append(cur, iv)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	out := make([]kpi.Interval, 0, len(chunks)*chunk+len(cur))
	for _, c := range chunks {
		out = append(out, c...)
	}
	return append(out, cur...), nil
}

// interner shares equal strings.
type interner map[string]string

func (in interner) get(b []byte) string {
	if s, ok := in[string(b)]; ok {
		return s
	}
	s := string(b)
	in[s] = s
	return s
}

// OpenIntervals implements kpi.Store: the open intervals' ID, asset,
// priority, cycle, open and due date, on the table's order (what is
// open, what closed after t).
func (s *Store) OpenIntervals(ctx context.Context, t time.Time) ([]kpi.Interval, error) {
	at := unixnano.From(t)
	const cols = `SELECT id, host_id, priority, cycle, opened_at, due FROM exposure_ledger WHERE `
	rows, err := s.DB.QueryContext(ctx, s.D.Rebind(cols+`closed_at = 0 AND opened_at <= ? UNION ALL `+cols+`closed_at > ? AND opened_at <= ?`), at, at, at)
	if err != nil {
		return nil, fmt.Errorf("exposure ledger: %w", err)
	}
	defer rows.Close()
	in := interner{}
	out := []kpi.Interval{}
	var asset, prio, cycle sql.RawBytes
	for rows.Next() {
		var iv kpi.Interval
		var opened, due int64
		if err := rows.Scan(&iv.ID, &asset, &prio, &cycle, &opened, &due); err != nil {
			return nil, fmt.Errorf("exposure ledger: %w", err)
		}
		iv.Asset, iv.Priority, iv.Cycle, iv.Opened, iv.Due = in.get(asset), in.get(prio), in.get(cycle), unixnano.To(opened), unixnano.To(due)
		out = append(out, iv)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("exposure ledger: %w", err)
	}
	return out, nil
}

// IntervalsByID implements kpi.Store.
func (s *Store) IntervalsByID(ctx context.Context, ids []int64, t time.Time) ([]kpi.Interval, error) {
	const chunk = 500
	out := []kpi.Interval{}
	for len(ids) > 0 {
		n := min(chunk, len(ids))
		args := []any{unixnano.From(t)}
		for _, id := range ids[:n] {
			args = append(args, id)
		}
		rows, err := s.DB.QueryContext(ctx, s.D.Rebind(`SELECT `+intervalColumns+detailColumns+` FROM exposure_ledger l
			LEFT JOIN update_releases r ON r.ecosystem = l.ecosystem AND r.name = l.package AND r.version = l.fixed
			WHERE l.id IN (?`+strings.Repeat(",?", n-1)+`)`), args...)
		if err != nil {
			return nil, fmt.Errorf("exposure ledger: %w", err)
		}
		ivs, err := scanIntervals(rows, true)
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("exposure ledger: %w", err)
		}
		out = append(out, ivs...)
		ids = ids[n:]
	}
	return out, nil
}

// Gaps implements kpi.Store.
func (s *Store) Gaps(ctx context.Context, r kpi.Range) ([]kpi.Gap, error) {
	rows, err := s.DB.QueryContext(ctx, s.D.Rebind(`SELECT host_id, from_at, to_at FROM host_gaps WHERE to_at > ? AND from_at <= ?`),
		unixnano.From(r.After), unixnano.From(r.To))
	if err != nil {
		return nil, fmt.Errorf("check-in gaps: %w", err)
	}
	defer rows.Close()
	out := []kpi.Gap{}
	for rows.Next() {
		var g kpi.Gap
		var from, to int64
		if err := rows.Scan(&g.Asset, &from, &to); err != nil {
			return nil, fmt.Errorf("check-in gaps: %w", err)
		}
		g.From, g.To = unixnano.To(from), unixnano.To(to)
		out = append(out, g)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("check-in gaps: %w", err)
	}
	return out, nil
}

// Jobs implements kpi.Store: the settled jobs of every rollout, with the
// plan's strategy and the packages and patch types of the host's
// targets.
func (s *Store) Jobs(ctx context.Context, r kpi.Range) ([]kpi.Job, error) {
	rows, err := s.DB.QueryContext(ctx, s.D.Rebind(`SELECT h.plan_id, p.plan, h.host_id, h.host, h.outcome, h.started_at, h.reported_at, h.result
		FROM plan_hosts h JOIN plans p ON p.id = h.plan_id WHERE h.outcome <> '' AND h.reported_at > ? AND h.reported_at <= ?`),
		unixnano.From(r.After), unixnano.From(r.To))
	if err != nil {
		return nil, fmt.Errorf("job results: %w", err)
	}
	defer rows.Close()
	strategies := map[string]string{}
	out := []kpi.Job{}
	for rows.Next() {
		var j kpi.Job
		var plan, host, outcome, result string
		var started, settled int64
		if err := rows.Scan(&j.Plan, &plan, &j.Host, &host, &outcome, &started, &settled, &result); err != nil {
			return nil, fmt.Errorf("job results: %w", err)
		}
		st, ok := strategies[j.Plan]
		if !ok {
			var p struct {
				Strategy string `json:"strategy"`
			}
			if err := json.Unmarshal([]byte(plan), &p); err != nil {
				return nil, fmt.Errorf("job results: plan %s: %w", j.Plan, err)
			}
			st = p.Strategy
			strategies[j.Plan] = st
		}
		var ph rollout.PlanHost
		if err := json.Unmarshal([]byte(host), &ph); err != nil {
			return nil, fmt.Errorf("job results: plan %s host %s: %w", j.Plan, j.Host, err)
		}
		types := map[string]bool{}
		for _, t := range ph.Targets {
			j.Packages = append(j.Packages, t.Name)
			for _, ty := range t.Types {
				if !types[string(ty)] {
					types[string(ty)] = true
					j.Types = append(j.Types, string(ty))
				}
			}
		}
		if result != "" {
			// The health checks the agent reported (a job settled by the
			// server, timed out or without an agent, has none).
			var res struct {
				Checks []struct {
					OK bool `json:"ok"`
				} `json:"checks"`
			}
			if err := json.Unmarshal([]byte(result), &res); err != nil {
				return nil, fmt.Errorf("job results: plan %s host %s: result: %w", j.Plan, j.Host, err)
			}
			for _, c := range res.Checks {
				j.Checks++
				if !c.OK {
					j.ChecksFailed++
				}
			}
		}
		j.Strategy, j.Outcome, j.Started, j.Settled = st, job.Outcome(outcome), unixnano.To(started), unixnano.To(settled)
		out = append(out, j)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("job results: %w", err)
	}
	return out, nil
}

// Snapshot is one day's counts of a priority and cycle.
type Snapshot struct {
	Day      time.Time `json:"day"`
	Priority string    `json:"priority"`
	Cycle    string    `json:"cycle"`
	Open     int       `json:"open"`
	Overdue  int       `json:"overdue"`
	Accepted int       `json:"accepted"`
	Hosts    int       `json:"hosts"`
}

// TakeSnapshot writes the counts of the fleet as it was at day (a UTC
// midnight: the end of the day before) from the ledger, replacing the
// day's earlier snapshot.
func (s *Store) TakeSnapshot(ctx context.Context, day time.Time) error {
	if s.D.WriteLock != nil {
		s.D.WriteLock.Lock()
		defer s.D.WriteLock.Unlock()
	}
	d := unixnano.From(day)
	tx, err := s.DB.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("snapshot %s: %w", day.Format(time.DateOnly), err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, s.D.Rebind(`DELETE FROM kpi_snapshots WHERE day = ?`), d); err != nil {
		return fmt.Errorf("snapshot %s: %w", day.Format(time.DateOnly), err)
	}
	// What was open at the day's start, on the closed_at index: still
	// open, or closed after it; and what was accepted during the day
	// before.
	dayBefore := d - int64(24*time.Hour)
	if _, err := tx.ExecContext(ctx, s.D.Rebind(`INSERT INTO kpi_snapshots(day, priority, cycle, open, overdue, accepted, hosts)
		SELECT ?, priority, cycle, SUM(is_open), SUM(CASE WHEN is_open = 1 AND due <> 0 AND due < ? THEN 1 ELSE 0 END), SUM(1 - is_open),
			COUNT(DISTINCT CASE WHEN is_open = 1 THEN host_id END)
		FROM (SELECT priority, cycle, due, host_id, 1 AS is_open FROM exposure_ledger WHERE closed_at = 0 AND opened_at <= ?
			UNION ALL SELECT priority, cycle, due, host_id, 1 FROM exposure_ledger WHERE closed_at > ? AND opened_at <= ?
			UNION ALL SELECT priority, cycle, due, host_id, 0 FROM exposure_ledger WHERE closed_at > ? AND closed_at <= ? AND close_reason = 'accepted') o
		GROUP BY priority, cycle`), d, d, d, d, d, dayBefore, d); err != nil {
		return fmt.Errorf("snapshot %s: %w", day.Format(time.DateOnly), err)
	}
	return tx.Commit()
}

// Snapshots reads the snapshots of the days in [from, to].
func (s *Store) Snapshots(ctx context.Context, from, to time.Time) ([]Snapshot, error) {
	rows, err := s.DB.QueryContext(ctx, s.D.Rebind(`SELECT day, priority, cycle, open, overdue, accepted, hosts FROM kpi_snapshots
		WHERE day >= ? AND day <= ? ORDER BY day, priority, cycle`), unixnano.From(from), unixnano.From(to))
	if err != nil {
		return nil, fmt.Errorf("snapshots: %w", err)
	}
	defer rows.Close()
	out := []Snapshot{}
	for rows.Next() {
		var sn Snapshot
		var d int64
		if err := rows.Scan(&d, &sn.Priority, &sn.Cycle, &sn.Open, &sn.Overdue, &sn.Accepted, &sn.Hosts); err != nil {
			return nil, fmt.Errorf("snapshots: %w", err)
		}
		sn.Day = unixnano.To(d)
		out = append(out, sn)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("snapshots: %w", err)
	}
	return out, nil
}

// Prune deletes what is older than before: snapshots of earlier days,
// intervals closed before it, gaps that ended before it.
func (s *Store) Prune(ctx context.Context, before time.Time) (int64, error) {
	if s.D.WriteLock != nil {
		s.D.WriteLock.Lock()
		defer s.D.WriteLock.Unlock()
	}
	b := unixnano.From(before)
	var n int64
	for _, q := range []string{
		`DELETE FROM kpi_snapshots WHERE day < ?`,
		`DELETE FROM exposure_ledger WHERE closed_at <> 0 AND closed_at < ?`,
		`DELETE FROM host_gaps WHERE to_at < ?`,
	} {
		res, err := s.DB.ExecContext(ctx, s.D.Rebind(q), b)
		if err != nil {
			return n, fmt.Errorf("prune KPI history: %w", err)
		}
		m, _ := res.RowsAffected()
		n += m
	}
	return n, nil
}
