package server_test

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/patchbay/patchbay/kinds"
	"github.com/patchbay/patchbay/policy"
	"github.com/patchbay/patchbay/scorecard"
	"github.com/patchbay/patchbay/server"
	"github.com/patchbay/patchbay/store"
)

// BenchmarkScore is the scoring after an event at 10,000 hosts
// (PATCHBAY_SCORE_HOSTS) and 500 services (PATCHBAY_SCORE_SERVICES) on
// SQLite: everything the leader does once a mark is seen — read the
// policy, hosts, open exposure, KEV and 90 days of KPIs, compute every
// service's facts, evaluate the docs' patch-hygiene scorecard, keep what
// changed and queue notices. Each iteration pushes a fact first (the
// event), so one service's result changes. Run with
//
//	nice go test -run '^$' -bench BenchmarkScore -benchtime 3x ./server
func BenchmarkScore(b *testing.B) {
	ctx := context.Background()
	hosts, services := envInt("PATCHBAY_SCORE_HOSTS", 10000), envInt("PATCHBAY_SCORE_SERVICES", 500)
	dir := b.TempDir()
	db, err := store.Open(ctx, filepath.Join(dir, "patchbay.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	now := time.Date(2027, 2, 1, 12, 0, 0, 0, time.UTC)
	began := time.Now()
	intervals := seedScoreFleet(b, db, hosts, services, now)
	var docs strings.Builder
	for t := range 20 {
		fmt.Fprintf(&docs, "apiVersion: patchbay/v1\nkind: Team\nmetadata: {name: team-%02d}\nspec: {}\n---\n", t)
	}
	for s := range services {
		fmt.Fprintf(&docs, "apiVersion: patchbay/v1\nkind: Service\nmetadata: {name: svc-%03d}\nspec: {owner: team-%02d, tier: %d, exposure: internal, hosts: svc=svc-%03d}\n---\n", s, s%20, 1+s%4, s)
	}
	example, err := os.ReadFile("../docs/policy-example/scorecards.yaml")
	if err != nil {
		b.Fatal(err)
	}
	// The example's exemption names a service of the example catalog.
	card := strings.Replace(string(example), "service: reporting", "service: svc-001", 1)
	parsed, err := kinds.All().Parse("bench.yaml", []byte(docs.String()+card))
	if err != nil {
		b.Fatal(err)
	}
	changes, _, err := policy.Diff(nil, parsed, nil)
	if err != nil {
		b.Fatal(err)
	}
	if err := db.Policy.Apply(ctx, changes, "bench", now); err != nil {
		b.Fatal(err)
	}
	_, key, _ := ed25519.GenerateKey(nil)
	srv, err := server.New(server.Config{DB: db, Kinds: kinds.All(), ReplicaID: "bench", AuditKey: key, JobKey: testJobKey, CheckpointDir: dir,
		Now: func() time.Time { return now }})
	if err != nil {
		b.Fatal(err)
	}
	fmt.Fprintf(os.Stderr, "score fleet: %d hosts, %d services, %d exposure intervals (2 in 3 open), seeded in %s\n", hosts, services, intervals, time.Since(began).Round(time.Millisecond))
	start := time.Now()
	o, err := srv.ScoreNow(ctx)
	if err != nil {
		b.Fatal(err)
	}
	fmt.Fprintf(os.Stderr, "first scoring: %d evaluated, %d kept, in %s\n", o.Evaluated, o.Changed, time.Since(start).Round(time.Millisecond))
	b.ResetTimer()
	var worst time.Duration
	for i := 0; b.Loop(); i++ {
		now = now.Add(time.Minute)
		t0 := time.Now()
		if err := db.Scores.PushFact(ctx, scorecard.CustomFact{Service: "svc-002", Name: "coverage", Value: fmt.Sprint(90 - 20*(i%2)), At: now, Actor: "bench"}); err != nil {
			b.Fatal(err)
		}
		o, err := srv.ScoreNow(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if o.Changed != 1 {
			b.Fatalf("iteration %d: %+v, want one change", i, o)
		}
		worst = max(worst, time.Since(t0))
	}
	b.ReportMetric(worst.Seconds(), "s/event-worst")
	fmt.Fprintf(os.Stderr, "event to current score: worst %.2fs (target: 60s) at %d hosts, %d services\n", worst.Seconds(), hosts, services)
}

func envInt(name string, def int) int {
	var n int
	if _, err := fmt.Sscan(os.Getenv(name), &n); err == nil && n > 0 {
		return n
	}
	return def
}

// seedScoreFleet writes hosts and their exposure straight into the
// tables: each host runs one service, has about 20 open intervals (some
// overdue) and 10 closed in the last 90 days.
func seedScoreFleet(b *testing.B, db *store.DB, hosts, services int, now time.Time) int {
	b.Helper()
	ctx := context.Background()
	tx, err := db.SQL().BeginTx(ctx, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer tx.Rollback()
	host, _ := tx.Prepare(`INSERT INTO hosts(id, machine_id, hostname, ecosystem, labels, last_seen, inventory_hash, facts, enrolled_at) VALUES (?,?,?,?,?,?,'',?,?)`)
	iv, _ := tx.Prepare(`INSERT INTO exposure_ledger(id, finding_id, host_id, ecosystem, package, vulnerability, priority, cycle, fixed, opened_at, due, closed_at, close_reason, reopen_of)
		VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,0)`)
	rng := rand.New(rand.NewPCG(3, 4))
	prios := []string{"P1", "P2", "P2", "P3", "P3", "P3", "P4", "P4", "P4", "P4"}
	sla := map[string]time.Duration{"P1": 7, "P2": 30, "P3": 90, "P4": 180}
	day := 24 * time.Hour
	n := 0
	for h := range hosts {
		id := fmt.Sprintf("host-%05d", h)
		osv := []string{"12", "13", "10"}[h%3]
		facts := fmt.Sprintf(`{"hostname":%q,"machine_id":"m-%s","os_id":"debian","os_version":%q,"ecosystem":"Debian:%s","kernel_running":"6.1.0-1","kernel_newest":"6.1.0-%d","reboot_required":%v}`,
			id, id, osv, osv, 1+h%7/6, h%11 == 0)
		labels := fmt.Sprintf(`{"svc":"svc-%03d"}`, h%services)
		if _, err := host.Exec(id, "m-"+id, id, "Debian:"+osv, labels, now.Add(-time.Minute).UnixNano(), facts, now.Add(-400*day).UnixNano()); err != nil {
			b.Fatal(err)
		}
		for k := range 30 {
			n++
			p := prios[rng.IntN(len(prios))]
			opened := now.Add(-time.Duration(rng.IntN(80*86400)) * time.Second)
			closed, reason := int64(0), ""
			if k >= 20 {
				closed, reason = opened.Add(time.Duration(rng.Int64N(int64(now.Sub(opened))))).UnixNano(), "remediated"
			}
			v := rng.IntN(5000)
			if _, err := iv.Exec(n, n, id, "Debian:"+osv, fmt.Sprintf("pkg%d", v%300), fmt.Sprintf("CVE-2026-%05d", v), p, "system", fmt.Sprintf("%d.1", v),
				opened.UnixNano(), opened.Add(sla[p]*day).UnixNano(), closed, reason); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
	if _, err := db.SQL().ExecContext(ctx, `ANALYZE`); err != nil {
		b.Fatal(err)
	}
	return n
}
