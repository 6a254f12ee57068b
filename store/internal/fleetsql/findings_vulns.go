// Host findings aggregated by vulnerability: one vulnerability with its
// hosts, and every vulnerability with an open finding.

package fleetsql

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"sort"

	"github.com/patchbay/patchbay/fleet"
)

// Vulnerability aggregates the findings of one vulnerability, with its
// hosts, in one pass over them. ok is false when no host has or had it.
// The id is matched without regard to case (cve-2026-1234 is
// CVE-2026-1234; ids are ASCII), and v.ID is spelled as stored.
func (s *Findings) Vulnerability(ctx context.Context, id string) (v fleet.Vulnerability, ok bool, err error) {
	v = fleet.Vulnerability{ID: id, Packages: []string{}, Fixed: []string{}, HostIDs: []string{}}
	rows, err := s.DB.QueryContext(ctx, s.D.Rebind(`SELECT vulnerability, host_id, ecosystem, package, priority, severity, fixed, remediated_at
		FROM host_findings WHERE UPPER(vulnerability) = UPPER(?) ORDER BY vulnerability = ? DESC`), id, id)
	if err != nil {
		return v, false, fmt.Errorf("vulnerability %s: %w", id, err)
	}
	defer rows.Close()
	hosts := map[string]bool{}
	for rows.Next() {
		var stored, host, eco, pkg, prio, sev, fixed string
		var rem int64
		if err := rows.Scan(&stored, &host, &eco, &pkg, &prio, &sev, &fixed, &rem); err != nil {
			return v, false, fmt.Errorf("vulnerability %s: %w", id, err)
		}
		if !ok {
			v.ID = stored // the exact spelling first, when stored
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
