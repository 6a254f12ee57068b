package web_test

import (
	"context"
	"html"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/patchbay/patchbay/api/policyapi"
	"github.com/patchbay/patchbay/api/rolloutapi"
	"github.com/patchbay/patchbay/patch"
	"github.com/patchbay/patchbay/rollout"
)

const gatedStrategy = `apiVersion: patchbay/v1
kind: RolloutStrategy
metadata: {name: gated}
spec:
  rings:
    - {name: staging, hostGroup: staging, maxConcurrency: 2, errorThreshold: 0, bake: 10m}
    - {name: prod, hostGroup: production, maxConcurrency: 2, errorThreshold: 0}
  reboot: never
  promote: automatic
  rollbackOnHalt: true
  gates:
    prometheus:
      - {name: error-rate, query: 'app_error_ratio{host="{{ .Host }}"}', condition: "< 0.05", phases: [bake]}
    alerts:
      - {name: paging, matchers: ['host="{{ .Host }}"'], onUnreachable: pass}
`

// TestGatesOnPages: the plan page shows the gates' state, the halt a gate
// caused (here Prometheus is not configured: the bake gate fails closed)
// and the hosts put back; the plan's and the host's timelines show the
// job, the gate, the halt and the alert Alertmanager sent, linked to the
// job. PATCHBAY_SCREENSHOT_DIR keeps the pages (with their assets) to
// look at in a browser.
func TestGatesOnPages(t *testing.T) {
	f := newFixture(t, nil)
	f.apiDo("POST", "/policy/apply", policyapi.ApplyRequest{Files: []policyapi.PolicyFile{{Name: "gated.yaml", Content: gatedStrategy}}}, nil)
	var st rolloutapi.PlanStatus
	f.apiDo("POST", "/plans", rollout.PlanSpec{Description: "gated", Strategy: "gated", Selector: rollout.Selector{Types: []patch.Type{patch.Security}}}, &st)
	p := st.Plan
	for _, tok := range []string{f.token("operator"), f.token("operator")} {
		f.apiAs(tok, "POST", "/plans/"+p.ID+"/approve", nil, nil)
	}
	f.apiDo("POST", "/plans/"+p.ID+"/start", nil, nil)
	ctx := context.Background()
	f.step(ctx) // the alert gate passes while Alertmanager is unreachable: stg-1 starts
	f.step(ctx) // stg-1 reports; the ring bakes
	f.step(ctx) // the bake gate fails closed: halted, stg-1 reverted
	if r := f.planStatus(p.ID).Rollout; r.State != rollout.Halted || !strings.Contains(r.Why, "no --prometheus-url configured") {
		t.Fatalf("rollout %s: %s", r.State, r.Why)
	}
	// Alertmanager's delivery: a page on stg-1 after its job.
	stg := f.hosts[0]
	at := f.clock.now()
	var got rolloutapi.AlertsReceived
	f.apiAs(f.token("operator"), "POST", "/alerts", rolloutapi.AlertmanagerPayload{Version: "4", Status: "firing", Receiver: "patchbay",
		Alerts: []rolloutapi.AlertmanagerAlert{{Status: "firing", Labels: map[string]string{"alertname": "HighErrorRate", "host": stg.name, "severity": "page"}, StartsAt: at, Fingerprint: "f1"}}}, &got)
	if got.Linked != 1 {
		t.Fatalf("alerts received: %+v", got)
	}
	alice := f.person("alice")
	alice.login(password)
	_, _, page := alice.get("/plans/" + p.ID)
	page = html.UnescapeString(page)
	for _, want := range []string{`id="gates"`, "error-rate", "prometheus: unreachable: no --prometheus-url configured", "passed while unreachable (onUnreachable: pass)",
		"Halted by gate <strong>error-rate</strong> (prometheus, bake): want < 0.05", "Put back at their previous versions: stg-1", `id="timeline"`, `data-kind="job.started"`, `data-kind="gate"`, `data-kind="halt"`, `data-kind="alert"`,
		"alert HighErrorRate firing"} {
		if !strings.Contains(page, want) {
			t.Errorf("plan page lacks %q", want)
		}
	}
	_, _, hpage := alice.get("/hosts/" + stg.id)
	hpage = html.UnescapeString(hpage)
	for _, want := range []string{`id="timeline"`, `data-kind="checkin"`, `data-kind="job.started"`, "alert HighErrorRate firing, 0s after the job of " + p.ID} {
		if !strings.Contains(hpage, want) {
			t.Errorf("host page lacks %q", want)
		}
	}
	if dir := os.Getenv("PATCHBAY_SCREENSHOT_DIR"); dir != "" {
		for name, body := range map[string]string{"plan.html": page, "host.html": hpage} {
			body = strings.ReplaceAll(body, `"/static/`, `"static/`)
			if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
}
