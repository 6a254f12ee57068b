// Host findings decided again: the inputs a policy change is decided
// from (evidence, exceptions in use, hosts they decide) and Redecide,
// which stores the new decisions with their events.

package fleetsql

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/patchbay/patchbay/fleet"
	"github.com/patchbay/patchbay/risk"
	"github.com/patchbay/patchbay/store/internal/sqlrows"
	"github.com/patchbay/patchbay/store/internal/unixnano"
)

// Evidence returns, for every vulnerability with an unremediated finding,
// the distinct exploitation inputs its findings were decided with.
//
// It is a loose index scan of host_findings_open_vuln: each step seeks the
// first open finding past the last distinct (vulnerability, exploitation,
// kev_due) — a later KEV due date, else a later exploitation, else a later
// vulnerability: three seeks (a row-value comparison is not one) — so it
// costs a few seeks per distinct triple, not a row per finding.
func (s *Findings) Evidence(ctx context.Context) (map[string][]fleet.Evidence, error) {
	const next = `COALESCE(
		(SELECT n.id FROM host_findings n WHERE n.remediated_at = 0 AND n.vulnerability = ev.v AND n.exploitation = ev.e AND n.kev_due > ev.k
			ORDER BY n.kev_due LIMIT 1),
		(SELECT n.id FROM host_findings n WHERE n.remediated_at = 0 AND n.vulnerability = ev.v AND n.exploitation > ev.e
			ORDER BY n.exploitation, n.kev_due LIMIT 1),
		(SELECT n.id FROM host_findings n WHERE n.remediated_at = 0 AND n.vulnerability > ev.v
			ORDER BY n.vulnerability, n.exploitation, n.kev_due LIMIT 1))`
	rows, err := s.DB.QueryContext(ctx, `WITH RECURSIVE ev(v, e, k) AS (
			SELECT * FROM (SELECT vulnerability, exploitation, kev_due FROM host_findings WHERE remediated_at = 0
				ORDER BY vulnerability, exploitation, kev_due LIMIT 1) f0
			UNION ALL
			SELECT f.vulnerability, f.exploitation, f.kev_due FROM ev JOIN host_findings f ON f.id = `+next+`
		) SELECT v, e, k FROM ev`)
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
		out[v] = append(out[v], fleet.Evidence{Exploitation: risk.Exploitation(e), KEVDue: unixnano.To(due)})
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
	sy := &syncer{tx: tx, d: s.D, now: now, cause: cause, ex: tx.ExecContext}
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
					res, err := one.ExecContext(ctx, c.Priority.String(), stateOf(c.Finding), c.Exception, string(c.Lane), string(c.Exploitation), unixnano.From(c.KEVDue), unixnano.From(c.Due), c.ID)
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
				args = append(args, c.ID, c.Priority.String(), stateOf(c.Finding), c.Exception, string(c.Lane), string(c.Exploitation), unixnano.From(c.KEVDue), unixnano.From(c.Due))
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
			if c.PriorityFrom == c.Priority && string(c.StateFrom) == st {
				continue
			}
			sy.events = append(sy.events, event{c.ID, c.PriorityFrom.String(), c.Priority.String(), string(c.StateFrom), st, c.Reasons})
			cnt := counts[c.HostID]
			if cnt == nil {
				continue // deleted meanwhile
			}
			if c.StateFrom == fleet.StateOpen {
				cnt[c.PriorityFrom.String()]--
			}
			if st == stateOpen {
				cnt[c.Priority.String()]++
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
