package rollout

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/patchbay/patchbay/duration"
	"github.com/patchbay/patchbay/fleet"
	"github.com/patchbay/patchbay/job"
	"github.com/patchbay/patchbay/patch"
	"github.com/patchbay/patchbay/policy"
	"github.com/patchbay/patchbay/risk"
)

func mustWindow(t *testing.T, name, sched string, groups ...string) NamedWindow {
	t.Helper()
	w, err := NewWindow(name, &WindowSpec{Schedule: sched, Duration: duration.Duration(4 * time.Hour), TimeZone: "Europe/Paris", HostGroups: groups})
	if err != nil {
		t.Fatal(err)
	}
	return NamedWindow{w, groups}
}

func up(name, src, from, to string, types ...patch.Type) patch.Update {
	return patch.Update{Ecosystem: "Debian:12", Name: name, SourceName: src, Installed: from, Candidate: to, Pocket: "security", Types: types, Cycle: "system", CVEs: []string{}}
}

func finding(id int64, pkg, vuln, prio, fixed string) fleet.Finding {
	p, err := risk.ParsePriority(prio)
	if err != nil {
		panic(err)
	}
	return fleet.Finding{ID: id, Ecosystem: "Debian:12", Package: pkg, Vulnerability: vuln, Priority: p, Fixed: fixed, State: "open", Cycle: "system"}
}

func testPolicy(t *testing.T) *Policy {
	return &Policy{
		Strategies: map[string]*StrategySpec{"standard": {
			Rings: []Ring{
				{Name: "staging", HostGroup: "staging", MaxConcurrency: Amount{N: 1}, ErrorThreshold: Amount{}},
				{Name: "prod", HostGroup: "production", MaxConcurrency: Amount{N: 10, Percent: true}, ErrorThreshold: Amount{N: 1}},
			},
			Reboot: job.RebootIfRequired, Promote: PromoteAutomatic, JobTimeout: duration.Duration(30 * time.Minute)}},
		Rules: []NamedRule{
			{"security-nonprod", &ApprovalRuleSpec{Types: []patch.Type{patch.Security}, Cycles: []patch.Cycle{"system"}, MinAge: duration.Duration(72 * time.Hour), HostGroups: []string{"staging"}, Exclude: []string{"linux-image-*"}, Approve: ApproveAutomatic}},
			{"production", &ApprovalRuleSpec{HostGroups: []string{"production"}, Approve: ApproveManual, Approvers: 2}},
		},
		Windows: []NamedWindow{mustWindow(t, "prod-monthly", "0 22 * * TUE#2", "production"), mustWindow(t, "staging-daily", "0 9 * * *", "staging")},
	}
}

