package storetest

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// LedgerRow is an exposure_ledger row, as the backfill tests compare
// them.
type LedgerRow struct {
	Finding              int64
	Vuln                 string
	Opened, Closed, Due  int64
	Reason               string
	ReopenOfVuln         string // the vulnerability of the interval reopened ("" for none)
	ReopenOfOpened       int64
	Priority, Cycle, Fix string
}

// ReadLedger reads the exposure ledger, ordered by finding and open time.
func ReadLedger(t *testing.T, db *sql.DB) []LedgerRow {
	t.Helper()
	rows, err := db.Query(`SELECT l.finding_id, l.vulnerability, l.opened_at, l.closed_at, l.due, l.close_reason,
		COALESCE(p.vulnerability, ''), COALESCE(p.opened_at, 0), l.priority, l.cycle, l.fixed
		FROM exposure_ledger l LEFT JOIN exposure_ledger p ON p.id = l.reopen_of ORDER BY l.finding_id, l.opened_at`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []LedgerRow
	for rows.Next() {
		var r LedgerRow
		if err := rows.Scan(&r.Finding, &r.Vuln, &r.Opened, &r.Closed, &r.Due, &r.Reason, &r.ReopenOfVuln, &r.ReopenOfOpened, &r.Priority, &r.Cycle, &r.Fix); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// LedgerBackfill checks migration 00014's backfill: migrate(13) brings a
// fresh database to the schema before the ledger, the test seeds
// findings and their history there, and migrate(14) must derive every
// exposure interval from them.
func LedgerBackfill(t *testing.T, db *sql.DB, migrate func(ctx context.Context, version int64) error) {
	ctx := context.Background()
	if err := migrate(ctx, 13); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.QueryRow(`SELECT COUNT(*) FROM host_findings`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	exec := func(q string) {
		t.Helper()
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	exec(`INSERT INTO hosts(id, machine_id, hostname, ecosystem, labels, last_seen, inventory_hash) VALUES ('h1', 'm1', 'h1', 'Debian:12', '{}', 1000, '')`)
	finding := func(id int, vuln string, seen, remediated, due int64, state string) {
		exec(fmt.Sprintf(`INSERT INTO host_findings(id, host_id, ecosystem, package, vulnerability, version, priority, fixed, first_seen, remediated_at, due, state, cycle)
			VALUES (%d, 'h1', 'Debian:12', 'openssl', '%s', '1.0', 'P2', '1.1', %d, %d, %d, '%s', 'system')`, id, vuln, seen, remediated, due, state))
	}
	event := func(id, finding int, at int64, from, to string) {
		exec(fmt.Sprintf(`INSERT INTO finding_events(id, finding_id, at, priority_from, priority_to, state_from, state_to, cause, reasons)
			VALUES (%d, %d, %d, 'P2', 'P2', '%s', '%s', 'test', '[]')`, id, finding, at, from, to))
	}
	// f1: open, remediated.
	finding(1, "CVE-1", 100, 500, 130, "open")
	// f2: accepted, the exception expired, then not affected (VEX).
	finding(2, "CVE-2", 200, 0, 230, "not_affected")
	event(1, 2, 300, "open", "accepted")
	event(2, 2, 400, "accepted", "open")
	event(3, 2, 600, "open", "not_affected")
	// f3: CVE-1 back on the host: a reopen of f1's interval, still open.
	finding(3, "CVE-1", 700, 0, 730, "open")
	// f4: accepted from its first sight.
	finding(4, "CVE-4", 800, 0, 830, "accepted")
	// f5: first seen accepted, the exception ended, remediated; a
	// priority change on the way is no state change.
	finding(5, "CVE-5", 850, 950, 880, "open")
	event(4, 5, 900, "accepted", "open")
	exec(`INSERT INTO finding_events(id, finding_id, at, priority_from, priority_to, state_from, state_to, cause, reasons)
		VALUES (5, 5, 920, 'P3', 'P2', 'open', 'open', 'test', '[]')`)
	if err := migrate(ctx, 14); err != nil {
		t.Fatal(err)
	}
	row := func(f int64, vuln string, opened, closed, due int64, reason, reVuln string, reOpened int64) LedgerRow {
		return LedgerRow{f, vuln, opened, closed, due, reason, reVuln, reOpened, "P2", "system", "1.1"}
	}
	want := []LedgerRow{
		row(1, "CVE-1", 100, 500, 130, "remediated", "", 0),
		row(2, "CVE-2", 200, 300, 230, "accepted", "", 0),
		row(2, "CVE-2", 400, 600, 230, "not_affected", "CVE-2", 200),
		row(3, "CVE-1", 700, 0, 730, "", "CVE-1", 100),
		row(4, "CVE-4", 800, 800, 830, "accepted", "", 0),
		row(5, "CVE-5", 850, 850, 880, "accepted", "", 0),
		row(5, "CVE-5", 900, 950, 880, "remediated", "CVE-5", 850),
	}
	got := ReadLedger(t, db)
	if !slices.Equal(got, want) {
		t.Errorf("backfilled ledger:\n%s\nwant:\n%s", ledgerText(got), ledgerText(want))
	}
}

func ledgerText(rows []LedgerRow) string {
	var b strings.Builder
	for _, r := range rows {
		fmt.Fprintf(&b, "  %+v\n", r)
	}
	return b.String()
}

// BackfillSQL is the backfill of a 00014 migration file: what the
// proof re-runs over a ledger the triggers kept, to find the two agree.
func BackfillSQL(migration string) (string, error) {
	_, rest, ok := strings.Cut(migration, "-- backfill begin\n")
	body, _, ok2 := strings.Cut(rest, "-- backfill end\n")
	if !ok || !ok2 {
		return "", fmt.Errorf("migration: no backfill markers")
	}
	return body, nil
}
