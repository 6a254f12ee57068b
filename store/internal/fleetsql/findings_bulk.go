// Host findings decided again in bulk: the distinct decision inputs of
// the findings in scope are read once, decided once each (by the
// caller), and the decisions fanned out to the findings with set-based
// statements over temporary tables.

package fleetsql

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/patchbay/patchbay/fleet"
	"github.com/patchbay/patchbay/patch"
	"github.com/patchbay/patchbay/risk"
	"github.com/patchbay/patchbay/store/internal/unixnano"
)

// identityColumns are a finding's identity, decisionColumns its decision
// points: together its decision inputs, in the order of
// fleet.DecisionInput.
const (
	identityColumns = "f.vulnerability, f.ecosystem, f.package, f.version"
	decisionColumns = "f.exploitation, f.automatable, f.impact, f.cycle, f.kev_due"
	decisionKey     = `d.class = h.class AND d.exploitation_in = f.exploitation AND d.automatable = f.automatable AND d.impact = f.impact AND
		d.cycle = f.cycle AND d.kev_due_in = f.kev_due`
	identityKey = ` AND d.vulnerability = f.vulnerability AND d.ecosystem = f.ecosystem AND d.package = f.package AND d.version = f.version`
	// dueExpr is a finding's due date under decision d: FirstSeen +
	// SLA, capped (fleet.InputDecision).
	dueExpr = "CASE WHEN d.due_cap <> 0 AND d.due_cap < %[1]s.first_seen + d.sla THEN d.due_cap ELSE %[1]s.first_seen + d.sla END"
)

