package kpi_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/patchbay/patchbay/fleet"
	"github.com/patchbay/patchbay/internal/pgtest"
	"github.com/patchbay/patchbay/job"
	"github.com/patchbay/patchbay/kpi"
	"github.com/patchbay/patchbay/patch"
	"github.com/patchbay/patchbay/risk"
	"github.com/patchbay/patchbay/rollout"
	"github.com/patchbay/patchbay/store"
	"github.com/patchbay/patchbay/store/storetest"
)

// The proof: a fleet lived through 120 simulated days on the real store
// (findings synced as ingest does, check-ins, rollouts and their jobs,
// update releases), every event also written down by the test; then
// every KPI is computed again from the test's own event list and must
// equal what package kpi reads from the ledger the store kept.

const (
	simDays = 120
	eco     = "Debian:12"
	nHosts  = 10
	stale   = 25 * time.Hour // hosts check in every 12 hours
	day     = 24 * time.Hour
)

var slas = map[string]time.Duration{"P1": 7 * day, "P2": 30 * day, "P3": 90 * day, "P4": 180 * day}

// ev is an exposure interval as the test saw it happen.
type ev struct {
	host, pkg, vuln, prio, fixed, cycle string
	opened, closed, due                 time.Time
	reason                              kpi.Reason
	prev                                *ev
}

type liveFinding struct {
	f        fleet.Finding
	iv       *ev // the open interval; nil while accepted
	rowSeen  time.Time
	accepted bool
}

type simJob struct {
	plan            string
	checks, failed  int
	host, strategy  string
	outcome         job.Outcome
	started, settle time.Time
	types           []string
}

type sim struct {
	t        *testing.T
	ctx      context.Context
	db       *store.DB
	start    time.Time
	now      time.Time
	rng      *rand.Rand
	hosts    []string
	team     map[string]string
	live     map[string]map[string]*liveFinding // host → finding key
	ivs      []*ev
	released map[string]time.Time // vuln → when its fix was released
	seen     map[string]bool      // vulns whose release the agents reported
	checkins map[string][]time.Time
	jobs     []simJob
	// day 40, as the store and the KPIs said then
	day40Open   map[string]bool
	day40Report kpi.Report
}

func at(s *sim, d int, h time.Duration) time.Time { return s.start.Add(time.Duration(d)*day + h) }

func (s *sim) service(now time.Time) *kpi.Service {
	return &kpi.Service{Store: s.db.KPI, Now: func() time.Time { return now }, Assets: func(ctx context.Context) ([]kpi.Asset, error) {
		hs, err := s.db.Fleet.Hosts(ctx, fleet.HostFilter{})
		if err != nil {
			return nil, err
		}
		return kpi.AssetsOf(hs, nil), nil
	}}
}

func vulnPackage(v int) string { return fmt.Sprintf("pkg%d", v%8) }

