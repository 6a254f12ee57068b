package fleetsql

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/patchbay/patchbay/advisory"
	"github.com/patchbay/patchbay/fleet"
	"github.com/patchbay/patchbay/risk"
	"github.com/patchbay/patchbay/store/internal/sqlrows"
	"github.com/patchbay/patchbay/store/internal/unixnano"
)

// FindingsDialect holds one database's SQL for host findings.
type FindingsDialect struct {
	LockHost  string // (host_id) → open_counts, serialising syncs of one host
	SetCounts string // (open_counts, host_id)
	Open      string // (host_id) → OpenColumns
	// Rebind turns '?' placeholders into the database's.
	Rebind func(string) string
	// ForUpdate is the row-locking clause of a SELECT ("" for SQLite,
	// whose transactions lock the whole database).
	ForUpdate string
	// WriteLock: see Dialect.WriteLock.
	WriteLock *sync.Mutex
	// UpdateFromValues batches many rows' updates into one UPDATE … FROM
	// (VALUES …) (PostgreSQL, where each statement is a round trip);
	// without it rows are updated one by one with a prepared statement
	// (SQLite, in process, where the join form is an order slower).
	UpdateFromValues bool
	// BeforeUpdateFromValues are run in the transaction first: PostgreSQL
	// plans the join from statistics that lag behind bulk changes, and a
	// hash join over every open finding costs ten times the look-ups by
	// primary key it replaces.
	BeforeUpdateFromValues []string
}

// Fencer checks a leader's term inside a transaction.
type Fencer interface {
	FenceTx(ctx context.Context, tx *sql.Tx, name string, term int64) error
}

// Findings keeps host findings and their history.
type Findings struct {
	DB     *sql.DB
	D      *FindingsDialect
	Fencer Fencer
}

type openRow struct {
	id                                 int64
	priority, version, severity, fixed string
	state, exception, lane             string
	exploitation, impact, cycle        string
	automatable                        bool
	firstSeen, due, kevDue             int64
}

// OpenColumns are what Open returns, in order.
const OpenColumns = "id, ecosystem, package, vulnerability, priority, first_seen, version, severity, fixed, due, state, exception, lane, exploitation, automatable, impact, cycle, kev_due"

func scanOpen(r scanner, o *openRow, f *fleet.Finding) error {
	return r.Scan(&o.id, &f.Ecosystem, &f.Package, &f.Vulnerability, &o.priority, &o.firstSeen, &o.version, &o.severity, &o.fixed, &o.due,
		&o.state, &o.exception, &o.lane, &o.exploitation, &o.automatable, &o.impact, &o.cycle, &o.kevDue)
}

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
	p, err := risk.ParsePriority(f.Priority)
	if err != nil {
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
}

type event struct {
	finding                int64
	pFrom, pTo, sFrom, sTo string
	reasons                []string
}

