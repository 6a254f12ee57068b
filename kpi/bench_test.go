package kpi_test

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/patchbay/patchbay/fleet"
	"github.com/patchbay/patchbay/kpi"
	"github.com/patchbay/patchbay/store"
)

// The benchmark fleet: PATCHBAY_KPI_HOSTS hosts (10,000) over
// PATCHBAY_KPI_DAYS days (400) of history, written straight into the
// ledger tables (the triggers' output) on SQLite: every host gains a
// finding every 3 days on average and fixes them by priority (P1 in
// days, P4 in months), pauses its check-ins about once a month, and has
// a patch job every month. Run with
//
//	nice go test -run '^$' -bench . -benchtime 5x ./kpi
type benchFleet struct {
	db         *store.DB
	svc        *kpi.Service
	end        time.Time
	hosts      int
	days       int
	intervals  int
	ledgerSize int64 // bytes of the ledger, the gaps and the snapshots
}

// TestMain removes the benchmark's database.
func TestMain(m *testing.M) {
	code := m.Run()
	if benchDir != "" {
		os.RemoveAll(benchDir)
	}
	os.Exit(code)
}

var (
	benchDir  string
	benchOnce sync.Once
	bench     *benchFleet
	benchErr  error
)

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

func benchmarkFleet(b *testing.B) *benchFleet {
	b.Helper()
	benchOnce.Do(func() { bench, benchErr = buildBenchFleet() })
	if benchErr != nil {
		b.Fatal(benchErr)
	}
	return bench
}

