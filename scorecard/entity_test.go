package scorecard_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/patchbay/patchbay/kpi"
	"github.com/patchbay/patchbay/scorecard"
)

const hostCard = `---
apiVersion: patchbay/v1
kind: Scorecard
metadata: {name: host-hygiene}
spec:
  entity: host
  levels: [{name: bronze}, {name: silver}, {name: gold}]
  rules:
    - {name: no-kev, level: bronze, expr: kev == 0, weight: 3, patch: true, message: patch KEV}
    - {name: no-overdue, level: bronze, expr: overdue_p1 + overdue_p2 == 0, weight: 2, patch: true, message: patch P1 and P2}
    - {name: p2-fresh, level: silver, expr: oldest_p2_days <= 30, message: patch old P2}
    - {name: reboot, level: silver, expr: '!pending_reboot', message: reboot}
    - {name: kernel, level: gold, expr: '!kernel_behind', message: reboot into the new kernel}
    - {name: eol, level: gold, expr: '!os_eol', message: upgrade the OS}
    - {name: reporting, level: gold, expr: '!not_reporting', message: fix the agent}
  exemptions:
    - {rule: eol, host: b9, reason: replaced in March, approver: bob, expires: 2027-03-01}
---
apiVersion: patchbay/v1
kind: Scorecard
metadata: {name: group-hygiene}
spec:
  entity: hostGroup
  levels: [{name: bronze}, {name: silver}]
  rules:
    - {name: no-kev, level: bronze, expr: kev == 0, weight: 2, message: patch KEV}
    - {name: reporting, level: silver, expr: not_reporting_share <= 0.25, message: fix the agents}
    - {name: reboots, level: silver, expr: pending_reboots == 0, message: reboot}
---
apiVersion: patchbay/v1
kind: HostGroup
metadata: {name: prod}
spec: {selector: env=prod}
---
apiVersion: patchbay/v1
kind: HostGroup
metadata: {name: legacy}
spec: {selector: svc=batch}
`

// seededHosts is the seeded catalog with host and host group scorecards:
// w1, d1 and a not-reporting s1 (a db host seen an hour ago) are in
// prod, b1 in legacy.
func seededHosts(t *testing.T) scorecard.Inputs {
	in := seeded(t, hostCard)
	s1 := in.Hosts[1]
	s1.ID, s1.MachineID, s1.Hostname, s1.LastSeen = "s1", "m-s1", "s1", now.Add(-time.Hour)
	s1.Facts.RebootRequired = false
	in.Hosts = append(in.Hosts, s1)
	for i := range in.Hosts {
		if in.Hosts[i].Labels["svc"] != "batch" {
			in.Hosts[i].Labels = map[string]string{"svc": in.Hosts[i].Labels["svc"], "env": "prod"}
		}
	}
	in.Assets = kpi.AssetsOf(in.Hosts, in.Set)
	return in
}

// TestHostAndGroupScores: the facts, levels and scores of seeded hosts and
// host groups equal the values computed by hand.
func TestHostAndGroupScores(t *testing.T) {
	t.Parallel()
	in := seededHosts(t)
	cards, err := scorecard.Scorecards(in.Set)
	if err != nil || len(cards) != 3 {
		t.Fatal(cards, err)
	}
	hosts := byEntity(scorecard.EvaluateAll(cardOf(t, cards, "host-hygiene"), in))
	groups := byEntity(scorecard.EvaluateAll(cardOf(t, cards, "group-hygiene"), in))
	// Host weights 3, 2, 1, 1, 1, 1, 1 (10). w1: KEV and an overdue P1:
	// no level, 5/10; d1: a 40-day P2 and a reboot: bronze, 8/10; b1: old
	// kernel, Debian 10: silver, 8/10; s1: not reporting: silver, 9/10.
	for h, want := range map[string]struct {
		level string
		score float64
		fail  string
	}{
		"host/w1": {"", 50, "no-kev no-overdue"},
		"host/d1": {"bronze", 80, "p2-fresh reboot"},
		"host/b1": {"silver", 80, "kernel eol"},
		"host/s1": {"silver", 90, "reporting"},
	} {
		r, ok := hosts[h]
		if !ok {
			t.Fatalf("no result for %s in %v", h, hosts)
		}
		if r.Level != want.level || r.Score != want.score || failing(r) != want.fail {
			t.Errorf("%s: level %q score %v failing %q, want %q %v %q", h, r.Level, r.Score, failing(r), want.level, want.score, want.fail)
		}
	}
	if len(hosts) != 4 {
		t.Errorf("hosts scored: %v", hosts)
	}
	// Group weights 2, 1, 1 (4). prod (w1, d1, s1): a KEV, 1/3 not
	// reporting, a reboot: no level, 0; legacy (b1): silver, 100.
	if r := groups["hostGroup/prod"]; r.Level != "" || r.Score != 0 || failing(r) != "no-kev reporting reboots" {
		t.Errorf("prod: %+v", r)
	}
	if r := groups["hostGroup/legacy"]; r.Level != "silver" || r.Score != 100 {
		t.Errorf("legacy: %+v", r)
	}
}

