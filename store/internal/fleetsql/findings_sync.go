// Host findings kept in step with matches: Sync at ingest, SyncScoped
// for rematches, and the syncer that writes new, changed and closed
// findings with their events.

package fleetsql

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/patchbay/patchbay/advisory"
	"github.com/patchbay/patchbay/fleet"
	"github.com/patchbay/patchbay/patch"
	"github.com/patchbay/patchbay/risk"
	"github.com/patchbay/patchbay/store/internal/unixnano"
)

// insertColumns are the columns a new finding is written with.
const insertColumns = "host_id, ecosystem, package, vulnerability, version, priority, severity, fixed, first_seen, due, state, exception, lane, exploitation, automatable, impact, cycle, kev_due, remediated_at"

const updateFinding = `UPDATE host_findings SET version = ?, priority = ?, severity = ?, fixed = ?, due = ?, state = ?, exception = ?, lane = ?,
	exploitation = ?, automatable = ?, impact = ?, cycle = ?, kev_due = ? WHERE id = ?`

// dueOf is a finding's due date counted from when it was first seen: its
// decision's SLA, capped; without a decision, the built-in SLAs.
func dueOf(f fleet.Finding, firstSeen time.Time) int64 {
	if f.SLA > 0 {
		due := firstSeen.Add(f.SLA)
		if !f.DueCap.IsZero() && f.DueCap.Before(due) {
			due = f.DueCap
		}
		return due.UnixNano()
	}
	p := f.Priority
	if p == 0 {
		return 0
	}
	var kev *advisory.KEVEntry
	if !f.KEVDue.IsZero() {
		kev = &advisory.KEVEntry{DueDate: f.KEVDue}
	}
	return risk.DueDate(p, firstSeen, kev).UnixNano()
}

// syncer applies finding changes of one host inside a transaction.
type syncer struct {
	tx             *sql.Tx
	d              *FindingsDialect
	upd            *sql.Stmt
	opened, closed int
	changed        int
	now            time.Time
	cause          string
	closing        []int64 // ids to close at the next flush
	inserting      []pendingInsert
	events         []event
	deferred       bool // flush is called by the caller
	// ex runs the syncer's statements: the transaction's, or a batch's
	// statement cache (IngestInventory).
	ex func(ctx context.Context, query string, args ...any) (sql.Result, error)
}

type event struct {
	finding                int64
	pFrom, pTo, sFrom, sTo string
	reasons                []string
}

func (s *Findings) newSyncer(ctx context.Context, tx *sql.Tx, now time.Time, cause string) (*syncer, error) {
	sy := &syncer{tx: tx, d: s.D, now: now, cause: cause, ex: tx.ExecContext}
	var err error
	if sy.upd, err = tx.PrepareContext(ctx, s.D.Rebind(updateFinding)); err != nil {
		return nil, err
	}
	return sy, nil
}

func (sy *syncer) close() {
	for _, st := range []*sql.Stmt{sy.upd} {
		if st != nil {
			st.Close()
		}
	}
}

// update runs updateFinding: the prepared statement, or through ex.
func (sy *syncer) update(ctx context.Context, args ...any) (sql.Result, error) {
	if sy.upd != nil {
		return sy.upd.ExecContext(ctx, args...)
	}
	return sy.ex(ctx, sy.d.Rebind(updateFinding), args...)
}

func stateOf(f fleet.Finding) string {
	if f.State == "" {
		return stateOpen
	}
	return string(f.State)
}

// apply makes open (the host's open findings in scope, by key) into
// current, adjusting counts (of findings in the open state, by
// priority).
func (sy *syncer) apply(ctx context.Context, hostID string, open map[string]openRow, current []fleet.Finding, counts map[string]int) error {
	seen := map[string]bool{}
	var fresh []fleet.Finding
	for _, f := range current {
		k := f.Key()
		if seen[k] {
			continue
		}
		seen[k] = true
		st := stateOf(f)
		if o, ok := open[k]; ok {
			due := dueOf(f, unixnano.To(o.firstSeen))
			kevDue := unixnano.From(f.KEVDue)
			if o.version == f.Version && o.priority == f.Priority.String() && o.severity == f.Severity && o.fixed == f.Fixed && o.due == due &&
				o.state == st && o.exception == f.Exception && o.lane == string(f.Lane) && o.exploitation == string(f.Exploitation) &&
				o.automatable == f.Automatable && o.impact == f.Impact && o.cycle == cycleOf(f) && o.kevDue == kevDue {
				continue
			}
			if _, err := sy.update(ctx, f.Version, f.Priority.String(), f.Severity, f.Fixed, due, st, f.Exception, string(f.Lane),
				string(f.Exploitation), f.Automatable, f.Impact, cycleOf(f), kevDue, o.id); err != nil {
				return fmt.Errorf("sync findings of %s: %w", hostID, err)
			}
			sy.changed++
			if o.priority != f.Priority.String() || o.state != st {
				sy.events = append(sy.events, event{o.id, o.priority, f.Priority.String(), o.state, st, f.Reasons})
			}
			if o.state == stateOpen {
				counts[o.priority]--
			}
			if st == stateOpen {
				counts[f.Priority.String()]++
			}
			continue
		}
		fresh = append(fresh, f)
		if st == stateOpen {
			counts[f.Priority.String()]++
		}
		sy.opened++
	}
	for _, f := range fresh {
		sy.inserting = append(sy.inserting, pendingInsert{hostID, f})
	}
	for k, o := range open {
		if seen[k] {
			continue
		}
		sy.closing = append(sy.closing, o.id)
		if o.state == stateOpen {
			counts[o.priority]--
		}
		sy.closed++
	}
	if !sy.deferred {
		return sy.flush(ctx)
	}
	return nil
}