func buildBenchFleet() (*benchFleet, error) {
	ctx := context.Background()
	// PATCHBAY_KPI_DB keeps the fleet's database for the next run (made
	// when absent, reused as it is when there).
	path := os.Getenv("PATCHBAY_KPI_DB")
	_, statErr := os.Stat(path)
	reuse := path != "" && statErr == nil
	if path == "" {
		dir, err := os.MkdirTemp("", "kpi-bench-")
		if err != nil {
			return nil, err
		}
		benchDir = dir
		path = filepath.Join(dir, "patchbay.db")
	}
	db, err := store.Open(ctx, path)
	if err != nil {
		return nil, err
	}
	f := &benchFleet{db: db, hosts: envInt("PATCHBAY_KPI_HOSTS", 10000), days: envInt("PATCHBAY_KPI_DAYS", 400)}
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	f.end = start.Add(time.Duration(f.days) * day)
	f.svc = &kpi.Service{Store: db.KPI, Now: func() time.Time { return f.end }, Assets: func(ctx context.Context) ([]kpi.Asset, error) {
		hs, err := db.Fleet.Hosts(ctx, fleet.HostFilter{})
		if err != nil {
			return nil, err
		}
		return kpi.AssetsOf(hs, nil), nil
	}}
	if reuse {
		if err := db.SQL().QueryRow(`SELECT COUNT(*) FROM exposure_ledger`).Scan(&f.intervals); err != nil {
			return nil, err
		}
		size, err := tableBytes(db.SQL())
		f.ledgerSize = size // (the snapshots of the days not taken are not extrapolated on reuse)
		return f, err
	}
	rng := rand.New(rand.NewPCG(1, 2))
	began := time.Now()
	sqlDB := db.SQL()
	before, err := tableBytes(sqlDB)
	if err != nil {
		return nil, err
	}
	tx, err := sqlDB.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	host, _ := tx.Prepare(`INSERT INTO hosts(id, machine_id, hostname, ecosystem, labels, last_seen, inventory_hash, enrolled_at) VALUES (?,?,?,?,?,?,'',?)`)
	iv, _ := tx.Prepare(`INSERT INTO exposure_ledger(id, finding_id, host_id, ecosystem, package, vulnerability, priority, cycle, fixed, opened_at, due, closed_at, close_reason, reopen_of)
		VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,0)`)
	gap, _ := tx.Prepare(`INSERT OR IGNORE INTO host_gaps(host_id, from_at, to_at) VALUES (?,?,?)`)
	ph, _ := tx.Prepare(`INSERT INTO plan_hosts(plan_id, host_id, seq, ring, host, attempt, started_at, outcome, reported_at) VALUES (?,?,?,0,?,1,?,?,?)`)
	months := f.days/30 + 1
	for m := range months {
		at := start.Add(time.Duration(m*30)*day + 10*time.Hour).UnixNano()
		if _, err := tx.Exec(`INSERT INTO plans(id, state, plan, version, created_at, updated_at) VALUES (?, 'started', ?, 1, ?, ?)`,
			fmt.Sprintf("plan-%d", m), `{"id":"x","strategy":"monthly"}`, at, at); err != nil {
			return nil, err
		}
	}
	prios := []string{"P1", "P2", "P2", "P3", "P3", "P3", "P4", "P4", "P4", "P4"}
	fixDays := map[string]float64{"P1": 3, "P2": 14, "P3": 45, "P4": 120}
	outcomes := []string{"succeeded", "succeeded", "succeeded", "succeeded", "succeeded", "succeeded_reboot_required", "no_change_needed", "failed", "rolled_back", "timed_out"}
	fid := 0
	for h := range f.hosts {
		id := fmt.Sprintf("host-%05d", h)
		labels := fmt.Sprintf(`{"team":"team-%02d","env":"%s"}`, h%20, []string{"prod", "staging"}[h%2])
		if _, err := host.Exec(id, "m-"+id, id, "Debian:12", labels, f.end.UnixNano(), start.UnixNano()); err != nil {
			return nil, err
		}
		for d := 0; d < f.days; d++ {
			if rng.IntN(3) != 0 {
				continue
			}
			fid++
			p := prios[rng.IntN(len(prios))]
			opened := start.Add(time.Duration(d)*day + time.Duration(rng.IntN(86400))*time.Second)
			due := opened.Add(map[string]time.Duration{"P1": 7 * day, "P2": 30 * day, "P3": 90 * day, "P4": 180 * day}[p])
			closed, reason := int64(0), ""
			if c := opened.Add(time.Duration(rng.ExpFloat64() * fixDays[p] * float64(day))); c.Before(f.end) {
				closed, reason = c.UnixNano(), "remediated"
				if rng.IntN(50) == 0 {
					reason = "accepted"
				}
			}
			v := rng.IntN(5000)
			if _, err := iv.Exec(fid, fid, id, "Debian:12", fmt.Sprintf("pkg%d", v%300), fmt.Sprintf("CVE-2025-%05d", v), p, "system", fmt.Sprintf("%d.1", v),
				opened.UnixNano(), due.UnixNano(), closed, reason); err != nil {
				return nil, err
			}
			f.intervals++
		}
		for d := rng.IntN(30); d < f.days; d += 20 + rng.IntN(20) {
			from := start.Add(time.Duration(d)*day + time.Duration(rng.IntN(86400))*time.Second)
			if _, err := gap.Exec(id, from.UnixNano(), from.Add(time.Duration(15+rng.IntN(600))*time.Minute).UnixNano()); err != nil {
				return nil, err
			}
		}
		for m := range months {
			st := start.Add(time.Duration(m*30)*day + 11*time.Hour)
			if !st.Before(f.end) {
				break
			}
			if _, err := ph.Exec(fmt.Sprintf("plan-%d", m), id, h, `{"id":"`+id+`","targets":[{"name":"pkg1","types":["security"]}]}`,
				st.UnixNano(), outcomes[rng.IntN(len(outcomes))], st.Add(20*time.Minute).UnixNano()); err != nil {
				return nil, err
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "bench fleet: %d hosts, %d intervals written in %s\n", f.hosts, f.intervals, time.Since(began).Round(time.Millisecond))
	// The last weeks of daily snapshots, as the leader takes them (the
	// snapshots' size is measured per day).
	for d := max(1, f.days-snapDays+1); d <= f.days; d++ {
		if err := db.KPI.TakeSnapshot(ctx, start.Add(time.Duration(d)*day)); err != nil {
			return nil, err
		}
	}
	// As the server's checkpointer does: reads then come from the
	// database file, not through the WAL.
	if _, err := sqlDB.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		return nil, err
	}
	if _, err := sqlDB.Exec(`ANALYZE`); err != nil {
		return nil, err
	}
	after, err := tableBytes(sqlDB)
	if err != nil {
		return nil, err
	}
	snaps, err := snapshotBytes(sqlDB)
	if err != nil {
		return nil, err
	}
	// The snapshots of every day of the history, from those taken.
	f.ledgerSize = after - before + snaps*int64(f.days-snapDays)/snapDays
	fmt.Fprintf(os.Stderr, "bench fleet: ready in %s; KPI tables %d bytes (snapshots %d for %d days)\n", time.Since(began).Round(time.Millisecond), after-before, snaps, snapDays)
	return f, nil
}

const snapDays = 14

func snapshotBytes(db *sql.DB) (int64, error) {
	var n sql.NullInt64
	err := db.QueryRow(`SELECT SUM(pgsize) FROM dbstat WHERE name IN (SELECT name FROM sqlite_schema WHERE tbl_name = 'kpi_snapshots')`).Scan(&n)
	return n.Int64, err
}

// tableBytes is the size of the KPI tables and their indexes (SQLite's
// dbstat).
func tableBytes(db *sql.DB) (int64, error) {
	var n sql.NullInt64
	err := db.QueryRow(`SELECT SUM(pgsize) FROM dbstat WHERE name IN (SELECT name FROM sqlite_schema WHERE tbl_name IN ('exposure_ledger', 'host_gaps', 'kpi_snapshots'))`).Scan(&n)
	return n.Int64, err
}

// cpuPerOp reports the CPU time per operation since start.
func cpuPerOp(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(cpuTime()-start)/float64(b.N)/1e6, "cpu-ms/op")
}