func (s *sim) run() {
	ctx := s.ctx
	for i := range nHosts {
		id := fmt.Sprintf("h%02d", i)
		s.hosts = append(s.hosts, id)
		s.team[id] = []string{"red", "blue"}[i%2]
		if err := s.db.Fleet.UpsertHost(ctx, fleet.Host{ID: id, MachineID: "m-" + id, Hostname: id + ".example", Ecosystem: eco,
			Labels: map[string]string{"team": s.team[id]}, LastSeen: s.start}); err != nil {
			s.t.Fatal(err)
		}
		s.live[id] = map[string]*liveFinding{}
		s.checkins[id] = []time.Time{s.start}
	}
	nextVuln := 0
	var reopenCandidate *ev
	for d := range simDays {
		// 03:00: the agents see the updates released today.
		for v, rel := range s.released {
			if !s.seen[v] && !rel.After(at(s, d, 3*time.Hour)) {
				s.seen[v] = true
				vi := 0
				fmt.Sscanf(v, "CVE-2026-%d", &vi)
				if err := s.db.Rollouts.SeeUpdates(ctx, eco, [][2]string{{vulnPackage(vi), fixedOf(vi)}}, rel); err != nil {
					s.t.Fatal(err)
				}
			}
		}
		for _, hh := range []time.Duration{0, 12 * time.Hour} {
			s.checkIn(at(s, d, hh))
		}
		// 06:00: the day's inventories.
		s.now = at(s, d, 6*time.Hour)
		for _, h := range s.hosts {
			lf := s.live[h]
			// Remediations: only once the fix is out.
			for _, k := range sortedKeys(lf) {
				f := lf[k]
				if f.accepted {
					continue
				}
				rel, hasFix := s.released[f.f.Vulnerability]
				if hasFix && !rel.After(s.now) && s.rng.Float64() < map[string]float64{"P1": 0.35, "P2": 0.12, "P3": 0.05, "P4": 0.03}[f.f.Priority.String()] {
					s.closeIv(f.iv, s.now, kpi.Remediated)
					if reopenCandidate == nil && d >= 45 && d < 60 {
						reopenCandidate = f.iv
					}
					delete(lf, k)
				}
			}
			if s.rng.Float64() < 0.3 {
				v := nextVuln
				nextVuln++
				s.open(h, v, d)
			}
		}
		// The accepted risk: day 30 on h03, its oldest open finding; the
		// exception ends on day 90 and the finding is open again.
		if d == 30 {
			lf := s.live["h03"]
			k := oldest(lf)
			lf[k].accepted = true
			lf[k].f.State = fleet.StateAccepted
			s.closeIv(lf[k].iv, s.now, kpi.Accepted)
			lf[k].iv = nil
		}
		if d == 90 {
			for _, k := range sortedKeys(s.live["h03"]) {
				f := s.live["h03"][k]
				if f.accepted {
					f.accepted = false
					f.f.State = fleet.StateOpen
					prev := s.lastIv("h03", f.f.Vulnerability)
					f.iv = &ev{host: "h03", pkg: f.f.Package, vuln: f.f.Vulnerability, prio: f.f.Priority.String(), fixed: f.f.Fixed, cycle: string(f.f.Cycle),
						opened: s.now, due: f.rowSeen.Add(f.f.SLA), prev: prev}
					s.ivs = append(s.ivs, f.iv)
				}
			}
		}
		// The reopened finding: what was remediated between days 45 and 60
		// comes back on day 65 (a restore from an old image).
		if d == 65 && reopenCandidate != nil {
			vi := 0
			fmt.Sscanf(reopenCandidate.vuln, "CVE-2026-%d", &vi)
			s.open(reopenCandidate.host, vi, d)
		}
		for _, h := range s.hosts {
			var cur []fleet.Finding
			for _, k := range sortedKeys(s.live[h]) {
				cur = append(cur, s.live[h][k].f)
			}
			if _, _, err := s.db.Findings.Sync(ctx, h, cur, s.now, "ingest"); err != nil {
				s.t.Fatal(err)
			}
		}
		// Rollouts.
		switch d {
		case 10:
			s.rollout(d, "r10", "canary", map[string]job.Outcome{"h00": job.Succeeded, "h01": job.Succeeded, "h02": job.Failed, "h03": job.NoChange})
		case 35:
			s.rollout(d, "r35", "canary", map[string]job.Outcome{"h04": job.SucceededReboot, "h05": job.RolledBack, "h06": job.Succeeded, "h07": job.TimedOut})
		case 61:
			// h05 is offline: no agent to run it.
			s.rollout(d, "r61", "fast", map[string]job.Outcome{"h05": job.NoAgent, "h08": job.Succeeded, "h09": job.Skipped})
		case 70:
			// h07 reboots and stays down a day and a half inside its job.
			s.rollout(d, "r70", "fast", map[string]job.Outcome{"h07": job.SucceededReboot, "h01": job.Failed, "h02": job.Succeeded})
		case 100:
			s.rollout(d, "r100", "canary", map[string]job.Outcome{"h00": job.Succeeded, "h03": job.RolledBack, "h06": job.Succeeded, "h09": job.Succeeded})
		}
		if d == 40 {
			s.record40()
		}
	}
	if reopenCandidate == nil {
		s.t.Fatal("the simulation remediated nothing between days 45 and 60: no reopen to test")
	}
}

func fixedOf(v int) string { return fmt.Sprintf("2.%d-1", v) }

func (s *sim) open(h string, v, d int) {
	vuln := fmt.Sprintf("CVE-2026-%04d", v)
	prio := []string{"P1", "P2", "P2", "P3", "P3", "P4"}[v%6]
	cycle := patch.CycleSystem
	if v%5 == 4 {
		cycle = patch.CycleApplication
	}
	fixed := ""
	if v%10 != 7 {
		fixed = fixedOf(v)
		if _, ok := s.released[vuln]; !ok {
			rel := at(s, d, 3*time.Hour).Add(time.Duration(s.rng.IntN(31)-20) * day)
			if rel.Before(s.start) {
				rel = s.start
			}
			s.released[vuln] = rel
		}
	}
	var p risk.Priority
	if err := p.UnmarshalText([]byte(prio)); err != nil {
		s.t.Fatal(err)
	}
	f := fleet.Finding{HostID: h, Ecosystem: eco, Package: vulnPackage(v), Vulnerability: vuln, Version: "1.0", Priority: p, Fixed: fixed,
		Cycle: cycle, SLA: slas[prio], State: fleet.StateOpen, Exploitation: risk.ExploitNone, Impact: "partial"}
	iv := &ev{host: h, pkg: f.Package, vuln: vuln, prio: prio, fixed: fixed, cycle: string(cycle), opened: s.now, due: s.now.Add(slas[prio]),
		prev: s.lastIv(h, vuln)}
	s.ivs = append(s.ivs, iv)
	s.live[h][f.Key()] = &liveFinding{f: f, iv: iv, rowSeen: s.now}
}

