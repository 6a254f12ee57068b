// Host findings read back: a host's findings, one finding with its
// history, the open findings of hosts, and the fleet-wide paged query.

package fleetsql

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/patchbay/patchbay/fleet"
	"github.com/patchbay/patchbay/store/internal/unixnano"
)

// findingColumns are what scanFinding reads, of host_findings f.
const findingColumns = `f.id, f.host_id, f.ecosystem, f.package, f.vulnerability, f.version, f.priority, f.severity, f.fixed, f.first_seen,
	f.remediated_at, f.due, f.state, f.exception, f.lane, f.exploitation, f.automatable, f.impact, f.cycle, f.kev_due`

func scanFinding(r scanner, f *fleet.Finding, extra ...any) error {
	var first, rem, due, kevDue int64
	dest := []any{&f.ID, &f.HostID, &f.Ecosystem, &f.Package, &f.Vulnerability, &f.Version, priorityCol{&f.Priority}, &f.Severity, &f.Fixed, &first, &rem, &due,
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
		if err := rows.Scan(&at, priorityCol{&e.PriorityFrom}, priorityCol{&e.PriorityTo}, &e.StateFrom, &e.StateTo, &e.Cause, &reasons); err != nil {
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
		add("UPPER(f.vulnerability) = UPPER(?)", f.Vulnerability) // ids are ASCII: CVE-…, GHSA-…
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
			c.S = last.Priority.String()
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