func (f *benchFleet) report(b *testing.B) {
	b.ReportMetric(float64(f.ledgerSize)/float64(f.hosts)/float64(f.days), "ledger-B/host/day")
	b.ReportMetric(float64(f.intervals), "intervals")
}

func BenchmarkKPIFleet(b *testing.B) {
	f := benchmarkFleet(b)
	f.report(b)
	ctx := context.Background()
	b.ResetTimer()
	cpu := cpuTime()
	defer cpuPerOp(b, cpu)
	for b.Loop() {
		r, err := f.svc.Report(ctx, kpi.Query{From: f.end.Add(-90 * day)})
		if err != nil || r.Total.Open.Count == 0 {
			b.Fatal(err, r.Total.Open.Count)
		}
	}
}

func BenchmarkKPIByTeam(b *testing.B) {
	f := benchmarkFleet(b)
	ctx := context.Background()
	b.ResetTimer()
	cpu := cpuTime()
	defer cpuPerOp(b, cpu)
	for b.Loop() {
		r, err := f.svc.Report(ctx, kpi.Query{From: f.end.Add(-90 * day), By: kpi.ByTeam})
		if err != nil || len(r.Groups) != 20 {
			b.Fatal(err, len(r.Groups))
		}
	}
}

// BenchmarkFindingsAsOf is a page of the list (100, the CLI's and the
// API's default), BenchmarkFindingsAsOfAll the whole list.
func BenchmarkFindingsAsOf(b *testing.B) {
	f := benchmarkFleet(b)
	ctx := context.Background()
	at := f.end.Add(-time.Duration(f.days/2) * day)
	b.ResetTimer()
	cpu := cpuTime()
	defer cpuPerOp(b, cpu)
	for b.Loop() {
		p, err := f.svc.FindingsPage(ctx, at, kpi.Filter{}, 0, 100)
		if err != nil || len(p.Findings) != 100 {
			b.Fatal(err, len(p.Findings))
		}
		b.ReportMetric(float64(p.Total), "open")
	}
}

func BenchmarkFindingsAsOfAll(b *testing.B) {
	f := benchmarkFleet(b)
	ctx := context.Background()
	at := f.end.Add(-time.Duration(f.days/2) * day)
	b.ResetTimer()
	cpu := cpuTime()
	defer cpuPerOp(b, cpu)
	for b.Loop() {
		fs, err := f.svc.FindingsAsOf(ctx, at, kpi.Filter{})
		if err != nil || len(fs) == 0 {
			b.Fatal(err, len(fs))
		}
	}
}

func BenchmarkSnapshot(b *testing.B) {
	f := benchmarkFleet(b)
	ctx := context.Background()
	b.ResetTimer()
	cpu := cpuTime()
	defer cpuPerOp(b, cpu)
	for b.Loop() {
		if err := f.db.KPI.TakeSnapshot(ctx, f.end); err != nil {
			b.Fatal(err)
		}
	}
}