func (s *Findings) newSyncer(ctx context.Context, tx *sql.Tx, now time.Time, cause string) (*syncer, error) {
	sy := &syncer{tx: tx, d: s.D, now: now, cause: cause}
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

func stateOf(f fleet.Finding) string {
	if f.State == "" {
		return fleet.StateOpen
	}
	return f.State
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
			if o.version == f.Version && o.priority == f.Priority && o.severity == f.Severity && o.fixed == f.Fixed && o.due == due &&
				o.state == st && o.exception == f.Exception && o.lane == f.Lane && o.exploitation == f.Exploitation &&
				o.automatable == f.Automatable && o.impact == f.Impact && o.cycle == cycleOf(f) && o.kevDue == kevDue {
				continue
			}
			if _, err := sy.upd.ExecContext(ctx, f.Version, f.Priority, f.Severity, f.Fixed, due, st, f.Exception, f.Lane,
				f.Exploitation, f.Automatable, f.Impact, cycleOf(f), kevDue, o.id); err != nil {
				return fmt.Errorf("sync findings of %s: %w", hostID, err)
			}
			sy.changed++
			if o.priority != f.Priority || o.state != st {
				sy.events = append(sy.events, event{o.id, o.priority, f.Priority, o.state, st, f.Reasons})
			}
			if o.state == fleet.StateOpen {
				counts[o.priority]--
			}
			if st == fleet.StateOpen {
				counts[f.Priority]++
			}
			continue
		}
		fresh = append(fresh, f)
		if st == fleet.StateOpen {
			counts[f.Priority]++
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
		if o.state == fleet.StateOpen {
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
		return "system"
	}
	return f.Cycle
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
			exp, imp := f.Exploitation, f.Impact
			if exp == "" {
				exp = "none"
			}
			if imp == "" {
				imp = "partial"
			}
			args = append(args, p.host, f.Ecosystem, f.Package, f.Vulnerability, f.Version, f.Priority, f.Severity, f.Fixed, sy.now.UnixNano(), dueOf(f, sy.now),
				stateOf(f), f.Exception, f.Lane, exp, f.Automatable, imp, cycleOf(f), unixnano.From(f.KEVDue))
		}
		q := "INSERT INTO host_findings(" + insertColumns + ") VALUES " +
			strings.TrimSuffix(strings.Repeat("(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,0),", len(chunk)), ",")
		if _, err := sy.tx.ExecContext(ctx, sy.d.Rebind(q), args...); err != nil {
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
		if _, err := sy.tx.ExecContext(ctx, sy.d.Rebind(q), args...); err != nil {
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
		if _, err := sy.tx.ExecContext(ctx, sy.d.Rebind(q), args...); err != nil {
			return fmt.Errorf("finding history: %w", err)
		}
	}
	sy.events = sy.events[:0]
	return nil
}

func (s *Findings) lockHost(ctx context.Context, tx *sql.Tx, hostID string) (map[string]int, error) {
	var b string
	if err := tx.QueryRowContext(ctx, s.D.LockHost, hostID).Scan(&b); errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("host %s: %w", hostID, fleet.ErrNotFound)
	} else if err != nil {
		return nil, fmt.Errorf("sync findings of %s: %w", hostID, err)
	}
	counts := map[string]int{}
	if err := json.Unmarshal([]byte(b), &counts); err != nil {
		return nil, fmt.Errorf("host %s counts: %w", hostID, err)
	}
	return counts, nil
}

func (s *Findings) setCounts(ctx context.Context, tx *sql.Tx, hostID string, counts map[string]int) error {
	for p, n := range counts {
		if n <= 0 {
			delete(counts, p)
		}
	}
	b, _ := json.Marshal(counts)
	if _, err := tx.ExecContext(ctx, s.D.SetCounts, string(b), hostID); err != nil {
		return fmt.Errorf("sync findings of %s: %w", hostID, err)
	}
	return nil
}

