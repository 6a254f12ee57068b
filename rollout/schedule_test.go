package rollout

import (
	"strings"
	"testing"
	"time"

	"github.com/patchbay/patchbay/duration"
	"github.com/patchbay/patchbay/fleet"
	"github.com/patchbay/patchbay/patch"
	"github.com/patchbay/patchbay/policy"
)

const scheduleYAML = `apiVersion: patchbay/v1
kind: PatchSchedule
metadata:
  name: nightly-security
spec:
  selector: {types: [security, bugfix], cycles: [system]}
  exclude: {packages: ["linux-image-*"], hostGroups: [pci]}
  strategy: standard
  windows: [staging-daily, prod-monthly]
  minAge: {security: 0d, bugfix: 7d, feature: 30d}
  kevBypassesMinAge: true
  emergency: true
`

func TestScheduleDocument(t *testing.T) {
	docs, err := allKinds.Parse("s.yaml", []byte(scheduleYAML))
	if err != nil {
		t.Fatal(err)
	}
	s := docs[0].Spec.(*ScheduleSpec)
	if s.Strategy != "standard" || len(s.Windows) != 2 || time.Duration(s.MinAge["bugfix"]) != 7*24*time.Hour || !s.KEVBypassesMinAge || !s.Emergency || s.Exclude.Packages[0] != "linux-image-*" {
		t.Errorf("decoded: %+v", s)
	}
	var refs []string
	for _, r := range s.References() {
		refs = append(refs, r.Kind+"/"+r.Name+"@"+r.Path)
	}
	if got := strings.Join(refs, " "); got != "RolloutStrategy/standard@spec.strategy MaintenanceWindow/staging-daily@spec.windows[0] MaintenanceWindow/prod-monthly@spec.windows[1] HostGroup/pci@spec.exclude.hostGroups[0]" {
		t.Errorf("references: %s", got)
	}
	// Strict: an unknown field and bad values, each at its line.
	bad := "apiVersion: patchbay/v1\nkind: PatchSchedule\nmetadata: {name: x}\nspec:\n  strategy: standard\n  selector: {types: [urgent]}\n  exclude: {packages: [\"[\"]}\n  windows: [a, a]\n  minAge: {chores: 1d, bugfix: 400d}\n  kevBypass: true\n"
	_, err = allKinds.Parse("f.yaml", []byte(bad))
	var got []string
	for _, e := range policy.AsErrors(err) {
		got = append(got, e.Error())
	}
	if len(got) != 1 || !strings.HasPrefix(got[0], "f.yaml:10:3: spec.kevBypass: unknown field (want one of") {
		t.Errorf("unknown field: %v", got)
	}
	// Values are checked once the document decodes.
	bad = strings.Replace(bad, "  kevBypass: true\n", "", 1)
	_, err = allKinds.Parse("f.yaml", []byte(bad))
	got = got[:0]
	for _, e := range policy.AsErrors(err) {
		got = append(got, e.Error())
	}
	for _, want := range []string{
		`f.yaml:6:22: spec.selector.types[0]: "urgent": want one of`,
		`f.yaml:7:24: spec.exclude.packages[0]: "[": not a glob pattern`,
		`f.yaml:8:16: spec.windows[1]: "a": given twice`,
		`f.yaml:9:20: spec.minAge.chores: "chores": want one of`,
		`f.yaml:9:32: spec.minAge.bugfix: 400d: want 0d to 365d`,
	} {
		if !strings.Contains(strings.Join(got, "\n"), want) {
			t.Errorf("want %q in\n  %s", want, strings.Join(got, "\n  "))
		}
	}
}

