package server_test

import (
	"context"
	"testing"
	"time"

	"github.com/patchbay/patchbay/api"
	"github.com/patchbay/patchbay/api/policyapi"
	"github.com/patchbay/patchbay/auth"
	"github.com/patchbay/patchbay/inventory"
	"github.com/patchbay/patchbay/scorecard"
	"github.com/patchbay/patchbay/server"
)

func TestHostScoresSQLite(t *testing.T)   { t.Parallel(); testHostScores(t, "sqlite") }
func TestHostScoresPostgres(t *testing.T) { t.Parallel(); testHostScores(t, "postgres") }

const hostScorecards = `apiVersion: patchbay/v1
kind: Scorecard
metadata: {name: host-hygiene}
spec:
  entity: host
  levels: [{name: bronze}, {name: silver}]
  rules:
    - {name: no-kev, level: bronze, expr: kev == 0, weight: 2, message: patch KEV}
    - {name: reboot, level: silver, expr: '!pending_reboot', message: reboot}
    - {name: reporting, level: silver, expr: '!not_reporting', message: fix the agent}
---
apiVersion: patchbay/v1
kind: Scorecard
metadata: {name: group-hygiene}
spec:
  entity: hostGroup
  levels: [{name: bronze}]
  rules:
    - {name: reboots, level: bronze, expr: pending_reboots == 0, message: reboot}
    - {name: reporting, level: bronze, expr: not_reporting_share < 0.5, message: fix the agents}
---
apiVersion: patchbay/v1
kind: HostGroup
metadata: {name: web-hosts}
spec: {selector: role=web}
`

// testHostScores: hosts and host groups are scored with the services, a
// check-in that says a reboot is pending is an event that moves the
// host's and its group's scores, and the history is read by host and by
// group.
func testHostScores(t *testing.T, backend string) {
	ctx := context.Background()
	clk := &clock{t: time.Date(2027, 1, 5, 9, 0, 0, 0, time.UTC)}
	f := newFixture(t, backend, func(c *server.Config) { c.Now = clk.Now })
	admin, viewer := f.api(auth.Admin), f.api(auth.Viewer)
	f.apply(admin, policyapi.ApplyRequest{Files: []policyapi.PolicyFile{{Name: "hosts.yaml", Content: hostScorecards}}})
	facts := factsOf("web-1", "m-web-1")
	facts.Labels = map[string]string{"role": "web"}
	e := f.enroll(f.token(auth.KindEnrollment, auth.Agent, -1, time.Time{}), facts)
	if code, b := f.do("POST", api.Prefix+"/agent/checkin", e.Credential, report(facts, []inventory.Package{}, true)); code != 200 {
		t.Fatalf("first check-in: %d %s", code, b)
	}
	if _, err := f.srv.ScoreNow(ctx); err != nil {
		t.Fatal(err)
	}
	clk.Set(clk.Now().Add(time.Minute))
	facts.RebootRequired = true
	if code, b := f.do("POST", api.Prefix+"/agent/checkin", e.Credential, report(facts, []inventory.Package{}, false)); code != 200 {
		t.Fatalf("check-in: %d %s", code, b)
	}
	if n, err := f.db.Scores.Marked(ctx); err != nil || n == 0 {
		t.Fatalf("the check-in left no mark: %d %v", n, err)
	}
	if o, err := f.srv.ScoreNow(ctx); err != nil || o.Changed != 2 {
		t.Errorf("after the check-in: %+v %v", o, err)
	}
	history := func(q string) []scorecard.Record {
		t.Helper()
		code, b := f.do("GET", api.Prefix+"/scores/history?"+q, viewer, nil)
		if code != 200 {
			t.Fatalf("history %s: %d %s", q, code, b)
		}
		var h []scorecard.Record
		f.decode(b, &h)
		return h
	}
	// Weights 2, 1, 1: silver 100, then bronze 75 (3/4).
	h := history("host=web-1")
	if len(h) != 2 || h[0].Entity != "host/web-1" || h[0].Level != "silver" || h[0].Score != 100 || h[1].Level != "bronze" || h[1].Score != 75 {
		t.Errorf("host history: %+v", h)
	}
	// The group's one host needs a reboot: no level, 50.
	g := history("host_group=web-hosts")
	if len(g) != 2 || g[0].Level != "bronze" || g[1].Level != "" || g[1].Score != 50 {
		t.Errorf("group history: %+v", g)
	}
	if code, _ := f.do("GET", api.Prefix+"/scores/history?host_group=nope", viewer, nil); code != 404 {
		t.Errorf("unknown group: %d", code)
	}
	if code, _ := f.do("GET", api.Prefix+"/scores/history?host=web-1&service=x", viewer, nil); code != 400 {
		t.Errorf("two entities: %d", code)
	}
}