func (s *sim) lastIv(h, vuln string) *ev {
	for i := len(s.ivs) - 1; i >= 0; i-- {
		if s.ivs[i].host == h && s.ivs[i].vuln == vuln {
			return s.ivs[i]
		}
	}
	return nil
}

func (s *sim) closeIv(iv *ev, t time.Time, r kpi.Reason) { iv.closed, iv.reason = t, r }

func (s *sim) offline(h string, t time.Time) bool {
	switch h {
	case "h05": // the agent is offline for two days and a half
		return t.After(at(s, 60, 0)) && t.Before(at(s, 62, 12*time.Hour))
	case "h07": // down while its patch job reboots it
		return t.After(at(s, 70, 0)) && t.Before(at(s, 71, 12*time.Hour))
	}
	return false
}

func (s *sim) checkIn(t time.Time) {
	seen := map[string]time.Time{}
	for _, h := range s.hosts {
		if !s.offline(h, t) {
			seen[h] = t
			s.checkins[h] = append(s.checkins[h], t)
		}
	}
	if err := s.db.Fleet.Touch(s.ctx, seen); err != nil {
		s.t.Fatal(err)
	}
}

func (s *sim) rollout(d int, id, strategy string, outcomes map[string]job.Outcome) {
	ctx := s.ctx
	created := at(s, d, 10*time.Hour)
	p := &rollout.Plan{ID: id, Strategy: strategy, State: rollout.PlanState("started"), CreatedAt: created}
	hosts := slices.Sorted(func(yield func(string) bool) {
		for h := range outcomes {
			if !yield(h) {
				return
			}
		}
	})
	types := []patch.Type{patch.Security}
	if strategy == "fast" {
		types = []patch.Type{patch.Security, patch.BugFix}
	}
	for _, h := range hosts {
		p.Hosts = append(p.Hosts, rollout.PlanHost{ID: h, Hostname: h + ".example", Targets: []rollout.Target{{Name: "pkg1", From: "1.0", To: "2.0", Types: types}}})
	}
	if err := s.db.Rollouts.CreatePlan(ctx, p, created); err != nil {
		s.t.Fatal(err)
	}
	step := func(starts []rollout.Dispatch, settles []rollout.Settle, now time.Time) {
		row, err := s.db.Rollouts.Plan(ctx, id, false)
		if err != nil {
			s.t.Fatal(err)
		}
		row.Machine = &rollout.Machine{State: rollout.Running}
		if _, err := s.db.Rollouts.Step(ctx, rollout.Fence{}, row, starts, settles, now); err != nil {
			s.t.Fatal(err)
		}
	}
	started := at(s, d, 11*time.Hour)
	var starts []rollout.Dispatch
	var settles []rollout.Settle
	for _, h := range hosts {
		switch outcomes[h] {
		case job.NoAgent, job.Skipped:
			settles = append(settles, rollout.Settle{Host: h, Attempt: 0, Outcome: outcomes[h]})
			s.jobs = append(s.jobs, simJob{plan: id, host: h, strategy: strategy, outcome: outcomes[h], settle: started, types: typeNames(types)})
		default:
			starts = append(starts, rollout.Dispatch{Host: h, Attempt: 1, Started: started, Job: "signed job"})
		}
	}
	step(starts, settles, started)
	for _, h := range hosts {
		o := outcomes[h]
		settle := at(s, d, 12*time.Hour+30*time.Minute)
		if id == "r70" && h == "h07" {
			settle = at(s, 71, time.Hour)
		}
		var checks, failed int
		switch o {
		case job.NoAgent, job.Skipped:
			continue
		case job.TimedOut:
			step(nil, []rollout.Settle{{Host: h, Attempt: 1, Outcome: o}}, settle)
		default:
			// Health checks: one post check that passes; a rolled-back job's
			// fails, and its post-rollback check passes.
			result := `{"checks":[{"phase":"post","ok":true}]}`
			checks = 1
			if o == job.RolledBack {
				result, checks, failed = `{"checks":[{"phase":"post","ok":false},{"phase":"post-rollback","ok":true}]}`, 2, 1
			}
			if err := s.db.Rollouts.Report(ctx, id, h, 1, o, []byte(result), settle); err != nil {
				s.t.Fatal(err)
			}
		}
		s.jobs = append(s.jobs, simJob{plan: id, host: h, strategy: strategy, outcome: o, started: started, settle: settle, types: typeNames(types),
			checks: checks, failed: failed})
	}
}