// TestResolve: exact candidate versions per host, the findings each
// update closes, the selector's filters, rings and the hosts' windows,
// approvals decided by the strictest matching rule.
func TestResolve(t *testing.T) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC) // Tuesday 24th: the second Tuesday was the 10th
	old := now.Add(-5 * 24 * time.Hour)
	released := func(name, version string) time.Time {
		if name == "curl" {
			return now.Add(-time.Hour) // too fresh for the automatic rule
		}
		return old
	}
	stg := HostInput{ID: "h-stg", Hostname: "stg-1", Groups: []string{"staging"}, Released: released,
		Updates: []patch.Update{up("libssl3", "openssl", "3.0.15-1~deb12u1", "3.0.17-1~deb12u2", patch.Security), up("openssl", "openssl", "3.0.15-1~deb12u1", "3.0.17-1~deb12u2", patch.Security),
			up("tzdata", "tzdata", "2024a-0+deb12u1", "2025b-0+deb12u1", patch.Regulatory)},
		Open: []fleet.Finding{finding(1, "openssl", "CVE-2026-1", "P2", "3.0.16-1~deb12u1"), finding(2, "openssl", "CVE-2026-2", "P4", "3.0.18-1~deb12u1")}}
	prod := HostInput{ID: "h-prod", Hostname: "prod-1", Groups: []string{"production"}, Released: released,
		Updates: []patch.Update{up("libssl3", "openssl", "3.0.15-1~deb12u1", "3.0.17-1~deb12u2", patch.Security), up("curl", "curl", "7.88.1-10+deb12u8", "7.88.1-10+deb12u12", patch.Security)},
		Open:    []fleet.Finding{finding(3, "openssl", "CVE-2026-1", "P2", "3.0.16-1~deb12u1"), finding(4, "curl", "CVE-2026-3", "P3", "")}}
	lone := HostInput{ID: "h-dev", Hostname: "dev-1", Groups: nil, Released: released}
	pl := &Planner{Policy: testPolicy(t), Now: now}

	p, err := pl.Resolve("plan-1", PlanSpec{Strategy: "standard", Selector: Selector{Types: []patch.Type{patch.Security}}}, []HostInput{stg, prod, lone})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Hosts) != 2 || p.Hosts[0].ID != "h-stg" || p.Hosts[0].Ring != 0 || p.Hosts[1].Ring != 1 {
		t.Fatalf("hosts: %+v", p.Hosts)
	}
	s := p.Hosts[0]
	if len(s.Targets) != 2 || s.Targets[0].To != "3.0.17-1~deb12u2" || s.Targets[0].Approval != "security-nonprod" || s.Targets[0].Approvers != 0 {
		t.Errorf("staging targets (tzdata is not a security update): %+v", s.Targets)
	}
	// The candidate fixes CVE-2026-1 (fixed in 3.0.16) but not CVE-2026-2
	// (fixed in 3.0.18).
	if len(s.Closes) != 1 || s.Closes[0].Vulnerability != "CVE-2026-1" {
		t.Errorf("staging closes %+v", s.Closes)
	}
	pr := p.Hosts[1]
	if len(pr.Targets) != 2 || pr.Targets[1].Name != "curl" || pr.Targets[1].Approval != "production" || pr.Targets[1].Approvers != 2 || len(pr.Closes) != 2 {
		t.Errorf("prod: %+v", pr)
	}
	if p.Required != 2 || p.State != AwaitingApproval {
		t.Errorf("approvals: required %d, state %s", p.Required, p.State)
	}
	// Windows: staging's next daily opening (09:00 Paris tomorrow), prod's
	// second Tuesday of December (the 8th, 22:00 Paris).
	paris, _ := time.LoadLocation("Europe/Paris")
	if s.Window != "staging-daily" || !s.WindowStart.Equal(time.Date(2026, 11, 25, 9, 0, 0, 0, paris)) {
		t.Errorf("staging window: %s %s", s.Window, s.WindowStart)
	}
	if pr.Window != "prod-monthly" || !pr.WindowStart.Equal(time.Date(2026, 12, 8, 22, 0, 0, 0, paris)) || !pr.WindowEnd.Equal(time.Date(2026, 12, 9, 2, 0, 0, 0, paris)) {
		t.Errorf("prod window: %s %s–%s", pr.Window, pr.WindowStart, pr.WindowEnd)
	}
	if p.Rings[0].Closes["P2"] != 1 || p.Rings[1].Closes["P2"] != 1 || p.Rings[1].Closes["P3"] != 1 || p.Rings[1].Packages != 2 || len(p.Rings[1].Windows) != 1 {
		t.Errorf("rings: %+v", p.Rings)
	}

	// Approvals: two distinct people.
	if err := p.Approve(Approval{By: "alice"}); err != nil || p.State != AwaitingApproval {
		t.Fatal(err, p.State)
	}
	if err := p.Approve(Approval{By: "alice"}); !errors.Is(err, ErrSameActor) {
		t.Errorf("same approver twice: %v", err)
	}
	if err := p.Approve(Approval{By: "bob"}); err != nil || p.State != Approved {
		t.Fatal(err, p.State)
	}
	if err := p.Approve(Approval{By: "carol"}); !errors.Is(err, ErrNotAwaiting) {
		t.Errorf("approval of an approved plan: %v", err)
	}

	// Only staging, only what closes a P2: approved on its own.
	p, err = pl.Resolve("plan-2", PlanSpec{Strategy: "standard", Selector: Selector{HostGroups: []string{"staging"}, Priorities: []risk.Priority{risk.P2}}}, []HostInput{stg, prod})
	if err != nil {
		t.Fatal(err)
	}
	if p.State != Approved || len(p.AutoRules) != 1 || p.AutoRules[0] != "security-nonprod" || len(p.Hosts) != 1 || len(p.Hosts[0].Targets) != 2 {
		t.Errorf("auto-approved plan: %+v", p)
	}
	// Hosts by hostname or id.
	p, err = pl.Resolve("plan-h", PlanSpec{Strategy: "standard", Selector: Selector{Hosts: []string{"prod-1"}}}, []HostInput{stg, prod, lone})
	if err != nil || len(p.Hosts) != 1 || p.Hosts[0].ID != "h-prod" {
		t.Errorf("by hostname: %v %+v", err, p)
	}
	if sel := (Selector{Hosts: []string{"h-stg"}, HostGroups: []string{"production"}}); sel.TakesHost(stg) || !(Selector{Hosts: []string{"h-stg"}}).TakesHost(stg) {
		t.Error("hosts and host groups both filter")
	}
	// Package patterns; a held package is left out and counted.
	held := prod
	held.Updates = append([]patch.Update(nil), prod.Updates...)
	held.Updates[1].Held = true
	p, err = pl.Resolve("plan-3", PlanSpec{Strategy: "standard", Selector: Selector{Packages: []string{"cur*"}}}, []HostInput{stg, held})
	if !errors.Is(err, ErrEmpty) {
		t.Errorf("only a held package: %v %+v", err, p)
	}
	// The emergency lane: only emergency findings; one approval; no window.
	prodE := prod
	prodE.Open = []fleet.Finding{finding(3, "openssl", "CVE-2026-1", "P1", "3.0.16-1~deb12u1"), finding(4, "curl", "CVE-2026-3", "P3", "")}
	prodE.Open[0].Lane = "emergency"
	p, err = pl.Resolve("plan-4", PlanSpec{Strategy: "standard", Emergency: true}, []HostInput{stg, prodE})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Hosts) != 1 || len(p.Hosts[0].Targets) != 1 || p.Hosts[0].Targets[0].Name != "libssl3" || p.Required != 1 || p.Hosts[0].Window != "" {
		t.Errorf("emergency plan: %+v %+v", p, p.Hosts)
	}
	if _, err := pl.Resolve("x", PlanSpec{Strategy: "fast"}, []HostInput{stg}); err == nil || !strings.Contains(err.Error(), `strategy "fast"`) {
		t.Errorf("unknown strategy: %v", err)
	}
}