func TestScheduleOpenings(t *testing.T) {
	p := testPolicy(t)
	s := &ScheduleSpec{Strategy: "standard", Windows: []string{"staging-daily"}}
	now := time.Date(2026, 11, 24, 8, 30, 0, 0, time.UTC) // 09:30 Paris: staging-daily is open
	os := s.Openings(p, now, 5)
	if len(os) != 5 || os[0].Key() != "staging-daily@2026-11-24T08:00:00Z" || os[4].Key() != "staging-daily@2026-11-28T08:00:00Z" {
		t.Errorf("openings: %+v", os)
	}
	if d := s.Due(p, now); len(d) != 1 || d[0] != os[0] {
		t.Errorf("due: %+v", d)
	}
	if d := s.Due(p, now.Add(5*time.Hour)); len(d) != 0 {
		t.Errorf("due after the window: %+v", d)
	}
	// Each host's own windows: both, merged in order.
	s.Windows = nil
	os = s.Openings(p, now, 5)
	if len(os) != 5 || os[0].Window != "staging-daily" {
		t.Errorf("own windows: %+v", os)
	}
	for i := 1; i < len(os); i++ {
		if os[i].Start.Before(os[i-1].Start) {
			t.Errorf("out of order: %+v", os)
		}
	}
}

// TestAutopilotPlan: what an opening plans and why the rest is left out.
func TestAutopilotPlan(t *testing.T) {
	now := time.Date(2026, 11, 24, 8, 30, 0, 0, time.UTC)
	released := func(name, version string) time.Time {
		if name == "curl" || name == "tzdata" {
			return now.Add(-time.Hour) // fresh
		}
		return now.Add(-10 * 24 * time.Hour)
	}
	stg := func(id string) HostInput {
		return HostInput{ID: id, Hostname: id, Groups: []string{"staging"}, Released: released,
			Updates: []patch.Update{up("libssl3", "openssl", "3.0.15-1~deb12u1", "3.0.17-1~deb12u2", patch.Security),
				up("curl", "curl", "7.88.1-10+deb12u8", "7.88.1-10+deb12u12", patch.BugFix),
				up("tzdata", "tzdata", "2024a-0+deb12u1", "2025b-0+deb12u1", patch.BugFix),
				up("linux-image-amd64", "linux-signed-amd64", "6.1.1", "6.1.2", patch.Security)},
			Open: []fleet.Finding{finding(1, "openssl", "CVE-2026-1", "P2", "3.0.16-1~deb12u1"), finding(2, "curl", "CVE-2026-9", "P1", "7.88.1-10+deb12u12")}}
	}
	kev := stg("stg-kev")
	kev.Open[1].KEVDue = now.Add(14 * 24 * time.Hour)
	held := stg("stg-held")
	held.Updates = []patch.Update{held.Updates[0]}
	held.Updates[0].Held = true
	prod := stg("prod-1")
	prod.Groups = []string{"production"}
	hosts := []HostInput{stg("stg-1"), stg("stg-2"), stg("stg-3"), stg("stg-4"), kev, held, prod}
	spec := &ScheduleSpec{Strategy: "standard", Windows: []string{"staging-daily"},
		Selector: Selector{Types: []patch.Type{patch.Security, patch.BugFix}},
		Exclude:  Exclusions{Packages: []string{"linux-image-*"}, Hosts: []string{"stg-4"}},
		MinAge:   map[string]duration.Duration{"bugfix": duration.Duration(7 * 24 * time.Hour)}, KEVBypassesMinAge: true}
	a := &Autopilot{Name: "nightly", Spec: spec, Policy: testPolicy(t), Now: now, Hosts: hosts,
		Active:   func(h string) bool { return h != "stg-3" },
		Targeted: map[string]map[string]bool{"stg-2": {"libssl3 3.0.17-1~deb12u2": true}},
		Halted:   map[string]bool{}}
	o := spec.Due(a.Policy, now)[0]
	p, pv, err := a.Plan("plan-a", &o)
	if err != nil || p == nil {
		t.Fatal(err)
	}
	targets := map[string][]string{}
	for _, h := range p.Hosts {
		for _, tg := range h.Targets {
			targets[h.ID] = append(targets[h.ID], tg.Name)
		}
		if h.Window != "staging-daily" || !h.WindowStart.Equal(o.Start) {
			t.Errorf("%s runs in %s %s, want this opening", h.ID, h.Window, h.WindowStart)
		}
	}
	// stg-1: libssl3 (curl and tzdata wait for the bugfix gate, the kernel
	// is excluded); stg-2: nothing new (libssl3 is targeted by a running
	// rollout; the rest as stg-1); stg-kev: curl too, bypassing the gate.
	if strings.Join(targets["stg-1"], ",") != "libssl3" || len(targets["stg-2"]) != 0 || strings.Join(targets["stg-kev"], ",") != "libssl3,curl" || len(p.Hosts) != 2 {
		t.Errorf("targets: %v", targets)
	}
	want := map[string]int{LeftExcludedHost: 1, LeftNoAgent: 1, LeftRunning: 1, LeftAgeGate: 2 + 2 + 1, LeftExcludedPackage: 3, LeftHeld: 1}
	for k, v := range want {
		if pv.LeftOut[k] != v {
			t.Errorf("left out %s: %d, want %d (%v)", k, pv.LeftOut[k], v, pv.LeftOut)
		}
	}
	if len(pv.Bypassed) != 1 || pv.Bypassed[0] != (AgeBypass{Host: "stg-kev", Package: "curl", Version: "7.88.1-10+deb12u12", Vulnerability: "CVE-2026-9"}) {
		t.Errorf("bypassed: %+v", pv.Bypassed)
	}
	if p.Schedule != "nightly" || p.Opening != o.Key() || pv.Hosts != 2 || pv.Packages != 3 || pv.Closes["P2"] != 2 || pv.Closes["P1"] != 1 {
		t.Errorf("plan %s %s, preview %+v", p.Schedule, p.Opening, pv)
	}
	// An update a rollout installed, still reported as before (the agent
	// has not reported since), is not planned again.
	a.Patched = map[string]map[string]bool{"stg-1": {"libssl3 3.0.15-1~deb12u1 3.0.17-1~deb12u2": true}}
	if p, pv, err := a.Plan("plan-p", &o); err != nil || len(p.Hosts) != 1 || pv.LeftOut[LeftUnreported] != 1 {
		t.Errorf("patched, not reported: %v %+v %+v", err, p, pv)
	}
	a.Patched = nil
	// A halted rollout of the schedule holds its hosts back; the rest go on.
	a.Halted = map[string]bool{"stg-1": true}
	p, pv, err = a.Plan("plan-b", &o)
	if err != nil || len(p.Hosts) != 1 || p.Hosts[0].ID != "stg-kev" || pv.LeftOut[LeftHalted] != 1 {
		t.Errorf("halted: %v %+v %+v", err, p, pv)
	}
	// Nothing left: no plan, and the reasons.
	a.Halted = map[string]bool{"stg-1": true, "stg-kev": true}
	p, pv, err = a.Plan("plan-c", &o)
	if err != nil || p != nil || pv.LeftOut[LeftHalted] != 2 {
		t.Errorf("empty: %v %+v %+v", err, p, pv)
	}
	// The emergency lane: only emergency findings, outside windows.
	a.Halted = nil
	kev.Open[1].Lane = fleet.LaneEmergency
	a.Hosts = []HostInput{stg("stg-1"), kev}
	p, _, err = a.Plan("plan-e", nil)
	if err != nil || len(p.Hosts) != 1 || p.Hosts[0].ID != "stg-kev" || !p.Emergency || p.Hosts[0].Window != "" || p.Opening != "" {
		t.Fatalf("emergency: %v %+v", err, p)
	}
	if k := EmergencyKey(p); !strings.HasPrefix(k, "emergency:") || k != EmergencyKey(p) {
		t.Errorf("emergency key %s", k)
	}
}
