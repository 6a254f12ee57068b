package rollout

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/patchbay/patchbay/job"
	"github.com/patchbay/patchbay/patch"
	"github.com/patchbay/patchbay/policy"
	"github.com/patchbay/patchbay/risk"
)

const windowYAML = `apiVersion: patchbay/v1
kind: MaintenanceWindow
metadata:
  name: prod-monthly
spec:
  description: second Tuesday of the month, 22:00 Paris time, 4 hours
  schedule: "0 22 * * TUE#2"
  duration: 4h
  timeZone: Europe/Paris
  blackouts: [2026-12-08]
  hostGroups: [production]
`

func window(t *testing.T) *Window {
	t.Helper()
	docs, err := allKinds.Parse("w.yaml", []byte(windowYAML))
	if err != nil {
		t.Fatal(err)
	}
	w, err := NewWindow(docs[0].Metadata.Name, docs[0].Spec.(*WindowSpec))
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func TestWindowOpenings(t *testing.T) {
	w := window(t)
	paris, _ := time.LoadLocation("Europe/Paris")
	at := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	var got []string
	for range 6 {
		start, end, ok := w.Next(at)
		if !ok {
			t.Fatal("no next opening")
		}
		got = append(got, start.UTC().Format(time.RFC3339)+"–"+end.UTC().Format("15:04"))
		at = end
	}
	// Second Tuesdays at 22:00 Paris: CET (UTC+1) in winter, CEST (UTC+2)
	// from the last Sunday of March; 8 December is a blackout day.
	want := []string{
		"2026-11-10T21:00:00Z–01:00", "2027-01-12T21:00:00Z–01:00", "2027-02-09T21:00:00Z–01:00",
		"2027-03-09T21:00:00Z–01:00", "2027-04-13T20:00:00Z–00:00", "2027-05-11T20:00:00Z–00:00",
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("openings:\n got %v\nwant %v", got, want)
	}
	in := time.Date(2026, 11, 10, 23, 0, 0, 0, paris)
	for _, tc := range []struct {
		at   time.Time
		job  time.Duration
		want bool
	}{
		{in, 2 * time.Hour, true},                    // done at 01:00, the window closes at 02:00
		{in, 3 * time.Hour, true},                    // done as the window closes
		{in, 3*time.Hour + time.Minute, false},       // would outlast the window: not started
		{in.Add(-2 * time.Hour), time.Minute, false}, // 21:00: not open yet
		{time.Date(2026, 11, 10, 22, 0, 0, 0, paris), 4 * time.Hour, true},
		{time.Date(2026, 11, 11, 2, 0, 0, 0, paris), time.Minute, false},  // closed
		{time.Date(2026, 12, 8, 23, 0, 0, 0, paris), time.Minute, false},  // blackout
		{time.Date(2026, 11, 17, 23, 0, 0, 0, paris), time.Minute, false}, // third Tuesday
	} {
		if got := w.Allows(tc.at, tc.job); got != tc.want {
			t.Errorf("a %s job at %s: %v", tc.job, tc.at, got)
		}
	}
}

func TestApprovalRules(t *testing.T) {
	doc := `apiVersion: patchbay/v1
kind: ApprovalRule
metadata:
  name: security-nonprod
spec:
  description: security patches for system packages, 3 days after release, outside production
  cycles: [system]
  types: [security]
  minAge: 3d
  hostGroups: [staging]
  exclude: ["linux-image-*", openssl]
  approve: automatic
---
apiVersion: patchbay/v1
kind: ApprovalRule
metadata:
  name: prod
spec:
  hostGroups: [production]
  priorities: [P1, P2]
  approve: manual
  approvers: 2
`
	docs, err := allKinds.Parse("a.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	auto, prod := docs[0].Spec.(*ApprovalRuleSpec), docs[1].Spec.(*ApprovalRuleSpec)
	now := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	base := Candidate{Package: "curl", Cycle: "system", Types: []patch.Type{patch.Security}, Priority: risk.P3,
		ReleasedAt: now.Add(-4 * 24 * time.Hour), HostGroups: []string{"staging"}}
	for _, tc := range []struct {
		name string
		mod  func(c *Candidate)
		want bool
	}{
		{"matches", func(c *Candidate) {}, true},
		{"too fresh", func(c *Candidate) { c.ReleasedAt = now.Add(-2 * 24 * time.Hour) }, false},
		{"release date unknown", func(c *Candidate) { c.ReleasedAt = time.Time{} }, false},
		{"application cycle", func(c *Candidate) { c.Cycle = patch.CycleApplication }, false},
		{"bug fix only", func(c *Candidate) { c.Types = []patch.Type{patch.BugFix} }, false},
		{"security among others", func(c *Candidate) { c.Types = []patch.Type{patch.BugFix, patch.Security} }, true},
		{"production host", func(c *Candidate) { c.HostGroups = []string{"production"} }, false},
		{"excluded by pattern", func(c *Candidate) { c.Package = "linux-image-6.1.0-28-amd64" }, false},
		{"excluded by name", func(c *Candidate) { c.Package = "openssl" }, false},
	} {
		c := base
		tc.mod(&c)
		if got := auto.Matches(c, now); got != tc.want {
			t.Errorf("%s: %v", tc.name, got)
		}
	}
	if auto.RequiredApprovers() != 0 || prod.RequiredApprovers() != 2 {
		t.Errorf("approvers: %d, %d", auto.RequiredApprovers(), prod.RequiredApprovers())
	}
	c := base
	c.HostGroups, c.Priority = []string{"production"}, risk.P1
	if !prod.Matches(c, now) {
		t.Error("a P1 on production is not the prod rule's")
	}
}

func TestStrategySplit(t *testing.T) {
	doc := `apiVersion: patchbay/v1
kind: RolloutStrategy
metadata:
  name: staging-first
spec:
  rings:
    - {name: staging, hostGroup: staging, maxConcurrency: "100%", errorThreshold: "0", bake: 1h}
    - name: canary
      share: 10%
      maxConcurrency: 1
      errorThreshold: 0
      healthChecks:
        - {http: "http://127.0.0.1:8080/healthz", status: 200}
        - {systemd: nginx.service}
    - {name: prod, share: "100%", maxConcurrency: "25%", errorThreshold: "5%"}
  reboot: if-required
  promote: automatic
  jobTimeout: 30m
`
	docs, err := allKinds.Parse("s.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	s := docs[0].Spec.(*StrategySpec)
	if s.Reboot != job.RebootIfRequired || s.Promote != PromoteAutomatic {
		t.Errorf("reboot %q, promote %q", s.Reboot, s.Promote)
	}
	var target []string
	for i := range 22 {
		target = append(target, fmt.Sprintf("h%02d", i))
	}
	groups := func(h string) []string {
		if h == "h03" || h == "h07" {
			return []string{"staging"}
		}
		return []string{"production"}
	}
	rings := s.Split(target, groups)
	got := fmt.Sprint(len(rings[0]), len(rings[1]), len(rings[2]), rings[0], rings[1])
	if got != "2 2 18 [h03 h07] [h00 h01]" {
		t.Errorf("rings: %s", got)
	}
	if n := s.Rings[2].MaxConcurrency.Of(len(rings[2])); n != 5 {
		t.Errorf("25%% of 18 hosts at a time: %d, want 5 (rounded up)", n)
	}
	if n := s.Rings[2].ErrorThreshold.Of(len(rings[2])); n != 1 {
		t.Errorf("5%% of 18 errors: %d, want 1", n)
	}
}

func TestRolloutValidation(t *testing.T) {
	head := "apiVersion: patchbay/v1\nkind: %s\nmetadata:\n  name: x\nspec:\n"
	doc := func(kind, spec string) string { return fmt.Sprintf(head, kind) + spec }
	for _, tc := range []struct {
		name, yaml string
		want       []string
	}{
		{"window", doc("MaintenanceWindow", "  schedule: \"0 22 * * TUE#6\"\n  duration: 5m\n  timeZone: Mars/Olympus\n  hostGroups: []\n"), []string{
			`f.yaml:6:13: spec.schedule: "TUE#6": want one day and its occurrence 1 to 5 in the month (TUE#2)`,
			`f.yaml:7:13: spec.duration: 5m0s: want at least 15m`,
			`f.yaml:8:13: spec.timeZone: "Mars/Olympus": want an IANA time zone (Europe/Paris, UTC)`,
			`f.yaml:9:15: spec.hostGroups: empty: name the host groups the window covers`}},
		{"window cron", doc("MaintenanceWindow", "  schedule: \"0 25 * *\"\n  duration: 1h\n  timeZone: UTC\n  hostGroups: [a]\n"), []string{
			`f.yaml:6:13: spec.schedule: "0 25 * *": want five fields: minute hour day-of-month month day-of-week`}},
		{"approval", doc("ApprovalRule", "  cycles: [kernel]\n  types: [urgent]\n  priorities: [P5]\n  exclude: [\"[\"]\n  approve: auto\n"), []string{
			`f.yaml:8:16: spec.priorities[0]: priority "P5": want P1, P2, P3 or P4`}},
		{"approval values", doc("ApprovalRule", "  cycles: [kernel]\n  types: [urgent]\n  exclude: [\"[\"]\n  approve: automatic\n  approvers: 2\n"), []string{
			`f.yaml:6:12: spec.cycles[0]: "kernel": want system or application`,
			`f.yaml:7:11: spec.types[0]: "urgent": want one of security, bugfix, feature, compatibility, performance, regulatory, localization`,
			`f.yaml:8:13: spec.exclude[0]: "[": not a glob pattern`,
			`f.yaml:10:14: spec.approvers: 2: an automatic approval takes no approvers`}},
		{"strategy", doc("RolloutStrategy", "  rings:\n    - {name: a, hostGroup: g, share: 10%, maxConcurrency: 0, errorThreshold: 1}\n    - {name: a, share: 5, maxConcurrency: 110%, errorThreshold: 1,\n       healthChecks: [{tcp: nohost}, {http: ftp://x, systemd: y}]}\n  reboot: sometimes\n  promote: auto\n"), []string{
			`f.yaml:8:43: spec.rings[1].maxConcurrency: "110%": want a percentage up to 100%`}},
		{"strategy values", doc("RolloutStrategy", "  rings:\n    - {name: a, hostGroup: g, share: 10%, maxConcurrency: 0, errorThreshold: 1}\n    - {name: a, share: 5, maxConcurrency: 1, errorThreshold: 1,\n       healthChecks: [{tcp: nohost}, {http: ftp://x, systemd: y}]}\n  reboot: sometimes\n  promote: auto\n"), []string{
			`f.yaml:7:7: spec.rings[0]: both hostGroup and share: a ring is one or the other`,
			`f.yaml:7:59: spec.rings[0].maxConcurrency: 0: at least one host at a time`,
			`f.yaml:8:14: spec.rings[1].name: "a": given twice`,
			`f.yaml:8:24: spec.rings[1].share: 5: want a percentage of the target (25%)`,
			`f.yaml:9:29: spec.rings[1].healthChecks[0].tcp: "nohost": want host:port`,
			`f.yaml:9:38: spec.rings[1].healthChecks[1]: want exactly one of http, tcp, systemd, command`,
			`f.yaml:9:45: spec.rings[1].healthChecks[1].http: "ftp://x": want an http or https URL`,
			`f.yaml:10:11: spec.reboot: "sometimes": want never, if-required or always`,
			`f.yaml:11:12: spec.promote: "auto": want automatic or manual`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := allKinds.Parse("f.yaml", []byte(tc.yaml))
			var got []string
			for _, e := range policy.AsErrors(err) {
				got = append(got, e.Error())
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("got\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(tc.want, "\n  "))
			}
		})
	}
}

// TestReferencesToHostGroups: a window, rule or strategy naming a host
// group that does not exist fails the apply, pointing at the field.
func TestReferencesToHostGroups(t *testing.T) {
	docs, err := allKinds.Parse("w.yaml", []byte(windowYAML))
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = policy.Diff(nil, docs, nil)
	if err == nil || err.Error() != `w.yaml:11:16: spec.hostGroups[0]: no HostGroup named "production"` {
		t.Errorf("dangling host group: %v", err)
	}
	groups, err := allKinds.Parse("g.yaml", []byte("apiVersion: patchbay/v1\nkind: HostGroup\nmetadata:\n  name: production\nspec:\n  selector: env=prod\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := policy.Diff(nil, append(docs, groups...), nil); err != nil {
		t.Errorf("with the host group: %v", err)
	}
}

// allKinds parse the policy documents and this package's in its tests.
var allKinds = policy.NewKinds(policy.OwnKinds(), Kinds())

func TestPromotionValid(t *testing.T) {
	for p, want := range map[Promotion]bool{PromoteAutomatic: true, PromoteManual: true, "": false, "auto": false, "Manual": false} {
		if p.Valid() != want {
			t.Errorf("Promotion(%q).Valid() = %v, want %v", p, !want, want)
		}
	}
}