// TestHostFacts: the facts a host and a host group rules read.
func TestHostFacts(t *testing.T) {
	t.Parallel()
	in := seededHosts(t)
	for _, tc := range []struct {
		card, entity string
		want         map[string]any
	}{
		{"host", "host/w1", map[string]any{"open": int64(2), "open_p1": int64(1), "open_p3": int64(1), "overdue_p1": int64(1), "kev": int64(1), "oldest_p1_days": int64(20),
			"exceptions": int64(1), "team": "pay", "hostname": "w1", "not_reporting": false, "pending_reboot": false}},
		{"host", "host/d1", map[string]any{"oldest_p2_days": int64(40), "pending_reboot": true, "kernel_behind": false, "exceptions": int64(0)}},
		{"host", "host/b1", map[string]any{"kernel_behind": true, "os_eol": true, "team": "ops", "open": int64(0)}},
		{"host", "host/s1", map[string]any{"not_reporting": true}},
		{"hostGroup", "hostGroup/prod", map[string]any{"hosts": int64(3), "open": int64(3), "kev": int64(1), "agents_not_reporting": int64(1), "not_reporting_share": 1.0 / 3,
			"pending_reboots": int64(1), "oldest_p2_days": int64(40), "exceptions": int64(1), "os_eol": int64(0)}},
		{"hostGroup", "hostGroup/legacy", map[string]any{"hosts": int64(1), "kernel_behind": int64(1), "os_eol": int64(1), "not_reporting_share": 0.0}},
	} {
		facts := scorecard.EntityFacts(tc.card, in)
		for k, v := range tc.want {
			if got := facts[tc.entity].Values[k]; got != v {
				t.Errorf("%s.%s = %#v, want %#v", tc.entity, k, got, v)
			}
		}
	}
}

// TestHostRulesTypeChecked: a host rule reading a service's fact, or
// using a host's bool fact as a number, is refused at apply with its
// position; so are an unknown entity and an exemption naming a service.
func TestHostRulesTypeChecked(t *testing.T) {
	t.Parallel()
	doc := `apiVersion: patchbay/v1
kind: Scorecard
metadata: {name: bad}
spec:
  entity: host
  levels: [{name: bronze}]
  rules:
    - {name: ok, level: bronze, expr: '!pending_reboot && kev == 0', message: m}
    - name: service-fact
      level: bronze
      expr: pending_reboots == 0
      message: m
    - name: bool-as-int
      level: bronze
      expr: kernel_behind > 0
      message: m
  exemptions:
    - {rule: ok, service: web, reason: r, approver: a, expires: 2027-01-01}
---
apiVersion: patchbay/v1
kind: Scorecard
metadata: {name: team}
spec:
  entity: team
  levels: [{name: bronze}]
  rules: [{name: ok, level: bronze, expr: 'true', message: m}]
`
	_, err := kinds.Parse("bad.yaml", []byte(doc))
	if err == nil {
		t.Fatal("bad host rules accepted")
	}
	msg := err.Error()
	for _, want := range []string{
		`bad.yaml:11:13: spec.rules[1].expr: CEL: ERROR: <input>:1:1: undeclared reference to 'pending_reboots'`,
		`bad.yaml:15:13: spec.rules[2].expr: CEL: ERROR: <input>:1:15: found no matching overload for '_>_' applied to '(bool, int)'`,
		`bad.yaml:18:7: spec.exemptions[0].host: missing: this scorecard scores hosts, so an exemption names a host`,
		`spec.exemptions[0].service: this scorecard scores hosts: name the host instead`,
		`bad.yaml:24:11: spec.entity: "team": want one of service, host, hostGroup`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("missing %q in\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "rules[0]") {
		t.Errorf("the good rule was refused:\n%s", msg)
	}
}

// TestHostScoreMovesOnEvent: a reboot (the next check-in's facts) moves
// d1's score and leaves history; a host that starts needing a reboot
// drops a level and its team is told.
func TestHostScoreMovesOnEvent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	in := seededHosts(t)
	st := newMem()
	if _, err := scorecard.Score(ctx, st, in, nil); err != nil {
		t.Fatal(err)
	}
	in.Now = in.Now.Add(time.Minute)
	for i := range in.Hosts {
		switch in.Hosts[i].ID {
		case "d1":
			in.Hosts[i].Facts.RebootRequired = false
		case "b1":
			in.Hosts[i].Facts.RebootRequired = true
		}
		in.Hosts[i].LastSeen = in.Hosts[i].LastSeen.Add(time.Minute)
	}
	o, err := scorecard.Score(ctx, st, in, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Hosts d1 and b1 change, groups prod (no reboot now) and legacy
	// (one now), and services db and batch.
	if o.Changed != 6 {
		t.Errorf("changed %d, want 6", o.Changed)
	}
	h, _ := st.History(ctx, "host-hygiene", "host/d1", time.Time{})
	if len(h) != 2 || h[0].Score != 80 || h[1].Score != 90 || h[1].Level != "bronze" || !h[1].At.Equal(in.Now) {
		t.Errorf("d1 history: %+v", h)
	}
	var drop *scorecard.Notice
	for _, k := range st.order {
		if n := st.notices[k]; n.Event == "scorecard.level_dropped" && n.Subject == "host-hygiene" {
			drop = &n
		}
	}
	if drop == nil || drop.Team != "ops" || drop.Payload.(map[string]any)["entity"] != "host/b1" {
		t.Errorf("level drop notice: %+v", drop)
	}
}

func failing(r scorecard.Result) string {
	var out []string
	for _, rr := range r.Failing() {
		out = append(out, rr.Rule)
	}
	return strings.Join(out, " ")
}

func cardOf(t *testing.T, cards []*scorecard.Compiled, name string) *scorecard.Compiled {
	t.Helper()
	for _, c := range cards {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no scorecard %s", name)
	return nil
}
