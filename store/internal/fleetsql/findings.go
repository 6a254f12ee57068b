package fleetsql

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/patchbay/patchbay/advisory"
	"github.com/patchbay/patchbay/fleet"
	"github.com/patchbay/patchbay/risk"
)

// FindingsDialect holds one database's SQL for host findings.
type FindingsDialect struct {
	LockHost  string // (host_id) → open_counts, serialising syncs of one host
	SetCounts string // (open_counts, host_id)
	Open      string // (host_id) → id, ecosystem, package, vulnerability, priority, first_seen
	// OpenOf is Open for one package: (host_id, package, ecosystem).
	OpenOf string
	Insert string // (host_id, ecosystem, package, vulnerability, version, priority, severity, fixed, first_seen, due)
	// InsertMany is Insert of n rows in one statement.
	InsertMany func(n int) string
	Update     string // (version, priority, severity, fixed, due, id)
	Close      string // (remediated_at, id)
	List       string // (host_id) → ecosystem, package, vulnerability, version, priority, severity, fixed, first_seen, remediated_at, due
	// Rebind turns '?' placeholders into the database's.
	Rebind func(string) string
	// WriteLock: see Dialect.WriteLock.
	WriteLock *sync.Mutex
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
	id        int64
	priority  string
	firstSeen int64
}

func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// dueOf is a finding's due date counted from when it was first seen.
func dueOf(f fleet.Finding, firstSeen time.Time) int64 {
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
	ins, upd, cls  *sql.Stmt
	opened, closed int
	now            time.Time
}

func (s *Findings) newSyncer(ctx context.Context, tx *sql.Tx, now time.Time) (*syncer, error) {
	sy := &syncer{tx: tx, d: s.D, now: now}
	var err error
	if sy.ins, err = tx.PrepareContext(ctx, s.D.Insert); err != nil {
		return nil, err
	}
	if sy.upd, err = tx.PrepareContext(ctx, s.D.Update); err != nil {
		return nil, err
	}
	if sy.cls, err = tx.PrepareContext(ctx, s.D.Close); err != nil {
		return nil, err
	}
	return sy, nil
}

func (sy *syncer) close() {
	for _, st := range []*sql.Stmt{sy.ins, sy.upd, sy.cls} {
		if st != nil {
			st.Close()
		}
	}
}

// apply makes open (the host's open findings in scope, by key) into
// current, adjusting counts.
func (sy *syncer) apply(ctx context.Context, hostID string, open map[string]openRow, current []fleet.Finding, counts map[string]int) error {
	seen := map[string]bool{}
	var fresh []fleet.Finding
	for _, f := range current {
		k := f.Key()
		if seen[k] {
			continue
		}
		seen[k] = true
		if o, ok := open[k]; ok {
			if _, err := sy.upd.ExecContext(ctx, f.Version, f.Priority, f.Severity, f.Fixed, dueOf(f, fromNanos(o.firstSeen)), o.id); err != nil {
				return fmt.Errorf("sync findings of %s: %w", hostID, err)
			}
			if o.priority != f.Priority {
				counts[o.priority]--
				counts[f.Priority]++
			}
			continue
		}
		fresh = append(fresh, f)
		counts[f.Priority]++
		sy.opened++
	}
	// New findings in multi-row statements: a first inventory opens
	// thousands.
	const batch = 100
	for start := 0; start < len(fresh); start += batch {
		chunk := fresh[start:min(start+batch, len(fresh))]
		if len(chunk) == 1 {
			f := chunk[0]
			if _, err := sy.ins.ExecContext(ctx, hostID, f.Ecosystem, f.Package, f.Vulnerability, f.Version, f.Priority, f.Severity, f.Fixed,
				sy.now.UnixNano(), dueOf(f, sy.now)); err != nil {
				return fmt.Errorf("sync findings of %s: %w", hostID, err)
			}
			continue
		}
		args := make([]any, 0, 10*len(chunk))
		for _, f := range chunk {
			args = append(args, hostID, f.Ecosystem, f.Package, f.Vulnerability, f.Version, f.Priority, f.Severity, f.Fixed, sy.now.UnixNano(), dueOf(f, sy.now))
		}
		if _, err := sy.tx.ExecContext(ctx, sy.d.InsertMany(len(chunk)), args...); err != nil {
			return fmt.Errorf("sync findings of %s: %w", hostID, err)
		}
	}
	for k, o := range open {
		if seen[k] {
			continue
		}
		if _, err := sy.cls.ExecContext(ctx, sy.now.UnixNano(), o.id); err != nil {
			return fmt.Errorf("sync findings of %s: %w", hostID, err)
		}
		counts[o.priority]--
		sy.closed++
	}
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
		if err := rows.Scan(&o.id, &f.Ecosystem, &f.Package, &f.Vulnerability, &o.priority, &o.firstSeen); err != nil {
			return nil, err
		}
		open[f.Key()] = o
	}
	return open, rows.Err()
}

