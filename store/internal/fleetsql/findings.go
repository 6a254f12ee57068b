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
	"github.com/patchbay/patchbay/store/internal/unixnano"
)

// FindingsDialect holds one database's SQL for host findings.
type FindingsDialect struct {
	LockHost  string // (host_id) → open_counts, serialising syncs of one host
	SetCounts string // (open_counts, host_id)
	Open      string // (host_id) → id, ecosystem, package, vulnerability, priority, first_seen
	// InsertMany inserts n findings: (host_id, ecosystem, package,
	// vulnerability, version, priority, severity, fixed, first_seen, due).
	InsertMany func(n int) string
	Update     string // (version, priority, severity, fixed, due, id)
	List       string // (host_id) → ecosystem, package, vulnerability, version, priority, severity, fixed, first_seen, remediated_at, due
	// Rebind turns '?' placeholders into the database's.
	Rebind func(string) string
	// ForUpdate is the row-locking clause of a SELECT ("" for SQLite,
	// whose transactions lock the whole database).
	ForUpdate string
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
	id                                 int64
	priority, version, severity, fixed string
	firstSeen, due                     int64
}

// OpenColumns are what Open returns, in order.
const OpenColumns = "id, ecosystem, package, vulnerability, priority, first_seen, version, severity, fixed, due"

func scanOpen(r scanner, o *openRow, f *fleet.Finding) error {
	return r.Scan(&o.id, &f.Ecosystem, &f.Package, &f.Vulnerability, &o.priority, &o.firstSeen, &o.version, &o.severity, &o.fixed, &o.due)
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
	upd            *sql.Stmt
	opened, closed int
	now            time.Time
	closing        []int64 // ids to close at the next flush
	inserting      []pendingInsert
	deferred       bool // flush is called by the caller
}

func (s *Findings) newSyncer(ctx context.Context, tx *sql.Tx, now time.Time) (*syncer, error) {
	sy := &syncer{tx: tx, d: s.D, now: now}
	var err error
	if sy.upd, err = tx.PrepareContext(ctx, s.D.Update); err != nil {
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
			due := dueOf(f, unixnano.To(o.firstSeen))
			if o.version == f.Version && o.priority == f.Priority && o.severity == f.Severity && o.fixed == f.Fixed && o.due == due {
				continue
			}
			if _, err := sy.upd.ExecContext(ctx, f.Version, f.Priority, f.Severity, f.Fixed, due, o.id); err != nil {
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
	for _, f := range fresh {
		sy.inserting = append(sy.inserting, pendingInsert{hostID, f})
	}
	for k, o := range open {
		if seen[k] {
			continue
		}
		sy.closing = append(sy.closing, o.id)
		counts[o.priority]--
		sy.closed++
	}
	if !sy.deferred {
		return sy.flush(ctx)
	}
	return nil
}

type pendingInsert struct {
	host string
	f    fleet.Finding
}

// flush writes the new findings and the closes collected so far, in
// multi-row statements: a first inventory opens thousands, a rematch one
// on each of thousands of hosts.
func (sy *syncer) flush(ctx context.Context) error {
	const rows = 100
	for start := 0; start < len(sy.inserting); start += rows {
		chunk := sy.inserting[start:min(start+rows, len(sy.inserting))]
		args := make([]any, 0, 10*len(chunk))
		for _, p := range chunk {
			f := p.f
			args = append(args, p.host, f.Ecosystem, f.Package, f.Vulnerability, f.Version, f.Priority, f.Severity, f.Fixed, sy.now.UnixNano(), dueOf(f, sy.now))
		}
		if _, err := sy.tx.ExecContext(ctx, sy.d.InsertMany(len(chunk)), args...); err != nil {
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
	sy, err := s.newSyncer(ctx, tx, now)
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
		rows, err := tx.QueryContext(ctx, s.D.Rebind("SELECT id, open_counts FROM hosts WHERE id IN ("+in+") ORDER BY id"+s.D.ForUpdate), ids...)
		if err != nil {
			return 0, 0, fmt.Errorf("rematch: %w", err)
		}
		counts := map[string]map[string]int{}
		for rows.Next() {
			var id, b string
			if err := rows.Scan(&id, &b); err != nil {
				rows.Close()
				return 0, 0, err
			}
			c := map[string]int{}
			if err := json.Unmarshal([]byte(b), &c); err != nil {
				rows.Close()
				return 0, 0, fmt.Errorf("host %s counts: %w", id, err)
			}
			counts[id] = c
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return 0, 0, err
		}
		args := append([]any(nil), ids...)
		for n := range names {
			args = append(args, n)
		}
		q := "SELECT host_id, " + OpenColumns + " FROM host_findings WHERE remediated_at = 0 AND host_id IN (" + in + ") AND package IN (" +
			strings.TrimSuffix(strings.Repeat("?,", len(names)), ",") + ")"
		rows, err = tx.QueryContext(ctx, s.D.Rebind(q), args...)
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
			if err := rows.Scan(&host, &o.id, &f.Ecosystem, &f.Package, &f.Vulnerability, &o.priority, &o.firstSeen, &o.version, &o.severity, &o.fixed, &o.due); err != nil {
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
			before := sy.opened + sy.closed
			if err := sy.apply(ctx, c.HostID, o, c.Findings, cnt); err != nil {
				return 0, 0, err
			}
			if sy.opened+sy.closed != before {
				dirty = append(dirty, c.HostID)
			}
		}
		if err := sy.flush(ctx); err != nil {
			return 0, 0, err
		}
		// Counts of the hosts that changed, in one statement per chunk.
		if len(dirty) > 0 {
			var b strings.Builder
			args := make([]any, 0, 3*len(dirty))
			b.WriteString("UPDATE hosts SET open_counts = CASE id")
			for _, id := range dirty {
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
			b.WriteString(" END WHERE id IN (" + strings.TrimSuffix(strings.Repeat("?,", len(dirty)), ",") + ")")
			for _, id := range dirty {
				args = append(args, id)
			}
			if _, err := tx.ExecContext(ctx, s.D.Rebind(b.String()), args...); err != nil {
				return 0, 0, fmt.Errorf("rematch counts: %w", err)
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
	f.FirstSeen, f.RemediatedAt, f.Due = unixnano.To(first), unixnano.To(rem), unixnano.To(due)
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
		r.FirstSeen, r.RemediatedAt, r.Due = unixnano.To(first), unixnano.To(rem), unixnano.To(due)
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