// BulkRedecide implements fleet.BulkRedecider: the hosts are decided
// BulkChunk at a time (1,000 by default, 250 on SQLite), each chunk in one transaction —
// SQLite's other writers (check-ins, the lease) wait for one chunk, not
// the fleet — and each distinct input once (decisions are remembered
// across chunks). New evidence (vulns) is one transaction: its findings
// are few.
func (s *Findings) BulkRedecide(ctx context.Context, scope fleet.BulkScope, decide func([]fleet.DecisionInput) ([]fleet.InputDecision, error),
	now time.Time, cause string) (fleet.ReprioritizeResult, error) {
	var r fleet.ReprioritizeResult
	ids := make([]string, 0, len(scope.Hosts))
	for id := range scope.Hosts {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	chunk := s.BulkChunk
	if chunk <= 0 {
		chunk = 1000
		if s.D.WriteLock != nil {
			// SQLite: a chunk holds the one write lock; 1,000 hosts
			// took ~8.5 s on a loaded VM at 4,000 hosts, past a lease
			// renewal's wait (half the TTL).
			chunk = 250
		}
	}
	if len(scope.Vulns) > 0 {
		chunk = max(len(ids), 1)
	}
	type key struct {
		in     fleet.DecisionInput
		kevDue int64
	}
	keyOf := func(in fleet.DecisionInput) key {
		k := key{in, unixnano.From(in.KEVDue)}
		k.in.KEVDue = time.Time{}
		return k
	}
	memo := map[key]fleet.InputDecision{}
	remembered := func(ins []fleet.DecisionInput) ([]fleet.InputDecision, error) {
		var todo []fleet.DecisionInput
		for _, in := range ins {
			if _, ok := memo[keyOf(in)]; !ok {
				todo = append(todo, in)
			}
		}
		if len(todo) > 0 {
			ds, err := decide(todo)
			if err != nil {
				return nil, err
			}
			for _, d := range ds {
				memo[keyOf(d.Input)] = d
			}
		}
		out := make([]fleet.InputDecision, len(ins))
		for i, in := range ins {
			d, ok := memo[keyOf(in)]
			if !ok {
				return nil, fmt.Errorf("re-decide findings: no decision of %s %s %s", in.Vulnerability, in.Package, in.Version)
			}
			out[i] = d
		}
		return out, nil
	}
	for start := 0; start < len(ids); start += chunk {
		cr, err := s.bulkRedecide(ctx, ids[start:min(start+chunk, len(ids))], scope, remembered, now, cause)
		if err != nil {
			return r, err
		}
		r.Hosts, r.Findings, r.Changed = r.Hosts+cr.Hosts, r.Findings+cr.Findings, r.Changed+cr.Changed
	}
	return r, nil
}

// bulkRedecide re-decides the findings of the hosts ids (sorted) in one
// transaction: their rows are locked first (in id order, as every
// multi-host transaction does), then temporary tables hold the hosts'
// classes, the decisions and the findings they change.
func (s *Findings) bulkRedecide(ctx context.Context, ids []string, scope fleet.BulkScope, decide func([]fleet.DecisionInput) ([]fleet.InputDecision, error),
	now time.Time, cause string) (fleet.ReprioritizeResult, error) {
	var r fleet.ReprioritizeResult
	hosts, vulns := scope.Hosts, scope.Vulns
	// Blind decisions are joined on the decision points alone; their
	// identity columns are stored empty.
	key := decisionKey + identityKey
	if scope.Blind {
		key = decisionKey
	}
	defer lockWrites(s.D.WriteLock)()
	tx, err := s.DB.BeginTx(ctx, nil)
	if err != nil {
		return r, err
	}
	defer tx.Rollback()
	fail := func(err error) (fleet.ReprioritizeResult, error) {
		return fleet.ReprioritizeResult{}, fmt.Errorf("re-decide findings: %w", err)
	}
	exec := func(q string, args ...any) (sql.Result, error) { return tx.ExecContext(ctx, s.D.Rebind(q), args...) }
	temps := []string{"rd_hosts", "rd_d", "rd_c"} // dropped before the commit
	for _, q := range []string{
		`CREATE TEMP TABLE rd_hosts (host_id TEXT PRIMARY KEY, class INTEGER NOT NULL)`,
		`CREATE TEMP TABLE rd_d (id BIGINT PRIMARY KEY, class INTEGER NOT NULL, vulnerability TEXT NOT NULL, ecosystem TEXT NOT NULL,
			package TEXT NOT NULL, version TEXT NOT NULL, exploitation_in TEXT NOT NULL, automatable ` + s.D.BoolType + ` NOT NULL,
			impact TEXT NOT NULL, cycle TEXT NOT NULL, kev_due_in BIGINT NOT NULL, priority TEXT NOT NULL, state TEXT NOT NULL,
			exception TEXT NOT NULL, lane TEXT NOT NULL, exploitation TEXT NOT NULL, kev_due BIGINT NOT NULL, sla BIGINT NOT NULL,
			due_cap BIGINT NOT NULL, reasons TEXT NOT NULL)`,
		`CREATE UNIQUE INDEX rd_d_key ON rd_d (class, vulnerability, ecosystem, package, version, exploitation_in, automatable, impact, cycle, kev_due_in)`,
		`CREATE TEMP TABLE rd_c (id BIGINT PRIMARY KEY, did BIGINT NOT NULL, host_id TEXT NOT NULL, ev INTEGER NOT NULL)`,
	} {
		if _, err := exec(q); err != nil {
			return fail(err)
		}
	}
	const hostRows = 500
	for start := 0; start < len(ids); start += hostRows {
		part := ids[start:min(start+hostRows, len(ids))]
		args := make([]any, 0, 2*len(part))
		for _, id := range part {
			args = append(args, id, hosts[id])
		}
		if _, err := exec("INSERT INTO rd_hosts (host_id, class) VALUES "+strings.TrimSuffix(strings.Repeat("(?,?),", len(part)), ","), args...); err != nil {
			return fail(err)
		}
	}
	if s.D.AnalyzeTemp {
		if _, err := exec("ANALYZE rd_hosts"); err != nil {
			return fail(err)
		}
	}
	if s.D.ForUpdate != "" {
		// Locks taken, rows not needed: the counts are counted again.
		rows, err := tx.QueryContext(ctx, "SELECT id FROM hosts WHERE id IN (SELECT host_id FROM rd_hosts) ORDER BY id"+s.D.ForUpdate)
		if err != nil {
			return fail(err)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fail(err)
		}
	}
	// The findings in scope are those of rd_hosts, or of the
	// vulnerabilities named: found in one pass (no index by
	// vulnerability), kept in rd_f. from and where select them as f, with
	// their host's class in h.class.
	from, where := "rd_hosts h CROSS JOIN host_findings f", "f.host_id = h.host_id AND f.remediated_at = 0"
	if len(vulns) == 0 {
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM rd_hosts h WHERE EXISTS
			(SELECT 1 FROM host_findings f WHERE f.host_id = h.host_id AND f.remediated_at = 0)`).Scan(&r.Hosts); err != nil {
			return fail(err)
		}
	} else {
		if _, err := exec(`CREATE TEMP TABLE rd_f (id BIGINT PRIMARY KEY, class INTEGER NOT NULL, host_id TEXT NOT NULL)`); err != nil {
			return fail(err)
		}
		temps = append(temps, "rd_f")
		if _, err := exec(`INSERT INTO rd_f (id, class, host_id) SELECT f.id, h.class, f.host_id FROM host_findings f CROSS JOIN rd_hosts h
			WHERE h.host_id = f.host_id AND f.remediated_at = 0 AND f.vulnerability IN (`+strings.TrimSuffix(strings.Repeat("?,", len(vulns)), ",")+`)`,
			anys(vulns)...); err != nil {
			return fail(err)
		}
		if s.D.AnalyzeTemp {
			if _, err := exec("ANALYZE rd_f"); err != nil {
				return fail(err)
			}
		}
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(DISTINCT host_id) FROM rd_f`).Scan(&r.Hosts); err != nil {
			return fail(err)
		}
		from, where = "rd_f h CROSS JOIN host_findings f", "f.id = h.id"
	}
	ins, err := s.distinctInputs(ctx, tx, from, where, scope.Blind, &r.Findings)
	if err != nil {
		return fail(err)
	}
	decisions, err := decide(ins)
	if err != nil {
		return fleet.ReprioritizeResult{}, err
	}
	const decRows = 200
	for start := 0; start < len(decisions); start += decRows {
		part := decisions[start:min(start+decRows, len(decisions))]
		args := make([]any, 0, 20*len(part))
		for i, d := range part {
			in := d.Input
			reasons := []byte("[]")
			if d.Reasons != nil {
				reasons, _ = json.Marshal(d.Reasons)
			}
			st := d.State
			if st == "" {
				st = fleet.StateOpen
			}
			args = append(args, start+i+1, in.Class, in.Vulnerability, in.Ecosystem, in.Package, in.Version, string(in.Exploitation), in.Automatable,
				in.Impact, string(in.Cycle), unixnano.From(in.KEVDue), d.Priority.String(), string(st), d.Exception, string(d.Lane),
				string(d.Exploitation), unixnano.From(d.KEVDue), int64(d.SLA), unixnano.From(d.DueCap), string(reasons))
		}
		q := "INSERT INTO rd_d VALUES " + strings.TrimSuffix(strings.Repeat("(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?),", len(part)), ",")
		if _, err := exec(q, args...); err != nil {
			return fail(err)
		}
	}
	if s.D.AnalyzeTemp {
		if _, err := exec("ANALYZE rd_d"); err != nil {
			return fail(err)
		}
	}
	// The findings whose decision changes, and whether it is a change of
	// priority or state (an event, and the host's counts).
	res, err := exec(`INSERT INTO rd_c (id, did, host_id, ev)
		SELECT f.id, d.id, f.host_id, CASE WHEN f.priority <> d.priority OR f.state <> d.state THEN 1 ELSE 0 END
		FROM ` + from + ` JOIN rd_d d ON ` + key + `
		WHERE ` + where + ` AND (f.priority <> d.priority OR f.state <> d.state OR f.exception <> d.exception OR
			f.lane <> d.lane OR f.exploitation <> d.exploitation OR f.kev_due <> d.kev_due OR f.due <> ` + fmt.Sprintf(dueExpr, "f") + `)`)
	if err != nil {
		return fail(err)
	}
	changed, err := res.RowsAffected()
	if err != nil {
		return fail(err)
	}
	r.Changed = int(changed)
	if changed > 0 {
		if s.D.AnalyzeTemp {
			if _, err := exec("ANALYZE rd_c"); err != nil {
				return fail(err)
			}
		}
		if _, err := exec(`INSERT INTO finding_events (finding_id, at, priority_from, priority_to, state_from, state_to, cause, reasons)
			SELECT f.id, ?, f.priority, d.priority, f.state, d.state, ?, d.reasons
			FROM rd_c c JOIN host_findings f ON f.id = c.id JOIN rd_d d ON d.id = c.did WHERE c.ev = 1 ORDER BY c.id`, now.UnixNano(), cause); err != nil {
			return fail(err)
		}
		// The counts move by what changes (read before the update).
		if err := s.moveCounts(ctx, tx); err != nil {
			return fail(err)
		}
		if _, err := exec(`UPDATE host_findings SET priority = d.priority, state = d.state, exception = d.exception, lane = d.lane,
			exploitation = d.exploitation, kev_due = d.kev_due, due = ` + fmt.Sprintf(dueExpr, "host_findings") + `
			FROM rd_c c JOIN rd_d d ON d.id = c.did WHERE host_findings.id = c.id`); err != nil {
			return fail(err)
		}
	}
	for _, t := range temps {
		if _, err := exec("DROP TABLE " + t); err != nil {
			return fail(err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fail(err)
	}
	return r, nil
}

// distinctInputs reads the distinct decision inputs of the findings in
// scope (from, where: see BulkRedecide), without their identity when
// blind, adding how many findings have them to n.
func (s *Findings) distinctInputs(ctx context.Context, tx *sql.Tx, from, where string, blind bool, n *int) ([]fleet.DecisionInput, error) {
	cols, group := identityColumns+", "+decisionColumns, identityColumns+", "+decisionColumns
	if blind {
		cols, group = "'', '', '', '', "+decisionColumns, decisionColumns
	}
	rows, err := tx.QueryContext(ctx, `SELECT h.class, `+cols+`, COUNT(*) FROM `+from+` WHERE `+where+`
		GROUP BY h.class, `+group)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []fleet.DecisionInput
	for rows.Next() {
		var in fleet.DecisionInput
		var exp, cycle string
		var kevDue int64
		var count int
		if err := rows.Scan(&in.Class, &in.Vulnerability, &in.Ecosystem, &in.Package, &in.Version, &exp, &in.Automatable, &in.Impact, &cycle, &kevDue, &count); err != nil {
			return nil, err
		}
		in.Exploitation, in.Cycle, in.KEVDue = risk.Exploitation(exp), patch.Cycle(cycle), unixnano.To(kevDue)
		out = append(out, in)
		*n += count
	}
	return out, rows.Err()
}

// moveCounts moves the open counts, by priority, of the hosts whose
// findings change priority or state (rd_c, before the update) by what
// changes: the hosts' own findings are not read.
func (s *Findings) moveCounts(ctx context.Context, tx *sql.Tx) error {
	counts, err := s.lockCounts(ctx, tx, `SELECT id, open_counts FROM hosts WHERE id IN (SELECT host_id FROM rd_c WHERE ev = 1)`, nil)
	if err != nil {
		return err
	}
	rows, err := tx.QueryContext(ctx, `SELECT c.host_id, f.priority, f.state, d.priority, d.state, COUNT(*)
		FROM rd_c c JOIN host_findings f ON f.id = c.id JOIN rd_d d ON d.id = c.did WHERE c.ev = 1
		GROUP BY c.host_id, f.priority, f.state, d.priority, d.state`)
	if err != nil {
		return err
	}
	for rows.Next() {
		var id, pFrom, sFrom, pTo, sTo string
		var n int
		if err := rows.Scan(&id, &pFrom, &sFrom, &pTo, &sTo, &n); err != nil {
			rows.Close()
			return err
		}
		c := counts[id]
		if c == nil {
			continue // deleted meanwhile
		}
		if sFrom == stateOpen {
			c[pFrom] -= n
		}
		if sTo == stateOpen {
			c[pTo] += n
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	dirty := make([]string, 0, len(counts))
	for id := range counts {
		dirty = append(dirty, id)
	}
	slices.Sort(dirty)
	const chunk = 500
	for start := 0; start < len(dirty); start += chunk {
		if err := s.writeCounts(ctx, tx, dirty[start:min(start+chunk, len(dirty))], counts); err != nil {
			return err
		}
	}
	return nil
}