func cycleOf(f fleet.Finding) string {
	if f.Cycle == "" {
		return string(patch.CycleSystem)
	}
	return string(f.Cycle)
}

type pendingInsert struct {
	host string
	f    fleet.Finding
}

// flush writes the new findings, the closes and the events collected so
// far, in multi-row statements: a first inventory opens thousands, a
// rematch one on each of thousands of hosts.
func (sy *syncer) flush(ctx context.Context) error {
	const rows = 50
	for start := 0; start < len(sy.inserting); start += rows {
		chunk := sy.inserting[start:min(start+rows, len(sy.inserting))]
		args := make([]any, 0, 18*len(chunk))
		for _, p := range chunk {
			f := p.f
			exp, imp := string(f.Exploitation), f.Impact
			if exp == "" {
				exp = "none"
			}
			if imp == "" {
				imp = "partial"
			}
			args = append(args, p.host, f.Ecosystem, f.Package, f.Vulnerability, f.Version, f.Priority.String(), f.Severity, f.Fixed, sy.now.UnixNano(), dueOf(f, sy.now),
				stateOf(f), f.Exception, string(f.Lane), exp, f.Automatable, imp, cycleOf(f), unixnano.From(f.KEVDue))
		}
		q := "INSERT INTO host_findings(" + insertColumns + ") VALUES " +
			strings.TrimSuffix(strings.Repeat("(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,0),", len(chunk)), ",")
		if _, err := sy.ex(ctx, sy.d.Rebind(q), args...); err != nil {
			return fmt.Errorf("open findings: %w", err)
		}
	}
	sy.inserting = sy.inserting[:0]
	const batch = 500
	for start := 0; start < len(sy.closing); start += batch {
		chunk := sy.closing[start:min(start+batch, len(sy.closing))]
		args := make([]any, 0, len(chunk)+1)
		args = append(args, sy.now.UnixNano())
		for _, id := range chunk {
			args = append(args, id)
		}
		q := "UPDATE host_findings SET remediated_at = ? WHERE id IN (" + strings.TrimSuffix(strings.Repeat("?,", len(chunk)), ",") + ")"
		if _, err := sy.ex(ctx, sy.d.Rebind(q), args...); err != nil {
			return fmt.Errorf("close findings: %w", err)
		}
	}
	sy.closing = sy.closing[:0]
	const evRows = 100
	for start := 0; start < len(sy.events); start += evRows {
		chunk := sy.events[start:min(start+evRows, len(sy.events))]
		args := make([]any, 0, 8*len(chunk))
		for _, e := range chunk {
			reasons, _ := json.Marshal(e.reasons)
			if e.reasons == nil {
				reasons = []byte("[]")
			}
			args = append(args, e.finding, sy.now.UnixNano(), e.pFrom, e.pTo, e.sFrom, e.sTo, sy.cause, string(reasons))
		}
		q := "INSERT INTO finding_events(finding_id, at, priority_from, priority_to, state_from, state_to, cause, reasons) VALUES " +
			strings.TrimSuffix(strings.Repeat("(?,?,?,?,?,?,?,?),", len(chunk)), ",")
		if _, err := sy.ex(ctx, sy.d.Rebind(q), args...); err != nil {
			return fmt.Errorf("finding history: %w", err)
		}
	}
	sy.events = sy.events[:0]
	return nil
}

func readOpen(ctx context.Context, tx *sql.Tx, q string, args ...any) (map[string]openRow, error) {
	rows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	return readOpenRows(rows)
}

// readOpenRows reads (and closes) rows of OpenColumns, by finding key.
func readOpenRows(rows *sql.Rows) (map[string]openRow, error) {
	defer rows.Close()
	open := map[string]openRow{}
	for rows.Next() {
		var o openRow
		var f fleet.Finding
		if err := scanOpen(rows, &o, &f); err != nil {
			return nil, err
		}
		open[f.Key()] = o
	}
	return open, rows.Err()
}

