package scorecard_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/patchbay/patchbay/fleet"
	"github.com/patchbay/patchbay/kpi"
	"github.com/patchbay/patchbay/policy"
	"github.com/patchbay/patchbay/scorecard"
)

var kinds = policy.NewKinds(policy.OwnKinds(), scorecard.Kinds())

func setOf(t testing.TB, yaml string) *policy.Set {
	t.Helper()
	docs, err := kinds.Parse("catalog.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	set, err := policy.NewSet(docs)
	if err != nil {
		t.Fatal(err)
	}
	return set
}

const card = `apiVersion: patchbay/v1
kind: Scorecard
metadata: {name: hygiene}
spec:
  levels: [{name: bronze}, {name: silver}, {name: gold}]
  rules:
    - {name: no-kev, level: bronze, expr: kev == 0, weight: 3, patch: true, message: patch KEV}
    - {name: no-overdue-p1, level: bronze, expr: overdue_p1 == 0, weight: 2, patch: true, message: patch P1}
    - {name: p2-fresh, level: silver, expr: oldest_p2_days <= 30, weight: 2, patch: true, message: patch old P2}
    - {name: reboots, level: silver, expr: pending_reboots == 0, message: reboot}
    - {name: kernel, level: gold, expr: kernel_behind == 0, message: reboot into the new kernel}
    - {name: eol, level: gold, expr: os_eol == 0, message: upgrade the OS}
    - {name: coverage, level: gold, expr: '"coverage" in custom && double(custom["coverage"]) >= 80.0', message: push coverage}
`

// TestRulesTypeCheckedWithPositions: a rule that does not compile, or is
// not a bool, is refused at apply with the file:line:column of its expr.
func TestRulesTypeCheckedWithPositions(t *testing.T) {
	t.Parallel()
	doc := `apiVersion: patchbay/v1
kind: Scorecard
metadata: {name: bad}
spec:
  levels:
    - name: bronze
  rules:
    - name: ok
      level: bronze
      expr: kev == 0 && custom["x"] == 1
      message: fine
    - name: not-bool
      level: bronze
      expr: open_p1 + 1
      message: m
    - name: typo
      level: silver
      expr: open_p9 > 0
      message: m
    - name: mixed
      level: bronze
      expr: team > 3
      message: m
  exemptions:
    - {rule: nope, service: s, reason: r, approver: a, expires: 2027-01-01}
`
	_, err := kinds.Parse("bad.yaml", []byte(doc))
	if err == nil {
		t.Fatal("bad rules accepted")
	}
	msg := err.Error()
	for _, want := range []string{
		`bad.yaml:14:13: spec.rules[1].expr: CEL: "open_p1 + 1" is of type int: want a bool`,
		`bad.yaml:17:14: spec.rules[2].level: no level "silver": want one of bronze`,
		`bad.yaml:18:13: spec.rules[2].expr: CEL: ERROR: <input>:1:1: undeclared reference to 'open_p9'`,
		`bad.yaml:22:13: spec.rules[3].expr: CEL: ERROR: <input>:1:6: found no matching overload for '_>_' applied to '(string, int)'`,
		`bad.yaml:25:14: spec.exemptions[0].rule: no rule "nope" in this scorecard`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("missing %q in\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "rules[0]") {
		t.Errorf("the good rule was refused:\n%s", msg)
	}
	ini := `apiVersion: patchbay/v1
kind: Initiative
metadata: {name: i}
spec: {scorecard: x, start: 2027-01-01, target: 2026-12-01, owners: [a], state: started}
`
	_, err = kinds.Parse("i.yaml", []byte(ini))
	for _, want := range []string{"i.yaml:4:7: spec.level: give a level or rules", `spec.state: "started": want draft or active`, "spec.target: 2026-12-01 is not after the start 2027-01-01"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("initiative: missing %q in %v", want, err)
		}
	}
}

const catalog = `apiVersion: patchbay/v1
kind: Team
metadata: {name: pay}
spec: {}
---
apiVersion: patchbay/v1
kind: Team
metadata: {name: ops}
spec: {}
---
apiVersion: patchbay/v1
kind: Service
metadata: {name: web}
spec: {owner: pay, tier: 1, exposure: internet, hosts: svc=web}
---
apiVersion: patchbay/v1
kind: Service
metadata: {name: db}
spec: {owner: pay, tier: 2, exposure: internal, hosts: svc=db}
---
apiVersion: patchbay/v1
kind: Service
metadata: {name: batch}
spec: {owner: ops, tier: 3, exposure: internal, hosts: svc=batch}
---
apiVersion: patchbay/v1
kind: Exception
metadata: {name: accept-web}
spec: {vulnerabilities: [CVE-2026-1], services: [web], justification: j, approvedBy: bob, expires: 2027-01-20}
---
`

var now = time.Date(2027, 1, 10, 12, 0, 0, 0, time.UTC)

// seeded is a small catalog: web's host has an overdue P1 and a KEV
// finding, db's a 40-day-old P2 and a pending reboot, batch's runs an old
// kernel on Debian 10 (past its end of life in 2022).
func seeded(t testing.TB, extra string) scorecard.Inputs {
	set := setOf(t, catalog+card+extra)
	host := func(id, svc, osv string, f func(*fleet.Facts)) fleet.HostSummary {
		h := fleet.HostSummary{Host: fleet.Host{ID: id, MachineID: "m-" + id, Hostname: id, Labels: map[string]string{"svc": svc}, LastSeen: now.Add(-time.Minute),
			Facts: fleet.Facts{OSID: "debian", OSVersion: osv, KernelRunning: "6.1.0-1", KernelNewest: "6.1.0-1"}}}
		if f != nil {
			f(&h.Facts)
		}
		return h
	}
	hosts := []fleet.HostSummary{
		host("w1", "web", "13", nil),
		host("d1", "db", "13", func(f *fleet.Facts) { f.RebootRequired = true }),
		host("b1", "batch", "10", func(f *fleet.Facts) { f.KernelNewest = "6.1.0-2" }),
	}
	day := 24 * time.Hour
	open := []kpi.Interval{
		{Asset: "w1", Vulnerability: "CVE-2026-1", Package: "openssl", Priority: "P1", Opened: now.Add(-20 * day), Due: now.Add(-6 * day)},
		{Asset: "w1", Vulnerability: "CVE-2026-2", Package: "curl", Priority: "P3", Opened: now.Add(-2 * day), Due: now.Add(20 * day)},
		{Asset: "d1", Vulnerability: "CVE-2026-3", Package: "libpq", Priority: "P2", Opened: now.Add(-40 * day), Due: now.Add(20 * day)},
	}
	return scorecard.Inputs{Set: set, Hosts: hosts, Assets: kpi.AssetsOf(hosts, set), Open: open, KEV: map[string]bool{"CVE-2026-1": true},
		Stale: 15 * time.Minute, Now: now, KPI: map[string]kpi.Figures{"web": {SLA: kpi.SLA{Due: 4, OnTime: 3, Rate: 0.75}}}}
}

// memStore is a Store in memory, for the package's tests and benchmark.
type memStore struct {
	recs    []scorecard.Record
	custom  map[string]map[string]scorecard.CustomFact
	notices map[string]scorecard.Notice
	order   []string
}

func newMem() *memStore {
	return &memStore{custom: map[string]map[string]scorecard.CustomFact{}, notices: map[string]scorecard.Notice{}}
}

func (m *memStore) Latest(context.Context) ([]scorecard.Record, error) {
	last := map[[2]string]scorecard.Record{}
	for _, r := range m.recs {
		last[[2]string{r.Scorecard, r.Entity}] = r
	}
	var out []scorecard.Record
	for _, r := range last {
		out = append(out, r)
	}
	return out, nil
}
func (m *memStore) Append(_ context.Context, recs []scorecard.Record) error {
	m.recs = append(m.recs, recs...)
	return nil
}
func (m *memStore) History(_ context.Context, card, entity string, since time.Time) ([]scorecard.Record, error) {
	var out []scorecard.Record
	for _, r := range m.recs {
		if (card == "" || r.Scorecard == card) && (entity == "" || r.Entity == entity) && !r.At.Before(since) {
			out = append(out, r)
		}
	}
	return out, nil
}
func (m *memStore) CustomFacts(context.Context) (map[string]map[string]scorecard.CustomFact, error) {
	return m.custom, nil
}
func (m *memStore) Notify(_ context.Context, n scorecard.Notice, _ []string, _ time.Time) (bool, error) {
	if _, ok := m.notices[n.Key]; ok {
		return false, nil
	}
	m.notices[n.Key] = n
	m.order = append(m.order, n.Key)
	return true, nil
}

func byEntity(rs []scorecard.Result) map[string]scorecard.Result {
	out := map[string]scorecard.Result{}
	for _, r := range rs {
		out[r.Entity] = r
	}
	return out
}

// TestSeededCatalog: the facts, levels and scores of a seeded catalog
// equal the values computed by hand.
func TestSeededCatalog(t *testing.T) {
	t.Parallel()
	in := seeded(t, "")
	facts := scorecard.FactsOf(in)
	for svc, want := range map[string]map[string]any{
		"web":   {"hosts": int64(1), "open": int64(2), "open_p1": int64(1), "overdue_p1": int64(1), "overdue": int64(1), "kev": int64(1), "oldest_p1_days": int64(20), "exceptions": int64(1), "exception_expiry_days": int64(10), "sla_compliance": 0.75, "tier": int64(1), "team": "pay"},
		"db":    {"open_p2": int64(1), "oldest_p2_days": int64(40), "pending_reboots": int64(1), "kev": int64(0), "exceptions": int64(0), "exception_expiry_days": int64(-1), "sla_compliance": 1.0},
		"batch": {"kernel_behind": int64(1), "os_eol": int64(1), "open": int64(0), "agents_not_reporting": int64(0), "inventory_age_days": int64(-1), "patch_success_rate": 1.0},
	} {
		for k, v := range want {
			if got := facts[svc].Values[k]; got != v {
				t.Errorf("%s.%s = %#v, want %#v", svc, k, got, v)
			}
		}
	}
	cards, err := scorecard.Scorecards(in.Set)
	if err != nil || len(cards) != 1 {
		t.Fatal(cards, err)
	}
	res := byEntity(scorecard.EvaluateAll(cards[0], in))
	// Weights 3, 2, 2, 1, 1, 1, 1 (11). web fails no-kev, no-overdue-p1
	// and coverage: no level, 5/11; db fails p2-fresh, reboots, coverage:
	// bronze, 7/11; batch fails kernel, eol, coverage: silver, 8/11.
	for svc, want := range map[string]struct {
		level string
		score float64
		fail  []string
	}{
		"web":   {"", 45.5, []string{"no-kev", "no-overdue-p1", "coverage"}},
		"db":    {"bronze", 63.6, []string{"p2-fresh", "reboots", "coverage"}},
		"batch": {"silver", 72.7, []string{"kernel", "eol", "coverage"}},
	} {
		r := res[svc]
		var fail []string
		for _, f := range r.Failing() {
			fail = append(fail, f.Rule)
		}
		if r.Level != want.level || r.Score != want.score || !slices.Equal(fail, want.fail) {
			t.Errorf("%s: %q %v %v, want %q %v %v", svc, r.Level, r.Score, fail, want.level, want.score, want.fail)
		}
	}
	if m := res["web"].Failing()[0].Message; m != "patch KEV" {
		t.Errorf("failure message: %q", m)
	}
	ru := scorecard.Rollups(cards[0].Spec, in.Set, scorecard.EvaluateAll(cards[0], in))
	if len(ru) != 2 || ru[1].Team != "pay" || ru[1].Average != 54.6 || ru[1].Worst != 45.5 || ru[1].WorstLevel != "" || ru[0].Team != "ops" || ru[0].Average != 72.7 {
		t.Errorf("roll-ups: %+v", ru)
	}
}

// TestPushedFactRule: a rule on a pushed fact fails until the fact is
// pushed (with an error saying why), then follows its value.
func TestPushedFactRule(t *testing.T) {
	t.Parallel()
	in := seeded(t, "")
	st := newMem()
	ctx := context.Background()
	if _, err := scorecard.Score(ctx, st, in, nil); err != nil {
		t.Fatal(err)
	}
	latest, _ := st.Latest(ctx)
	batch := byEntity(resultsOf(latest))["batch"]
	if c := batch.Rules[6]; c.Rule != "coverage" || c.Pass {
		t.Fatalf("coverage before a push: %+v", c)
	}
	st.custom["batch"] = map[string]scorecard.CustomFact{"coverage": {Service: "batch", Name: "coverage", Value: "85", At: now}}
	in.Now = now.Add(time.Minute)
	o, err := scorecard.Score(ctx, st, in, nil)
	if err != nil || o.Changed != 1 {
		t.Fatalf("after the push: %+v %v", o, err)
	}
	latest, _ = st.Latest(ctx)
	if r := byEntity(resultsOf(latest))["batch"]; !r.Rules[6].Pass || r.Score != 81.8 {
		t.Errorf("batch after the push: %+v", r)
	}
	st.custom["batch"]["coverage"] = scorecard.CustomFact{Value: "not a number"}
	in.Now = now.Add(2 * time.Minute)
	scorecard.Score(ctx, st, in, nil)
	latest, _ = st.Latest(ctx)
	if r := byEntity(resultsOf(latest))["batch"].Rules[6]; r.Pass || r.Error == "" {
		t.Errorf("a fact of the wrong type: %+v", r)
	}
	for in, want := range map[string]any{"12": int64(12), "1.5": 1.5, "true": true, "True": "True", "main": "main"} {
		if got := scorecard.ParseValue(in); got != want {
			t.Errorf("ParseValue(%q) = %#v, want %#v", in, got, want)
		}
	}
}

func resultsOf(recs []scorecard.Record) []scorecard.Result {
	var out []scorecard.Result
	for _, r := range recs {
		out = append(out, r.Result)
	}
	return out
}

// TestExemptionExpires: an exemption lets a rule fail until its expiry
// date's end, and the scoring says when to look again.
func TestExemptionExpires(t *testing.T) {
	t.Parallel()
	in := seeded(t, "")
	docs, _ := kinds.Parse("c.yaml", []byte(catalog+strings.Replace(card, "  rules:", "  exemptions:\n    - {rule: no-kev, service: web, reason: vendor patch due, approver: carol, expires: 2027-01-12}\n  rules:", 1)))
	set, err := policy.NewSet(docs)
	if err != nil {
		t.Fatal(err)
	}
	in.Set = set
	st := newMem()
	o, err := scorecard.Score(context.Background(), st, in, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2027, 1, 13, 0, 0, 0, 0, time.UTC); !o.NextWake.Equal(want) {
		t.Errorf("next wake %v, want %v", o.NextWake, want)
	}
	web := byEntity(resultsOf(st.recs))["web"]
	if web.Rules[0].Exempt != "vendor patch due" || web.Score != 62.5 { // 5/8: no-kev left out
		t.Errorf("web exempted: %+v", web)
	}
	in.Now = o.NextWake
	o, _ = scorecard.Score(context.Background(), st, in, nil)
	h, _ := st.History(context.Background(), "hygiene", "web", time.Time{})
	if o.Changed != 1 || len(h) != 2 || h[1].Rules[0].Exempt != "" || h[1].Score != 45.5 {
		t.Errorf("after the expiry: %+v %+v", o, h)
	}
	if n := st.notices["exemption/hygiene/no-kev/web/2027-01-12"]; n.Event != "scorecard.exemption_expired" || len(st.order) != 1 {
		t.Errorf("expiry notice: %+v %v", n, st.order)
	}
	scorecard.Score(context.Background(), st, in, nil)
	if len(st.order) != 1 {
		t.Errorf("the expiry noticed twice: %v", st.order)
	}
}

const initiative = `---
apiVersion: patchbay/v1
kind: Initiative
metadata: {name: q1}
spec:
  scorecard: hygiene
  level: bronze
  services: tier in (1,2)
  start: 2027-01-01
  target: 2027-03-31
  owners: [alice]
  state: active
  remindDays: [14, 3]
`

// TestInitiativeBurnupAndReminders walks a quarter on an injectable
// clock: progress and action items with the patch plan, the burn-up by
// day, reminders once per team and reminder, done when all pass.
func TestInitiativeBurnupAndReminders(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	in := seeded(t, initiative)
	in.Now = time.Date(2027, 1, 3, 12, 0, 0, 0, time.UTC)
	st := newMem()
	score := func(at time.Time) {
		t.Helper()
		in.Now = at
		if _, err := scorecard.Score(ctx, st, in, []string{"chat"}); err != nil {
			t.Fatal(err)
		}
	}
	score(in.Now)
	cards, _ := scorecard.Scorecards(in.Set)
	sp := scorecard.Initiatives(in.Set)["q1"]
	latest, _ := st.Latest(ctx)
	p := scorecard.Progress("q1", sp, cards[0].Spec, in.Set, resultsOf(latest), in.Now)
	// web (tier 1) has no level; db (tier 2) is bronze; batch (tier 3)
	// is not selected.
	if p.State != "active" || p.Entities != 2 || p.Passing != 1 || len(p.Teams) != 1 || p.Teams[0].Team != "pay" || len(p.Items) != 1 {
		t.Fatalf("progress: %+v", p)
	}
	it := p.Items[0]
	if it.Service != "web" || len(it.Failing) != 1 || it.Failing[0].Rule != "no-kev" /* the P1 is due tomorrow */ || it.Plan != "patchbay plan create --strategy STRATEGY --service web" {
		t.Errorf("action item: %+v", it)
	}
	// Jan 20: web's P1 and KEV finding are patched.
	in.Open = in.Open[1:]
	score(time.Date(2027, 1, 20, 8, 0, 0, 0, time.UTC))
	// Mar 10: db drops below bronze (a new overdue P1): pay is behind
	// again, reminded 14 days (Mar 18) and 3 days (Mar 29) before the
	// target, once each; fixed on Mar 30, done at the target.
	in.Open = append(in.Open, kpi.Interval{Asset: "d1", Vulnerability: "CVE-2027-9", Priority: "P1", Opened: time.Date(2027, 3, 1, 0, 0, 0, 0, time.UTC), Due: time.Date(2027, 3, 8, 0, 0, 0, 0, time.UTC)})
	score(time.Date(2027, 3, 10, 8, 0, 0, 0, time.UTC))
	if slices.ContainsFunc(st.order, func(k string) bool { return strings.Contains(k, "remind") }) {
		t.Errorf("a reminder before its day: %v", st.order)
	}
	score(time.Date(2027, 3, 18, 0, 0, 0, 0, time.UTC))
	score(time.Date(2027, 3, 18, 6, 0, 0, 0, time.UTC))
	score(time.Date(2027, 3, 29, 6, 0, 0, 0, time.UTC))
	in.Open = in.Open[:len(in.Open)-1]
	score(time.Date(2027, 3, 30, 6, 0, 0, 0, time.UTC))
	score(time.Date(2027, 4, 2, 6, 0, 0, 0, time.UTC))
	want := []string{"initiative/q1/started", "drop/hygiene/db/" + fmt.Sprint(time.Date(2027, 3, 10, 8, 0, 0, 0, time.UTC).UnixNano()),
		"initiative/q1/remind/14/pay", "initiative/q1/remind/3/pay", "initiative/q1/done"}
	// (all passed on Jan 20 too, but an initiative is done or missed at
	// its target date)
	if !slices.Equal(st.order, want) {
		t.Errorf("notices:\n%v\nwant\n%v", st.order, want)
	}
	if n := st.notices["initiative/q1/remind/14/pay"]; n.Event != "initiative.reminder" || n.Payload.(map[string]any)["passing"] != 1 {
		t.Errorf("reminder: %+v", n)
	}
	b := scorecard.Burnup(sp, cards[0].Spec, in.Set, st.recs, time.Date(2027, 4, 2, 6, 0, 0, 0, time.UTC))
	// One point a day, Jan 1 to Mar 31 (the target): 1 passing from Jan
	// 3, 2 from Jan 20, 1 from Mar 10, 2 from Mar 30.
	if len(b) != 90 || b[0].Day != "2027-01-01" || b[89].Day != "2027-03-31" {
		t.Fatalf("burn-up: %d points, %+v … %+v", len(b), b[0], b[len(b)-1])
	}
	for day, want := range map[string]int{"2027-01-01": 0, "2027-01-03": 1, "2027-01-19": 1, "2027-01-20": 2, "2027-03-09": 2, "2027-03-10": 1, "2027-03-29": 1, "2027-03-30": 2, "2027-03-31": 2} {
		i := slices.IndexFunc(b, func(p scorecard.BurnPoint) bool { return p.Day == day })
		if i < 0 || b[i].Passing != want || b[i].Total != 2 {
			t.Errorf("burn-up %s: %+v, want %d", day, b[i], want)
		}
	}
}

func TestEndOfLife(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		id, v, want string
	}{{"debian", "10", "2022-09-10"}, {"rhel", "8.9", "2029-05-31"}, {"alpine", "3.18.4", "2025-05-09"}, {"ubuntu", "24.04", "2029-05-31"}, {"debian", "99", ""}} {
		got := scorecard.EndOfLife(c.id, c.v)
		if (c.want == "" && !got.IsZero()) || (c.want != "" && got.Format(time.DateOnly) != c.want) {
			t.Errorf("%s %s: %v, want %s", c.id, c.v, got, c.want)
		}
	}
}