// Sync makes the host's open findings those of current: new ones open
// (first seen now), those still present are updated, and those gone are
// closed as remediated now. It returns how many opened and closed.
func (s *Findings) Sync(ctx context.Context, hostID string, current []fleet.Finding, now time.Time) (opened, closed int, err error) {
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
	sy, err := s.newSyncer(ctx, tx, now)
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
func (s *Findings) SyncScoped(ctx context.Context, changes []fleet.ScopedChange, now time.Time, fence fleet.Fence) (opened, closed int, err error) {
	if len(changes) == 0 {
		return 0, 0, nil
	}
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
	sy, err := s.newSyncer(ctx, tx, now)
	if err != nil {
		return 0, 0, err
	}
	defer sy.close()
	openOf, err := tx.PrepareContext(ctx, s.D.OpenOf)
	if err != nil {
		return 0, 0, err
	}
	defer openOf.Close()
	for _, c := range changes {
		counts, err := s.lockHost(ctx, tx, c.HostID)
		if errors.Is(err, fleet.ErrNotFound) {
			continue // deleted meanwhile
		} else if err != nil {
			return 0, 0, err
		}
		open := map[string]openRow{}
		for _, pid := range c.Scope {
			rows, err := openOf.QueryContext(ctx, c.HostID, pid.Name, pid.Ecosystem)
			if err != nil {
				return 0, 0, fmt.Errorf("rematch %s: %w", c.HostID, err)
			}
			for rows.Next() {
				var o openRow
				var f fleet.Finding
				if err := rows.Scan(&o.id, &f.Ecosystem, &f.Package, &f.Vulnerability, &o.priority, &o.firstSeen); err != nil {
					rows.Close()
					return 0, 0, err
				}
				open[f.Key()] = o
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return 0, 0, err
			}
		}
		before := sy.opened + sy.closed
		if err := sy.apply(ctx, c.HostID, open, c.Findings, counts); err != nil {
			return 0, 0, err
		}
		if sy.opened+sy.closed != before || len(c.Findings) > 0 {
			if err := s.setCounts(ctx, tx, c.HostID, counts); err != nil {
				return 0, 0, err
			}
		}
	}
	return sy.opened, sy.closed, tx.Commit()
}

func scanFinding(r scanner, f *fleet.Finding) error {
	var first, rem, due int64
	if err := r.Scan(&f.Ecosystem, &f.Package, &f.Vulnerability, &f.Version, &f.Priority, &f.Severity, &f.Fixed, &first, &rem, &due); err != nil {
		return err
	}
	f.FirstSeen, f.RemediatedAt, f.Due = fromNanos(first), fromNanos(rem), fromNanos(due)
	return nil
}

// List returns a host's findings, open and closed, oldest first.
func (s *Findings) List(ctx context.Context, hostID string) ([]fleet.Finding, error) {
	rows, err := s.DB.QueryContext(ctx, s.D.List, hostID)
	if err != nil {
		return nil, fmt.Errorf("list findings of %s: %w", hostID, err)
	}
	defer rows.Close()
	out := []fleet.Finding{}
	for rows.Next() {
		f := fleet.Finding{HostID: hostID}
		if err := scanFinding(rows, &f); err != nil {
			return nil, err
		}
		out = append(out, f)
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
	switch f.Status {
	case "", fleet.StatusOpen:
		add("f.remediated_at = 0")
	case fleet.StatusRemediated:
		add("f.remediated_at <> 0")
	case fleet.StatusAll:
	default:
		return page, fmt.Errorf("status %q: want open, remediated or all", f.Status)
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
	sortBy, ok := fleet.ParseFindingSort(string(f.Sort))
	if !ok {
		return page, fmt.Errorf("sort %q: want priority, due, first_seen or -first_seen", f.Sort)
	}
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
	q := `SELECT f.id, f.host_id, h.hostname, f.ecosystem, f.package, f.vulnerability, f.version, f.priority, f.severity, f.fixed,
		f.first_seen, f.remediated_at, f.due FROM host_findings f JOIN hosts h ON h.id = f.host_id`
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
		var first, rem, due int64
		if err := rows.Scan(&r.ID, &r.HostID, &r.Hostname, &r.Ecosystem, &r.Package, &r.Vulnerability, &r.Version, &r.Priority,
			&r.Severity, &r.Fixed, &first, &rem, &due); err != nil {
			return page, fmt.Errorf("list findings: %w", err)
		}
		r.FirstSeen, r.RemediatedAt, r.Due = fromNanos(first), fromNanos(rem), fromNanos(due)
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
			c.N = nanos(last.Due)
		default:
			c.N = nanos(last.FirstSeen)
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

// Vulnerabilities aggregates findings by vulnerability: every
// vulnerability with an open finding (or, with id set, that one with its
// hosts, open or not).
func (s *Findings) Vulnerabilities(ctx context.Context, id string) ([]fleet.Vulnerability, error) {
	q := `SELECT vulnerability, host_id, ecosystem, package, priority, severity, fixed, remediated_at FROM host_findings`
	var args []any
	if id != "" {
		q += ` WHERE vulnerability = ?`
		args = append(args, id)
	} else {
		q += ` WHERE remediated_at = 0`
	}
	rows, err := s.DB.QueryContext(ctx, s.D.Rebind(q), args...)
	if err != nil {
		return nil, fmt.Errorf("vulnerabilities: %w", err)
	}
	defer rows.Close()
	type agg struct {
		v     fleet.Vulnerability
		hosts map[string]bool
		pkgs  map[string]bool
		fixed map[string]bool
	}
	by := map[string]*agg{}
	for rows.Next() {
		var vid, host, eco, pkg, prio, sev, fixed string
		var rem int64
		if err := rows.Scan(&vid, &host, &eco, &pkg, &prio, &sev, &fixed, &rem); err != nil {
			return nil, fmt.Errorf("vulnerabilities: %w", err)
		}
		a := by[vid]
		if a == nil {
			a = &agg{v: fleet.Vulnerability{ID: vid}, hosts: map[string]bool{}, pkgs: map[string]bool{}, fixed: map[string]bool{}}
			by[vid] = a
		}
		if rem != 0 {
			a.v.Remediated++
			continue
		}
		a.v.Open++
		a.hosts[host] = true
		a.pkgs[eco+"/"+pkg] = true
		if fixed != "" {
			a.fixed[fixed] = true
		}
		if a.v.Priority == "" || prio < a.v.Priority {
			a.v.Priority = prio
		}
		if a.v.Severity == "" {
			a.v.Severity = sev
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("vulnerabilities: %w", err)
	}
	out := make([]fleet.Vulnerability, 0, len(by))
	for _, a := range by {
		a.v.Hosts = len(a.hosts)
		a.v.Packages, a.v.Fixed = keys(a.pkgs), keys(a.fixed)
		if id != "" {
			a.v.HostIDs = keys(a.hosts)
		}
		out = append(out, a.v)
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

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