// Sync makes the host's open findings those of current: new ones open
// (first seen now), those still present are updated, and those gone are
// closed as remediated now. It returns how many opened and closed.
func (s *Findings) Sync(ctx context.Context, hostID string, current []fleet.Finding, now time.Time, cause string) (opened, closed int, err error) {
	defer lockWrites(s.D.WriteLock)()
	tx, err := s.DB.BeginTx(ctx, nil)
	if err != nil {
		return 0, 0, err
	}
	defer tx.Rollback()
	counts, err := s.lockHost(ctx, tx, hostID)
	if err != nil {
		return 0, 0, err
	}
	open, err := readOpen(ctx, tx, s.D.Open, hostID)
	if err != nil {
		return 0, 0, fmt.Errorf("sync findings of %s: %w", hostID, err)
	}
	sy, err := s.newSyncer(ctx, tx, now, cause)
	if err != nil {
		return 0, 0, err
	}
	defer sy.close()
	if err := sy.apply(ctx, hostID, open, current, counts); err != nil {
		return 0, 0, err
	}
	if err := s.setCounts(ctx, tx, hostID, counts); err != nil {
		return 0, 0, err
	}
	return sy.opened, sy.closed, tx.Commit()
}

// SyncScoped applies scoped changes of many hosts in one transaction,
// under the leader's fence.
func (s *Findings) SyncScoped(ctx context.Context, changes []fleet.ScopedChange, now time.Time, fence fleet.Fence, cause string) (opened, closed int, err error) {
	if len(changes) == 0 {
		return 0, 0, nil
	}
	// Host rows are locked in id order, as in every multi-host
	// transaction: two of them cannot deadlock.
	changes = slices.Clone(changes)
	slices.SortFunc(changes, func(a, b fleet.ScopedChange) int { return strings.Compare(a.HostID, b.HostID) })
	defer lockWrites(s.D.WriteLock)()
	tx, err := s.DB.BeginTx(ctx, nil)
	if err != nil {
		return 0, 0, err
	}
	defer tx.Rollback()
	if fence.Term != 0 {
		if err := s.Fencer.FenceTx(ctx, tx, fence.Lease, fence.Term); err != nil {
			return 0, 0, err
		}
	}
	sy, err := s.newSyncer(ctx, tx, now, cause)
	if err != nil {
		return 0, 0, err
	}
	defer sy.close()
	sy.deferred = true
	// A few statements per 500 hosts, not per host: the packages in
	// scope are few (those the changed advisories name), the hosts many.
	const chunk = 500
	for start := 0; start < len(changes); start += chunk {
		part := changes[start:min(start+chunk, len(changes))]
		ids := make([]any, len(part))
		names := map[string]bool{}
		for i, c := range part {
			ids[i] = c.HostID
			for _, pid := range c.Scope {
				names[pid.Name] = true
			}
		}
		in := strings.TrimSuffix(strings.Repeat("?,", len(ids)), ",")
		counts, err := s.lockCounts(ctx, tx, "SELECT id, open_counts FROM hosts WHERE id IN ("+in+") ORDER BY id"+s.D.ForUpdate, ids)
		if err != nil {
			return 0, 0, fmt.Errorf("rematch: %w", err)
		}
		args := append([]any(nil), ids...)
		for n := range names {
			args = append(args, n)
		}
		q := "SELECT host_id, " + OpenColumns + " FROM host_findings WHERE remediated_at = 0 AND host_id IN (" + in + ") AND package IN (" +
			strings.TrimSuffix(strings.Repeat("?,", len(names)), ",") + ")"
		rows, err := tx.QueryContext(ctx, s.D.Rebind(q), args...)
		if err != nil {
			return 0, 0, fmt.Errorf("rematch: %w", err)
		}
		open := map[string]map[string]openRow{}
		type hostPkg struct{ host, eco, name string }
		found := map[hostPkg]map[string]openRow{}
		for rows.Next() {
			var host string
			var o openRow
			var f fleet.Finding
			if err := rows.Scan(&host, &o.id, &f.Ecosystem, &f.Package, &f.Vulnerability, &o.priority, &o.firstSeen, &o.version, &o.severity, &o.fixed, &o.due,
				&o.state, &o.exception, &o.lane, &o.exploitation, &o.automatable, &o.impact, &o.cycle, &o.kevDue); err != nil {
				rows.Close()
				return 0, 0, err
			}
			hp := hostPkg{host, f.Ecosystem, f.Package}
			if found[hp] == nil {
				found[hp] = map[string]openRow{}
			}
			found[hp][f.Key()] = o
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return 0, 0, err
		}
		var dirty []string
		for _, c := range part {
			cnt, ok := counts[c.HostID]
			if !ok {
				continue // deleted meanwhile
			}
			o := map[string]openRow{}
			for _, pid := range c.Scope {
				for k, r := range found[hostPkg{c.HostID, pid.Ecosystem, pid.Name}] {
					o[k] = r
				}
			}
			open[c.HostID] = o
			before := sy.opened + sy.closed + sy.changed
			if err := sy.apply(ctx, c.HostID, o, c.Findings, cnt); err != nil {
				return 0, 0, err
			}
			if sy.opened+sy.closed+sy.changed != before {
				dirty = append(dirty, c.HostID)
			}
		}
		if err := sy.flush(ctx); err != nil {
			return 0, 0, err
		}
		// Counts of the hosts that changed, in one statement per chunk.
		if err := s.writeCounts(ctx, tx, dirty, counts); err != nil {
			return 0, 0, fmt.Errorf("rematch counts: %w", err)
		}
	}
	return sy.opened, sy.closed, tx.Commit()
}