func typeNames(ts []patch.Type) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = string(t)
	}
	return out
}

// record40 writes down, at the end of day 40, the open findings as the
// store lists them and the KPIs as they were computed then.
func (s *sim) record40() {
	end := at(s, 41, 0)
	s.day40Open = map[string]bool{}
	for _, h := range s.hosts {
		fs, err := s.db.Findings.List(s.ctx, h)
		if err != nil {
			s.t.Fatal(err)
		}
		for _, f := range fs {
			if f.RemediatedAt.IsZero() && f.State == fleet.StateOpen {
				s.day40Open[fmt.Sprintf("%s %s %s %s %s", h, f.Package, f.Vulnerability, f.Priority, f.Due.UTC().Format(time.RFC3339))] = true
			}
		}
	}
	r, err := s.service(end).Report(s.ctx, kpi.Query{From: at(s, 11, 0), Stale: stale, WithinDays: 14})
	if err != nil {
		s.t.Fatal(err)
	}
	s.day40Report = r
}

func oldest(lf map[string]*liveFinding) string {
	var best string
	for _, k := range sortedKeys(lf) {
		if !lf[k].accepted && (best == "" || lf[k].iv.opened.Before(lf[best].iv.opened)) {
			best = k
		}
	}
	return best
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func openSQLite(t *testing.T) *store.DB {
	db, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "patchbay.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func openPostgres(t *testing.T) *store.DB {
	db, err := store.Open(context.Background(), pgtest.Fresh(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestProof(t *testing.T) {
	var reports []kpi.Report
	for _, b := range []struct {
		name string
		open func(*testing.T) *store.DB
	}{{"sqlite", openSQLite}, {"postgres", openPostgres}} {
		t.Run(b.name, func(t *testing.T) {
			s := &sim{t: t, ctx: context.Background(), db: b.open(t), start: time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC), rng: rand.New(rand.NewPCG(17, 120)),
				team: map[string]string{}, live: map[string]map[string]*liveFinding{}, released: map[string]time.Time{}, seen: map[string]bool{},
				checkins: map[string][]time.Time{}}
			s.run()
			end := at(s, simDays, 0)
			svc := s.service(end)
			for _, q := range []kpi.Query{
				{From: at(s, 30, 0), To: end, Stale: stale, WithinDays: 14},
				{From: at(s, 0, 0), To: end, Stale: stale, By: kpi.ByPriority},
				{From: at(s, 60, 0), To: at(s, 75, 0), Stale: stale, By: kpi.ByTeam, WithinDays: 7},
				{From: at(s, 11, 0), To: at(s, 41, 0), Stale: stale, WithinDays: 14},
			} {
				got, err := svc.Report(s.ctx, q)
				if err != nil {
					t.Fatal(err)
				}
				want := s.expect(q)
				compare(t, fmt.Sprintf("%s..%s by %q", q.From.Format(time.DateOnly), q.To.Format(time.DateOnly), q.By), got, want)
				if q.From.Equal(s.start) {
					// The whole run saw every kind of event.
					tot := got.Total
					if tot.Reopen.Num == 0 || tot.Accepted != 1 || tot.Uptime.Down < 60+36 || tot.Uptime.PatchDown != 14 || tot.Jobs.RolledBack != 2 ||
						tot.Jobs.Failed != 2 || tot.Jobs.TimedOut != 1 || tot.Jobs.NoAgent != 1 || tot.Jobs.Skipped != 1 || tot.Open.Overdue == 0 ||
						tot.Jobs.Checks == 0 || tot.Jobs.Checks-tot.Jobs.ChecksPassed != 2 {
						t.Errorf("the simulation missed an event kind: %+v jobs %+v uptime %+v", tot, *tot.Jobs, *tot.Uptime)
					}
				}
				reports = append(reports, got)
			}
			// Jobs per rollout: completed and succeeded as the run settled them.
			byRollout, err := svc.Report(s.ctx, kpi.Query{From: s.start, To: end, Stale: stale, By: kpi.ByRollout})
			if err != nil {
				t.Fatal(err)
			}
			wantJobs := map[string][2]int{}
			for _, j := range s.jobs {
				w := wantJobs[j.plan]
				switch j.outcome {
				case job.Succeeded, job.SucceededReboot, job.NoChange:
					w[0]++
					w[1]++
				case job.Failed, job.RolledBack, job.TimedOut:
					w[1]++
				}
				wantJobs[j.plan] = w
			}
			if len(byRollout.Groups) != len(wantJobs) {
				t.Errorf("by rollout: %d groups, want %d", len(byRollout.Groups), len(wantJobs))
			}
			for _, g := range byRollout.Groups {
				if w := wantJobs[g.Group]; g.Jobs == nil || g.Jobs.Succeeded != w[0] || g.Jobs.Completed != w[1] {
					t.Errorf("rollout %s: jobs %+v, want %d of %d succeeded", g.Group, g.Jobs, w[0], w[1])
				}
			}
			// The ledger the triggers kept is the one the backfill derives
			// from the findings and their events.
			kept := storetest.ReadLedger(t, s.db.SQL())
			mig, err := os.ReadFile(filepath.Join("..", "store", s.db.Backend, "migrations", "00014_kpi_ledger.sql"))
			if err != nil {
				t.Fatal(err)
			}
			back, err := storetest.BackfillSQL(string(mig))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.db.SQL().Exec(`DELETE FROM exposure_ledger`); err != nil {
				t.Fatal(err)
			}
			for _, st := range strings.SplitAfter(back, ";\n") {
				if strings.TrimSpace(st) != "" {
					if _, err := s.db.SQL().Exec(st); err != nil {
						t.Fatalf("backfill: %v", err)
					}
				}
			}
			if derived := storetest.ReadLedger(t, s.db.SQL()); len(kept) < 100 || !slices.Equal(kept, derived) {
				t.Errorf("the ledger kept by triggers (%d intervals) differs from the backfill's (%d)", len(kept), len(derived))
			}
			// As of day 40: the findings the store listed then, the KPIs
			// computed then.
			asOf, err := svc.FindingsAsOf(s.ctx, at(s, 41, 0), kpi.Filter{})
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]bool{}
			for _, e := range asOf {
				got[fmt.Sprintf("%s %s %s %s %s", e.Asset, e.Package, e.Vulnerability, e.Priority, e.Due.UTC().Format(time.RFC3339))] = true
			}
			if len(s.day40Open) == 0 || !mapsEqual(got, s.day40Open) {
				t.Errorf("findings as of day 40: %d, recorded on day 40: %d\ngot  %v\nwant %v", len(got), len(s.day40Open), sortedKeys(got), sortedKeys(s.day40Open))
			}
			// Its pages, read brief and then whole, are the list's slices.
			for _, pg := range [][2]int{{0, 7}, {5, 11}, {len(asOf) - 3, 10}, {len(asOf) + 2, 5}} {
				p, err := svc.FindingsPage(s.ctx, at(s, 41, 0), kpi.Filter{}, pg[0], pg[1])
				if err != nil {
					t.Fatal(err)
				}
				want := asOf[min(pg[0], len(asOf)):min(pg[0]+pg[1], len(asOf))]
				if p.Total != len(asOf) || !reflect.DeepEqual(p.Findings, want) {
					t.Errorf("findings as of day 40, %d after %d: total %d (want %d)\ngot  %+v\nwant %+v", pg[1], pg[0], p.Total, len(asOf), p.Findings, want)
				}
			}
			if p, err := svc.FindingsPage(s.ctx, at(s, 41, 0), kpi.Filter{Priority: "P1"}, 0, 1000); err != nil || p.Total == 0 || p.Total != len(p.Findings) || p.Total == len(asOf) {
				t.Errorf("P1 findings as of day 40: %d of %d (of %d in all), %v", len(p.Findings), p.Total, len(asOf), err)
			}
			again, err := svc.Report(s.ctx, kpi.Query{From: at(s, 11, 0), To: at(s, 41, 0), Stale: stale, WithinDays: 14})
			if err != nil {
				t.Fatal(err)
			}
			compare(t, "day 40 as of now vs then", again, s.day40Report)
			// The daily snapshot of day 41's midnight equals the ledger's count.
			if err := s.db.KPI.TakeSnapshot(s.ctx, at(s, 41, 0)); err != nil {
				t.Fatal(err)
			}
			snaps, err := s.db.KPI.Snapshots(s.ctx, at(s, 41, 0), at(s, 41, 0))
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, sn := range snaps {
				n += sn.Open
			}
			if n != len(s.day40Open) || n != s.day40Report.Total.Open.Count {
				t.Errorf("snapshot of day 40: %d open, recorded %d, KPI %d", n, len(s.day40Open), s.day40Report.Total.Open.Count)
			}
		})
	}
	if len(reports) == 8 {
		for i := range 4 {
			compare(t, "sqlite vs postgres", reports[4+i], reports[i])
		}
	}
}

func mapsEqual(a, b map[string]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}

// expect computes the report of q from the test's event list.
func (s *sim) expect(q kpi.Query) kpi.Report {
	r := kpi.Report{From: q.From, AsOf: q.To, By: string(q.By), WithinDays: q.WithinDays}
	keyOf := func(e *ev) string {
		switch q.By {
		case kpi.ByPriority:
			return e.prio
		case kpi.ByTeam:
			return s.team[e.host]
		}
		return kpi.All
	}
	in := func(t time.Time) bool { return t.After(q.From) && !t.After(q.To) }
	groups := map[string]*kpi.Figures{}
	fig := func(k string) *kpi.Figures {
		if groups[k] == nil {
			groups[k] = &kpi.Figures{Group: k}
		}
		return groups[k]
	}
	type samples struct{ rel, seen, age []time.Duration }
	smp := map[string]*samples{}
	assets := map[string]map[string]bool{}
	within := map[string][2]int{}
	reopen := map[string][2]int{}
	// Intervals closed before the period less N days count only for
	// being due in it (docs/kpis.md).
	after := q.From.Add(-time.Duration(q.WithinDays) * day)
	for _, e := range s.ivs {
		if e.opened.After(q.To) || !e.closed.IsZero() && !e.closed.After(after) && !(e.due.After(after) && !e.due.After(q.To)) {
			continue
		}
		for _, k := range []string{"total", keyOf(e)} {
			if k == kpi.All && q.By == kpi.ByNone {
				continue
			}
			f := fig(k)
			if smp[k] == nil {
				smp[k] = &samples{}
				assets[k] = map[string]bool{}
			}
			sm := smp[k]
			closed := !e.closed.IsZero() && !e.closed.After(q.To)
			rel, hasFix := s.released[e.vuln]
			if hasFix && (rel.After(q.To) || !s.seen[e.vuln]) {
				rel = e.opened // not seen by then: the fix is taken as out when first seen
			}
			if e.fixed == "" {
				hasFix = false
			}
			if closed && in(e.closed) && e.reason == kpi.Remediated {
				sm.seen = append(sm.seen, e.closed.Sub(e.opened))
				if hasFix {
					sm.rel = append(sm.rel, max(0, e.closed.Sub(rel)))
				}
				w := reopen[k]
				w[1]++
				for _, n := range s.ivs {
					if n.prev == e && !n.opened.After(q.To) && !n.opened.After(e.closed.Add(30*day)) {
						w[0]++
					}
				}
				reopen[k] = w
			}
			if closed && in(e.closed) && e.reason == kpi.Accepted {
				f.Accepted++
			}
			if !closed {
				age := q.To.Sub(e.opened)
				sm.age = append(sm.age, age)
				f.Open.Count++
				assets[k][e.host] = true
				if e.due.Before(q.To) {
					f.Open.Overdue++
				}
				switch d := int(age / day); {
				case d <= 7:
					f.Open.Buckets.D0to7++
				case d <= 30:
					f.Open.Buckets.D8to30++
				case d <= 90:
					f.Open.Buckets.D31to90++
				case d <= 180:
					f.Open.Buckets.D91to180++
				default:
					f.Open.Buckets.Over180++
				}
			}
			if in(e.due) {
				f.SLA.Due++
				doneByDue := !e.closed.IsZero() && !e.closed.After(e.due)
				if doneByDue && e.reason != kpi.Remediated {
					f.SLA.Excluded++
				} else if doneByDue {
					f.SLA.OnTime++
				}
			}
			if hasFix {
				n := time.Duration(q.WithinDays) * day
				if q.WithinDays == 0 {
					n = e.due.Sub(e.opened)
				}
				dl := rel.Add(n)
				if n < 0 {
					dl = time.Time{} // a reopen past its due date: no deadline after the release
				}
				doneBy := !e.closed.IsZero() && !e.closed.After(dl)
				if in(dl) && !(doneBy && e.reason != kpi.Remediated) {
					w := within[k]
					w[1]++
					if doneBy {
						w[0]++
					}
					within[k] = w
				}
			}
		}
	}
	// Jobs, uptime, coverage: of hosts.
	hostKey := func(h string) string {
		if q.By == kpi.ByTeam {
			return s.team[h]
		}
		return ""
	}
	jobs := map[string]*kpi.Jobs{}
	for _, j := range s.jobs {
		if !in(j.settle) {
			continue
		}
		for _, k := range []string{"total", hostKey(j.host)} {
			if k == "" {
				continue
			}
			if jobs[k] == nil {
				jobs[k] = &kpi.Jobs{}
			}
			c := jobs[k]
			c.Checks += j.checks
			c.ChecksPassed += j.checks - j.failed
			switch j.outcome {
			case job.Succeeded:
				c.Succeeded++
			case job.SucceededReboot:
				c.Succeeded++
				c.Rebooted++
			case job.NoChange:
				c.Succeeded++
				c.NoChange++
			case job.Failed:
				c.Failed++
			case job.RolledBack:
				c.RolledBack++
			case job.TimedOut:
				c.TimedOut++
			case job.NoAgent:
				c.NoAgent++
			case job.Skipped:
				c.Skipped++
			}
		}
	}
	ups := map[string]*kpi.Uptime{}
	covers := map[string]*kpi.Cover{}
	for _, h := range s.hosts {
		var window, down, pdown time.Duration
		window = q.To.Sub(q.From)
		// Down: consecutive check-ins (as known at q.To) further apart
		// than stale, cut to the period.
		var cis []time.Time
		for _, c := range s.checkins[h] {
			if !c.After(q.To) {
				cis = append(cis, c)
			}
		}
		cis = append(cis, q.To)
		var last time.Time
		for i := 1; i < len(cis); i++ {
			a, b := cis[i-1], cis[i]
			last = a
			if b.Sub(a) < stale {
				continue
			}
			a, b = later(a, q.From), earlier(b, q.To)
			if !b.After(a) {
				continue
			}
			down += b.Sub(a)
			for _, j := range s.jobs {
				if j.host == h && !j.started.IsZero() && in(j.settle) {
					js, je := later(a, j.started), earlier(b, j.settle)
					if je.After(js) {
						pdown += je.Sub(js)
					}
				}
			}
		}
		if cis[len(cis)-2].Equal(q.To) {
			last = q.To
		}
		reporting := q.To.Sub(last) < stale
		for _, k := range []string{"total", hostKey(h)} {
			if k == "" {
				continue
			}
			if ups[k] == nil {
				ups[k], covers[k] = &kpi.Uptime{}, &kpi.Cover{}
			}
			u, c := ups[k], covers[k]
			u.Hosts++
			u.Window += window.Hours()
			u.Down += down.Hours()
			u.PatchDown += pdown.Hours()
			c.Hosts++
			if reporting {
				c.Reporting++
			}
		}
	}
	finish := func(k string) kpi.Figures {
		f := *fig(k)
		if sm := smp[k]; sm != nil {
			f.MTTP, f.MTTPSeen, f.Open.Age = summary(sm.rel), summary(sm.seen), summary(sm.age)
			if len(sm.age) > 0 {
				f.Open.MaxAge = float64(slices.Max(sm.age)) / float64(day)
			}
		}
		f.Open.Assets = len(assets[k])
		w := within[k]
		f.Within = kpi.Ratio{Num: w[0], Den: w[1]}
		if w[1] > 0 {
			f.Within.Rate = float64(w[0]) / float64(w[1])
		}
		ro := reopen[k]
		f.Reopen = kpi.Ratio{Num: ro[0], Den: ro[1]}
		if ro[1] > 0 {
			f.Reopen.Rate = float64(ro[0]) / float64(ro[1])
		}
		if d := f.SLA.Due - f.SLA.Excluded; d > 0 {
			f.SLA.Rate = float64(f.SLA.OnTime) / float64(d)
		}
		if j := jobs[k]; j != nil {
			j.Completed = j.Succeeded + j.Failed + j.RolledBack + j.TimedOut
			if j.Checks > 0 {
				j.Health = float64(j.ChecksPassed) / float64(j.Checks)
			}
			if j.Completed > 0 {
				c := float64(j.Completed)
				j.Success, j.FailRate, j.BackRate, j.TimeRate = float64(j.Succeeded)/c, float64(j.Failed)/c, float64(j.RolledBack)/c, float64(j.TimedOut)/c
			}
			f.Jobs = j
		} else if k == "total" {
			f.Jobs = &kpi.Jobs{}
		}
		if u := ups[k]; u != nil {
			u.Availability = 1 - u.Down/u.Window
			f.Uptime = u
			c := covers[k]
			c.Rate = float64(c.Reporting) / float64(c.Hosts)
			f.Coverage = c
		}
		return f
	}
	r.Total = finish("total")
	r.Total.Group = kpi.All
	if q.By != kpi.ByNone {
		for _, k := range sortedKeys(groups) {
			if k != "total" {
				r.Groups = append(r.Groups, finish(k))
			}
		}
	}
	return r
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func earlier(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func summary(ds []time.Duration) kpi.Durations {
	if len(ds) == 0 {
		return kpi.Durations{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	var total time.Duration
	for _, d := range s {
		total += d
	}
	rank := func(p float64) float64 {
		return float64(s[int(math.Ceil(p*float64(len(s))))-1]) / float64(day)
	}
	return kpi.Durations{N: len(s), Mean: float64(total) / float64(len(s)) / float64(day), Median: rank(0.5), P90: rank(0.9)}
}

// compare reports every figure that differs (floats to 1e-9).
func compare(t *testing.T, what string, got, want kpi.Report) {
	t.Helper()
	if !got.From.Equal(want.From) || !got.AsOf.Equal(want.AsOf) || got.By != want.By {
		t.Errorf("%s: period %s..%s by %q, want %s..%s by %q", what, got.From, got.AsOf, got.By, want.From, want.AsOf, want.By)
	}
	gs, ws := append([]kpi.Figures{got.Total}, got.Groups...), append([]kpi.Figures{want.Total}, want.Groups...)
	if len(gs) != len(ws) {
		t.Errorf("%s: %d groups, want %d", what, len(gs), len(ws))
		return
	}
	for i := range gs {
		for _, d := range diff(gs[i], ws[i]) {
			t.Errorf("%s, group %s: %s", what, ws[i].Group, d)
		}
	}
	if got.Total.SLA.Due == 0 || got.Total.MTTP.N == 0 {
		t.Errorf("%s: nothing measured (due %d, remediated %d): the simulation proves nothing", what, got.Total.SLA.Due, got.Total.MTTP.N)
	}
}

func diff(g, w kpi.Figures) []string {
	var out []string
	f := func(name string, a, b float64) {
		if math.Abs(a-b) > 1e-9 {
			out = append(out, fmt.Sprintf("%s = %v, want %v", name, a, b))
		}
	}
	i := func(name string, a, b int) {
		if a != b {
			out = append(out, fmt.Sprintf("%s = %d, want %d", name, a, b))
		}
	}
	if g.Group != w.Group {
		out = append(out, fmt.Sprintf("group %q, want %q", g.Group, w.Group))
	}
	for _, d := range []struct {
		n    string
		a, b kpi.Durations
	}{{"mttp", g.MTTP, w.MTTP}, {"mttp_seen", g.MTTPSeen, w.MTTPSeen}, {"open age", g.Open.Age, w.Open.Age}} {
		i(d.n+" n", d.a.N, d.b.N)
		f(d.n+" mean", d.a.Mean, d.b.Mean)
		f(d.n+" median", d.a.Median, d.b.Median)
		f(d.n+" p90", d.a.P90, d.b.P90)
	}
	i("open", g.Open.Count, w.Open.Count)
	i("open assets", g.Open.Assets, w.Open.Assets)
	i("overdue", g.Open.Overdue, w.Open.Overdue)
	f("max age", g.Open.MaxAge, w.Open.MaxAge)
	if g.Open.Buckets != w.Open.Buckets {
		out = append(out, fmt.Sprintf("age buckets %+v, want %+v", g.Open.Buckets, w.Open.Buckets))
	}
	if g.Within != w.Within {
		out = append(out, fmt.Sprintf("patched within %+v, want %+v", g.Within, w.Within))
	}
	if g.SLA != w.SLA {
		out = append(out, fmt.Sprintf("sla %+v, want %+v", g.SLA, w.SLA))
	}
	if g.Reopen != w.Reopen {
		out = append(out, fmt.Sprintf("reopen %+v, want %+v", g.Reopen, w.Reopen))
	}
	i("accepted", g.Accepted, w.Accepted)
	if (g.Jobs == nil) != (w.Jobs == nil) || g.Jobs != nil && *g.Jobs != *w.Jobs {
		out = append(out, fmt.Sprintf("jobs %+v, want %+v", g.Jobs, w.Jobs))
	}
	if (g.Uptime == nil) != (w.Uptime == nil) {
		out = append(out, fmt.Sprintf("uptime %+v, want %+v", g.Uptime, w.Uptime))
	} else if g.Uptime != nil {
		i("uptime hosts", g.Uptime.Hosts, w.Uptime.Hosts)
		f("window", g.Uptime.Window, w.Uptime.Window)
		f("down", g.Uptime.Down, w.Uptime.Down)
		f("patch down", g.Uptime.PatchDown, w.Uptime.PatchDown)
		f("availability", g.Uptime.Availability, w.Uptime.Availability)
	}
	if (g.Coverage == nil) != (w.Coverage == nil) || g.Coverage != nil && *g.Coverage != *w.Coverage {
		out = append(out, fmt.Sprintf("coverage %+v, want %+v", g.Coverage, w.Coverage))
	}
	return out
}