func readOpen(ctx context.Context, tx *sql.Tx, q string, args ...any) (map[string]openRow, error) {
	rows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
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

// findingColumns are what scanFinding reads, of host_findings f.
const findingColumns = `f.id, f.host_id, f.ecosystem, f.package, f.vulnerability, f.version, f.priority, f.severity, f.fixed, f.first_seen,
	f.remediated_at, f.due, f.state, f.exception, f.lane, f.exploitation, f.automatable, f.impact, f.cycle, f.kev_due`

func scanFinding(r scanner, f *fleet.Finding, extra ...any) error {
	var first, rem, due, kevDue int64
	dest := []any{&f.ID, &f.HostID, &f.Ecosystem, &f.Package, &f.Vulnerability, &f.Version, &f.Priority, &f.Severity, &f.Fixed, &first, &rem, &due,
		&f.State, &f.Exception, &f.Lane, &f.Exploitation, &f.Automatable, &f.Impact, &f.Cycle, &kevDue}
	if err := r.Scan(append(dest, extra...)...); err != nil {
		return err
	}
	f.FirstSeen, f.RemediatedAt, f.Due, f.KEVDue = unixnano.To(first), unixnano.To(rem), unixnano.To(due), unixnano.To(kevDue)
	return nil
}

// List returns a host's findings, open and closed, oldest first.
func (s *Findings) List(ctx context.Context, hostID string) ([]fleet.Finding, error) {
	rows, err := s.DB.QueryContext(ctx, s.D.Rebind(`SELECT `+findingColumns+` FROM host_findings f WHERE f.host_id = ? ORDER BY f.first_seen, f.id`), hostID)
	if err != nil {
		return nil, fmt.Errorf("list findings of %s: %w", hostID, err)
	}
	defer rows.Close()
	out := []fleet.Finding{}
	for rows.Next() {
		var f fleet.Finding
		if err := scanFinding(rows, &f); err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, rows.Err()
}

// Finding returns one finding by id, with its history, oldest first.
func (s *Findings) Finding(ctx context.Context, id int64) (fleet.Finding, []fleet.FindingEvent, error) {
	var f fleet.Finding
	err := scanFinding(s.DB.QueryRowContext(ctx, s.D.Rebind(`SELECT `+findingColumns+` FROM host_findings f WHERE f.id = ?`), id), &f)
	if errors.Is(err, sql.ErrNoRows) {
		return f, nil, fmt.Errorf("finding %d: %w", id, fleet.ErrNotFound)
	} else if err != nil {
		return f, nil, fmt.Errorf("finding %d: %w", id, err)
	}
	rows, err := s.DB.QueryContext(ctx, s.D.Rebind(`SELECT at, priority_from, priority_to, state_from, state_to, cause, reasons
		FROM finding_events WHERE finding_id = ? ORDER BY at, id`), id)
	if err != nil {
		return f, nil, fmt.Errorf("finding %d history: %w", id, err)
	}
	defer rows.Close()
	events := []fleet.FindingEvent{}
	for rows.Next() {
		var e fleet.FindingEvent
		var at int64
		var reasons string
		if err := rows.Scan(&at, &e.PriorityFrom, &e.PriorityTo, &e.StateFrom, &e.StateTo, &e.Cause, &reasons); err != nil {
			return f, nil, fmt.Errorf("finding %d history: %w", id, err)
		}
		e.At = unixnano.To(at)
		if err := json.Unmarshal([]byte(reasons), &e.Reasons); err != nil {
			return f, nil, fmt.Errorf("finding %d history: %w", id, err)
		}
		events = append(events, e)
	}
	return f, events, rows.Err()
}

// OpenOf returns the unremediated findings of the hosts, by host; only
// those of vulns when given. With vulns, hostIDs nil means every host (one
// pass over the findings, there being no index by vulnerability).
func (s *Findings) OpenOf(ctx context.Context, hostIDs, vulns []string) (map[string][]fleet.Finding, error) {
	out := map[string][]fleet.Finding{}
	if (hostIDs == nil && len(vulns) == 0) || (hostIDs != nil && len(hostIDs) == 0) {
		return out, nil
	}
	q := `SELECT ` + findingColumns + ` FROM host_findings f WHERE f.remediated_at = 0`
	var args []any
	if hostIDs != nil {
		q += ` AND f.host_id IN (` + strings.TrimSuffix(strings.Repeat("?,", len(hostIDs)), ",") + `)`
		args = anys(hostIDs)
	}
	if len(vulns) > 0 {
		q += ` AND f.vulnerability IN (` + strings.TrimSuffix(strings.Repeat("?,", len(vulns)), ",") + `)`
		args = append(args, anys(vulns)...)
	}
	rows, err := s.DB.QueryContext(ctx, s.D.Rebind(q), args...)
	if err != nil {
		return nil, fmt.Errorf("open findings: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var f fleet.Finding
		if err := scanFinding(rows, &f); err != nil {
			return nil, fmt.Errorf("open findings: %w", err)
		}
		out[f.HostID] = append(out[f.HostID], f)
	}
	return out, rows.Err()
}

// cursor is the position after the last row of a page: the sort value
// and the row id.
type cursor struct {
	S  string `json:"s,omitempty"`
	N  int64  `json:"n,omitempty"`
	ID int64  `json:"id"`
}

func (c cursor) encode() string {
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(s string) (cursor, error) {
	var c cursor
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return c, fleet.ErrBadCursor
	}
	if err := json.Unmarshal(b, &c); err != nil || c.ID <= 0 {
		return c, fleet.ErrBadCursor
	}
	return c, nil
}

// Query lists findings across the fleet, a page at a time. hostIDs, when
// not nil, restricts the hosts (the label filter, resolved by the caller).
func (s *Findings) Query(ctx context.Context, f fleet.FindingFilter, hostIDs []string) (fleet.FindingPage, error) {
	sortBy, ok := fleet.ParseFindingSort(string(f.Sort))
	if !ok {
		return fleet.FindingPage{}, fmt.Errorf("sort %q: want urgency, priority, due, first_seen or -first_seen", f.Sort)
	}
	if sortBy != fleet.SortUrgency {
		return s.query(ctx, f, hostIDs, "")
	}
	// Overdue first, then the rest, each by priority: two walks of the
	// (priority, id) order — overdue findings are found through the index
	// of open findings by due date — rather than one sort of every open
	// finding by a computed key. The cursor says which walk it is in.
	overdue := fmt.Sprintf("f.remediated_at = 0 AND f.state = 'open' AND f.due > 0 AND f.due < %d", f.Now.UnixNano())
	phase := "0"
	g := f
	g.Sort, g.After = fleet.SortPriority, ""
	if f.After != "" {
		var c cursor
		b, err := base64.RawURLEncoding.DecodeString(f.After)
		if err != nil || json.Unmarshal(b, &c) != nil || (!strings.HasPrefix(c.S, "0") && !strings.HasPrefix(c.S, "1")) {
			return fleet.FindingPage{}, fleet.ErrBadCursor
		}
		phase, c.S = c.S[:1], c.S[1:]
		switch {
		case c.S == "" && c.ID == 0 && phase == "1":
			// The second walk, from its start.
		case c.ID <= 0:
			return fleet.FindingPage{}, fleet.ErrBadCursor
		default:
			g.After = c.encode()
		}
	}
	limit := f.Limit
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	g.Limit = limit
	page := fleet.FindingPage{Findings: []fleet.FindingRow{}}
	if phase == "0" {
		p, err := s.query(ctx, g, hostIDs, overdue)
		if err != nil {
			return p, err
		}
		page.Findings = p.Findings
		if p.Next != "" {
			page.Next = tagCursor(p.Next, "0")
			return page, nil
		}
		g.After, g.Limit = "", limit-len(p.Findings)
		if g.Limit == 0 {
			// The next page starts the second walk.
			page.Next = cursor{S: "1", ID: 0}.encode()
			return page, nil
		}
	}
	p, err := s.query(ctx, g, hostIDs, "NOT ("+overdue+")")
	if err != nil {
		return p, err
	}
	page.Findings = append(page.Findings, p.Findings...)
	if p.Next != "" {
		page.Next = tagCursor(p.Next, "1")
	}
	return page, nil
}

// tagCursor prefixes a priority cursor with the urgency walk it is in.
func tagCursor(next, phase string) string {
	c, _ := decodeCursor(next)
	c.S = phase + c.S
	return c.encode()
}

// query lists findings in one order; extra is one more condition.
func (s *Findings) query(ctx context.Context, f fleet.FindingFilter, hostIDs []string, extra string) (fleet.FindingPage, error) {
	page := fleet.FindingPage{Findings: []fleet.FindingRow{}}
	if hostIDs != nil && len(hostIDs) == 0 {
		return page, nil
	}
	var where []string
	var args []any
	add := func(cond string, a ...any) {
		where = append(where, cond)
		args = append(args, a...)
	}
	if extra != "" {
		add(extra)
	}
	switch f.Status {
	case "", fleet.StatusOpen:
		add("f.remediated_at = 0 AND f.state = 'open'")
	case fleet.StatusOverdue:
		add("f.remediated_at = 0 AND f.state = 'open' AND f.due > 0 AND f.due < ?", f.Now.UnixNano())
	case fleet.StatusAccepted, fleet.StatusNotAffected:
		add("f.remediated_at = 0 AND f.state = ?", string(f.Status))
	case fleet.StatusUnremediated:
		add("f.remediated_at = 0")
	case fleet.StatusRemediated:
		add("f.remediated_at <> 0")
	case fleet.StatusAll:
	default:
		return page, fmt.Errorf("status %q: want open, overdue, accepted, not_affected, unremediated, remediated or all", f.Status)
	}
	if f.Lane != "" {
		add("f.lane = ?", f.Lane)
	}
	if len(f.Priorities) > 0 {
		add("f.priority IN ("+strings.TrimSuffix(strings.Repeat("?,", len(f.Priorities)), ",")+")", anys(f.Priorities)...)
	}
	if f.HostID != "" {
		add("f.host_id = ?", f.HostID)
	}
	if hostIDs != nil {
		add("f.host_id IN ("+strings.TrimSuffix(strings.Repeat("?,", len(hostIDs)), ",")+")", anys(hostIDs)...)
	}
	if f.Ecosystem != "" {
		add("(f.ecosystem = ? OR f.ecosystem LIKE ?)", f.Ecosystem, f.Ecosystem+":%")
	}
	if f.Vulnerability != "" {
		add("f.vulnerability = ?", f.Vulnerability)
	}
	if f.Package != "" {
		add("f.package = ?", f.Package)
	}
	if f.Overdue {
		add("f.remediated_at = 0 AND f.due > 0 AND f.due < ?", f.Now.UnixNano())
	}
	sortBy, _ := fleet.ParseFindingSort(string(f.Sort))
	var order string
	var strKey bool
	switch sortBy {
	case fleet.SortPriority:
		order, strKey = "f.priority", true
	case fleet.SortDue:
		order = "f.due"
	case fleet.SortFirstSeen, fleet.SortNewest:
		order = "f.first_seen"
	}
	desc := sortBy == fleet.SortNewest
	if f.After != "" {
		c, err := decodeCursor(f.After)
		if err != nil {
			return page, err
		}
		op := ">"
		if desc {
			op = "<"
		}
		var v any = c.N
		if strKey {
			v = c.S
		}
		add(fmt.Sprintf("(%s %s ? OR (%s = ? AND f.id %s ?))", order, op, order, op), v, v, c.ID)
	}
	limit := f.Limit
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	dir := ""
	if desc {
		dir = " DESC"
	}
	q := `SELECT ` + findingColumns + `, h.hostname FROM host_findings f JOIN hosts h ON h.id = f.host_id`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += fmt.Sprintf(" ORDER BY %s%s, f.id%s LIMIT %d", order, dir, dir, limit+1)
	rows, err := s.DB.QueryContext(ctx, s.D.Rebind(q), args...)
	if err != nil {
		return page, fmt.Errorf("list findings: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var r fleet.FindingRow
		if err := scanFinding(rows, &r.Finding, &r.Hostname); err != nil {
			return page, fmt.Errorf("list findings: %w", err)
		}
		page.Findings = append(page.Findings, r)
	}
	if err := rows.Err(); err != nil {
		return page, fmt.Errorf("list findings: %w", err)
	}
	if len(page.Findings) > limit {
		page.Findings = page.Findings[:limit]
		last := page.Findings[limit-1]
		c := cursor{ID: last.ID}
		switch sortBy {
		case fleet.SortPriority:
			c.S = last.Priority
		case fleet.SortDue:
			c.N = unixnano.From(last.Due)
		default:
			c.N = unixnano.From(last.FirstSeen)
		}
		page.Next = c.encode()
	}
	return page, nil
}

func anys(xs []string) []any {
	out := make([]any, len(xs))
	for i, x := range xs {
		out[i] = x
	}
	return out
}

// Vulnerability aggregates the findings of one vulnerability, with its
// hosts, in one pass over them. ok is false when no host has or had it.
func (s *Findings) Vulnerability(ctx context.Context, id string) (v fleet.Vulnerability, ok bool, err error) {
	v = fleet.Vulnerability{ID: id, Packages: []string{}, Fixed: []string{}, HostIDs: []string{}}
	rows, err := s.DB.QueryContext(ctx, s.D.Rebind(`SELECT host_id, ecosystem, package, priority, severity, fixed, remediated_at
		FROM host_findings WHERE vulnerability = ?`), id)
	if err != nil {
		return v, false, fmt.Errorf("vulnerability %s: %w", id, err)
	}
	defer rows.Close()
	hosts := map[string]bool{}
	for rows.Next() {
		var host, eco, pkg, prio, sev, fixed string
		var rem int64
		if err := rows.Scan(&host, &eco, &pkg, &prio, &sev, &fixed, &rem); err != nil {
			return v, false, fmt.Errorf("vulnerability %s: %w", id, err)
		}
		ok = true
		if rem != 0 {
			v.Remediated++
			continue
		}
		v.Open++
		hosts[host] = true
		if p := eco + "/" + pkg; !slices.Contains(v.Packages, p) {
			v.Packages = append(v.Packages, p)
		}
		if fixed != "" && !slices.Contains(v.Fixed, fixed) {
			v.Fixed = append(v.Fixed, fixed)
		}
		if v.Priority == "" || prio < v.Priority {
			v.Priority = prio
		}
		if sev > v.Severity {
			v.Severity = sev
		}
	}
	if err := rows.Err(); err != nil {
		return v, false, fmt.Errorf("vulnerability %s: %w", id, err)
	}
	for h := range hosts {
		v.HostIDs = append(v.HostIDs, h)
	}
	v.Hosts = len(v.HostIDs)
	sort.Strings(v.HostIDs)
	sort.Strings(v.Packages)
	sort.Strings(v.Fixed)
	return v, ok, nil
}

// Vulnerabilities aggregates, in the database, the findings of every
// vulnerability with an open finding.
func (s *Findings) Vulnerabilities(ctx context.Context) ([]fleet.Vulnerability, error) {
	const where = "1 = 1"
	var args []any
	by := map[string]*fleet.Vulnerability{}
	var order []string
	get := func(v string) *fleet.Vulnerability {
		x := by[v]
		if x == nil {
			x = &fleet.Vulnerability{ID: v, Packages: []string{}, Fixed: []string{}}
			by[v] = x
			order = append(order, v)
		}
		return x
	}
	query := func(q string, scan func(rows *sql.Rows) error) error {
		rows, err := s.DB.QueryContext(ctx, s.D.Rebind(q), args...)
		if err != nil {
			return fmt.Errorf("vulnerabilities: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			if err := scan(rows); err != nil {
				return fmt.Errorf("vulnerabilities: %w", err)
			}
		}
		return rows.Err()
	}
	err := query(`SELECT vulnerability, COUNT(DISTINCT host_id), COUNT(*), MIN(priority), MAX(severity) FROM host_findings
		WHERE `+where+` AND remediated_at = 0 GROUP BY vulnerability`, func(rows *sql.Rows) error {
		var v string
		var hosts, open int
		var prio, sev string
		if err := rows.Scan(&v, &hosts, &open, &prio, &sev); err != nil {
			return err
		}
		x := get(v)
		x.Hosts, x.Open, x.Priority, x.Severity = hosts, open, prio, sev
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = query(`SELECT vulnerability, ecosystem, package, fixed FROM host_findings WHERE `+where+` AND remediated_at = 0
		GROUP BY vulnerability, ecosystem, package, fixed`, func(rows *sql.Rows) error {
		var v, eco, pkg, fixed string
		if err := rows.Scan(&v, &eco, &pkg, &fixed); err != nil {
			return err
		}
		x := get(v)
		if p := eco + "/" + pkg; !slices.Contains(x.Packages, p) {
			x.Packages = append(x.Packages, p)
		}
		if fixed != "" && !slices.Contains(x.Fixed, fixed) {
			x.Fixed = append(x.Fixed, fixed)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = query(`SELECT vulnerability, COUNT(*) FROM host_findings WHERE `+where+` AND remediated_at <> 0 GROUP BY vulnerability`, func(rows *sql.Rows) error {
		var v string
		var n int
		if err := rows.Scan(&v, &n); err != nil {
			return err
		}
		if x, ok := by[v]; ok {
			x.Remediated = n
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]fleet.Vulnerability, 0, len(by))
	for _, v := range order {
		x := by[v]
		sort.Strings(x.Packages)
		sort.Strings(x.Fixed)
		out = append(out, *x)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Priority != b.Priority {
			return a.Priority < b.Priority
		}
		if a.Hosts != b.Hosts {
			return a.Hosts > b.Hosts
		}
		return a.ID < b.ID
	})
	return out, nil
}

// Evidence returns, for every vulnerability with an unremediated finding,
// the distinct exploitation inputs its findings were decided with.
func (s *Findings) Evidence(ctx context.Context) (map[string][]fleet.Evidence, error) {
	rows, err := s.DB.QueryContext(ctx, `SELECT vulnerability, exploitation, kev_due FROM host_findings WHERE remediated_at = 0
		GROUP BY vulnerability, exploitation, kev_due`)
	if err != nil {
		return nil, fmt.Errorf("finding evidence: %w", err)
	}
	defer rows.Close()
	out := map[string][]fleet.Evidence{}
	for rows.Next() {
		var v, e string
		var due int64
		if err := rows.Scan(&v, &e, &due); err != nil {
			return nil, fmt.Errorf("finding evidence: %w", err)
		}
		out[v] = append(out[v], fleet.Evidence{Exploitation: e, KEVDue: unixnano.To(due)})
	}
	return out, rows.Err()
}

// HostsDecidedBy returns the hosts with an unremediated finding decided
// by one of the exceptions.
func (s *Findings) HostsDecidedBy(ctx context.Context, exceptions []string) ([]string, error) {
	if len(exceptions) == 0 {
		return []string{}, nil
	}
	return s.strings(ctx, "hosts decided by exceptions", "SELECT DISTINCT host_id FROM host_findings WHERE remediated_at = 0 AND exception IN ("+
		strings.TrimSuffix(strings.Repeat("?,", len(exceptions)), ",")+")", anys(exceptions)...)
}

// Exceptions returns the exceptions that decide unremediated findings.
func (s *Findings) Exceptions(ctx context.Context) ([]string, error) {
	return s.strings(ctx, "finding exceptions", `SELECT DISTINCT exception FROM host_findings WHERE remediated_at = 0 AND exception <> ''`)
}

// strings runs a query of one text column.
func (s *Findings) strings(ctx context.Context, what, q string, args ...any) ([]string, error) {
	return sqlrows.Strings(ctx, s.DB, what, s.D.Rebind(q), args...)
}

// Redecide stores new decisions in one transaction. The hosts' rows are
// locked first (in id order, as every multi-host transaction does); then
// the findings are updated — those remediated meanwhile are left alone
// (see UpdateFromValues) — with an event for each change of priority or
// state, and the hosts' open counts moved by what was updated.
func (s *Findings) Redecide(ctx context.Context, changes []fleet.Redecision, now time.Time, cause string) error {
	if len(changes) == 0 {
		return nil
	}
	byHost := map[string][]fleet.Redecision{}
	for _, c := range changes {
		byHost[c.HostID] = append(byHost[c.HostID], c)
	}
	ids := make([]string, 0, len(byHost))
	for h := range byHost {
		ids = append(ids, h)
	}
	slices.Sort(ids)
	defer lockWrites(s.D.WriteLock)()
	tx, err := s.DB.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for _, q := range s.D.BeforeUpdateFromValues {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("re-decide findings: %w", err)
		}
	}
	var one *sql.Stmt
	if !s.D.UpdateFromValues {
		if one, err = tx.PrepareContext(ctx, s.D.Rebind(`UPDATE host_findings SET priority = ?, state = ?, exception = ?, lane = ?,
			exploitation = ?, kev_due = ?, due = ? WHERE id = ? AND remediated_at = 0`)); err != nil {
			return fmt.Errorf("re-decide findings: %w", err)
		}
		defer one.Close()
	}
	sy := &syncer{tx: tx, d: s.D, now: now, cause: cause}
	const hostChunk, rowChunk = 500, 500
	const row = "(CAST(? AS BIGINT), CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS BIGINT), CAST(? AS BIGINT))"
	for start := 0; start < len(ids); start += hostChunk {
		part := ids[start:min(start+hostChunk, len(ids))]
		in := strings.TrimSuffix(strings.Repeat("?,", len(part)), ",")
		counts, err := s.lockCounts(ctx, tx, "SELECT id, open_counts FROM hosts WHERE id IN ("+in+") ORDER BY id"+s.D.ForUpdate, anys(part))
		if err != nil {
			return fmt.Errorf("re-decide findings: %w", err)
		}
		var rows []fleet.Redecision
		for _, h := range part {
			rows = append(rows, byHost[h]...)
		}
		updated := map[int64]bool{}
		for rs := 0; rs < len(rows); rs += rowChunk {
			batch := rows[rs:min(rs+rowChunk, len(rows))]
			if one != nil {
				for _, c := range batch {
					res, err := one.ExecContext(ctx, c.Priority, stateOf(c.Finding), c.Exception, c.Lane, c.Exploitation, unixnano.From(c.KEVDue), unixnano.From(c.Due), c.ID)
					if err != nil {
						return fmt.Errorf("re-decide findings: %w", err)
					}
					if n, _ := res.RowsAffected(); n == 1 {
						updated[c.ID] = true
					}
				}
				continue
			}
			args := make([]any, 0, 8*len(batch))
			for _, c := range batch {
				args = append(args, c.ID, c.Priority, stateOf(c.Finding), c.Exception, c.Lane, c.Exploitation, unixnano.From(c.KEVDue), unixnano.From(c.Due))
			}
			q := `UPDATE host_findings SET priority = v.column2, state = v.column3, exception = v.column4, lane = v.column5,
				exploitation = v.column6, kev_due = v.column7, due = v.column8
				FROM (VALUES ` + strings.TrimSuffix(strings.Repeat(row+",", len(batch)), ",") + `) AS v
				WHERE host_findings.id = v.column1 AND host_findings.remediated_at = 0 RETURNING host_findings.id`
			res, err := tx.QueryContext(ctx, s.D.Rebind(q), args...)
			if err != nil {
				return fmt.Errorf("re-decide findings: %w", err)
			}
			for res.Next() {
				var id int64
				if err := res.Scan(&id); err != nil {
					res.Close()
					return err
				}
				updated[id] = true
			}
			res.Close()
			if err := res.Err(); err != nil {
				return fmt.Errorf("re-decide findings: %w", err)
			}
		}
		var dirty []string
		for _, c := range rows {
			if !updated[c.ID] {
				continue // remediated meanwhile
			}
			st := stateOf(c.Finding)
			if c.PriorityFrom == c.Priority && c.StateFrom == st {
				continue
			}
			sy.events = append(sy.events, event{c.ID, c.PriorityFrom, c.Priority, c.StateFrom, st, c.Reasons})
			cnt := counts[c.HostID]
			if cnt == nil {
				continue // deleted meanwhile
			}
			if c.StateFrom == fleet.StateOpen {
				cnt[c.PriorityFrom]--
			}
			if st == fleet.StateOpen {
				cnt[c.Priority]++
			}
			if len(dirty) == 0 || dirty[len(dirty)-1] != c.HostID {
				dirty = append(dirty, c.HostID)
			}
		}
		if err := sy.flush(ctx); err != nil {
			return err
		}
		if err := s.writeCounts(ctx, tx, dirty, counts); err != nil {
			return fmt.Errorf("re-decide findings: %w", err)
		}
	}
	return tx.Commit()
}

// lockCounts reads (and locks) hosts' open counts: q returns id, open_counts.
func (s *Findings) lockCounts(ctx context.Context, tx *sql.Tx, q string, args []any) (map[string]map[string]int, error) {
	rows, err := tx.QueryContext(ctx, s.D.Rebind(q), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	counts := map[string]map[string]int{}
	for rows.Next() {
		var id, b string
		if err := rows.Scan(&id, &b); err != nil {
			return nil, err
		}
		c := map[string]int{}
		if err := json.Unmarshal([]byte(b), &c); err != nil {
			return nil, fmt.Errorf("host %s counts: %w", id, err)
		}
		counts[id] = c
	}
	return counts, rows.Err()
}

// writeCounts stores the counts of the hosts named, in one statement.
func (s *Findings) writeCounts(ctx context.Context, tx *sql.Tx, hosts []string, counts map[string]map[string]int) error {
	if len(hosts) == 0 {
		return nil
	}
	var b strings.Builder
	args := make([]any, 0, 3*len(hosts))
	b.WriteString("UPDATE hosts SET open_counts = CASE id")
	for _, id := range hosts {
		c := counts[id]
		for p, n := range c {
			if n <= 0 {
				delete(c, p)
			}
		}
		js, _ := json.Marshal(c)
		b.WriteString(" WHEN ? THEN ?")
		args = append(args, id, string(js))
	}
	b.WriteString(" END WHERE id IN (" + strings.TrimSuffix(strings.Repeat("?,", len(hosts)), ",") + ")")
	for _, id := range hosts {
		args = append(args, id)
	}
	_, err := tx.ExecContext(ctx, s.D.Rebind(b.String()), args...)
	return err
}