func TestApprovalStrictestRuleWins(t *testing.T) {
	p := testPolicy(t)
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	c := Candidate{Package: "openssl", Cycle: "system", Types: []patch.Type{patch.Security}, ReleasedAt: now.Add(-96 * time.Hour), HostGroups: []string{"staging", "production"}}
	if r, n := p.Approval(c, now); r != "production" || n != 2 {
		t.Errorf("staging and production: %s %d", r, n)
	}
	c.HostGroups = []string{"staging"}
	if r, n := p.Approval(c, now); r != "security-nonprod" || n != 0 {
		t.Errorf("staging: %s %d", r, n)
	}
	c.Package = "linux-image-amd64"
	if r, n := p.Approval(c, now); r != DefaultRule || n != 1 {
		t.Errorf("excluded package: %s %d", r, n)
	}
}

func TestSelectorValidate(t *testing.T) {
	err := Selector{Cycles: []patch.Cycle{"kernel"}, Types: []patch.Type{"urgent"}, Packages: []string{"[a"}}.Validate()
	for _, want := range []string{`selector.cycles[0]: "kernel": want system or application`, `selector.types[0]: "urgent"`, `selector.packages[0]: "[a": not a glob pattern`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want %q in %v", want, err)
		}
	}
	docs, err := allKinds.Parse("plan.yaml", []byte("apiVersion: patchbay/v1\nkind: PatchPlan\nmetadata: {name: p}\nspec:\n  strategy: standard\n  selector:\n    cycles: [kernel]\n"))
	if es := policy.AsErrors(err); len(es) != 1 || es[0].Error() != `plan.yaml:7:14: spec.selector.cycles[0]: "kernel": want system or application` || docs != nil {
		t.Errorf("PatchPlan document: %v", err)
	}
}
