package cli

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/patchbay/patchbay/api"
	"github.com/patchbay/patchbay/api/rolloutapi"
	"github.com/patchbay/patchbay/internal/table"
	"github.com/patchbay/patchbay/job"
	"github.com/patchbay/patchbay/rollout"
)

// runWidth runs the CLI as on a terminal width columns wide.
func runWidth(t *testing.T, dataDir string, width int, args ...string) (int, string, string) {
	t.Helper()
	var out, errb strings.Builder
	e := &env{stdout: &out, stderr: &errb, isTerminal: isTerminal, termWidth: func(io.Writer) int { return width }}
	code := e.run(context.Background(), append([]string{"--data-dir", dataDir}, args...))
	return code, out.String(), errb.String()
}

// rawGET is the body of a GET of the API of the server the environment
// names (PATCHBAY_SERVER, PATCHBAY_PIN, PATCHBAY_TOKEN), as the server
// wrote it.
func rawGET(t *testing.T, path string) []byte {
	t.Helper()
	cc := clientConfig{server: os.Getenv(envServer), pin: os.Getenv(envPin)}
	c, err := cc.apiClient()
	if err != nil {
		t.Fatal(err)
	}
	var raw json.RawMessage
	if err := c.Do(context.Background(), http.MethodGet, api.Prefix+path, nil, &raw); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return raw
}

// TestRolloutStatusReason: rollout status --hosts says why a host rolled
// back: the agent's reason and the failed health check with its detail,
// as the result the server holds says (it is in the JSON alone before).
func TestRolloutStatusReason(t *testing.T) {
	res, _ := json.Marshal(job.Result{JobID: "p1/h2", Attempt: 1, Outcome: job.RolledBack,
		Reason: "post-install checks failed; rolled back 2 packages",
		Checks: []job.CheckResult{
			{Phase: job.PhasePre, Check: job.HealthCheck{HTTP: "http://127.0.0.1:8080/healthz"}, OK: true},
			{Phase: job.PhasePost, Check: job.HealthCheck{HTTP: "http://127.0.0.1:8080/healthz"}, Detail: "status 503, want 200"},
		}})
	plan := &rollout.Plan{ID: "p1", Strategy: "standard", State: rollout.Approved,
		Rings: []rollout.RingPreview{{Name: "staging", Hosts: 1}, {Name: "prod", Hosts: 1}}}
	st := rolloutapi.PlanStatus{
		Plan:    plan,
		Rollout: &rollout.Machine{State: rollout.Halted, Ring: 1, Why: "ring prod: 1 errors, more than its threshold of 0"},
		Rings:   []rolloutapi.RingStatus{{Name: "staging", Hosts: 1, Outcomes: map[job.Outcome]int{job.Succeeded: 1}}, {Name: "prod", Hosts: 1, Outcomes: map[job.Outcome]int{job.RolledBack: 1}}},
		Hosts: []rollout.HostStatus{
			{PlanHost: rollout.PlanHost{ID: "h1", Hostname: "stg-1", Ring: 0}, Attempt: 1, Outcome: job.Succeeded},
			{PlanHost: rollout.PlanHost{ID: "h2", Hostname: "prod-2", Ring: 1}, Attempt: 1, Outcome: job.RolledBack, Result: res},
		},
	}
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != api.Prefix+"/plans/p1" || r.URL.Query().Get("hosts") != "1" {
			http.NotFound(w, r)
			return
		}
		json.NewEncoder(w).Encode(st)
	}))
	defer srv.Close()
	t.Setenv(envServer, srv.URL)
	t.Setenv(envPin, api.Fingerprint(srv.Certificate().Raw))
	t.Setenv(envToken, "pb_test")
	code, out, errs := run(t, t.TempDir(), "rollout", "status", "p1", "--hosts")
	if code != 0 {
		t.Fatalf("rollout status: %d %s", code, errs)
	}
	lines := strings.Split(out, "\n")
	var header, prod string
	for _, l := range lines {
		if strings.HasPrefix(l, "HOST") {
			header = l
		}
		if strings.HasPrefix(l, "prod-2") {
			prod = l
		}
	}
	if !strings.HasSuffix(header, "REASON") {
		t.Errorf("no REASON column: %q", header)
	}
	want := "rolled_back  post-install checks failed; rolled back 2 packages; post http http://127.0.0.1:8080/healthz: status 503, want 200"
	if !strings.Contains(prod, want) || strings.Contains(out, "pre http") {
		t.Errorf("prod-2's row %q lacks %q (or names the passing check):\n%s", prod, want, out)
	}
	// Fitted to 80 columns the reason is cut, with an ellipsis.
	code, out, _ = runWidth(t, t.TempDir(), 80, "rollout", "status", "p1", "--hosts")
	if code != ExitOK {
		t.Fatalf("rollout status at 80 columns: exit %d", code)
	}
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "prod-2") && (table.Width(l) != 80 || !strings.HasSuffix(l, "…")) {
			t.Errorf("at 80 columns: %d %q", table.Width(l), l)
		}
	}
}

// TestHostOutcome: a job without an outcome reads as pending, running
// with how long its agent has had it (and, after a while, that some
// agents run no jobs), or abandoned once the rollout is aborted.
func TestHostOutcome(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	running := &rollout.Machine{State: rollout.Running}
	for _, c := range []struct {
		h        rollout.HostStatus
		m        *rollout.Machine
		out, why string
	}{
		{rollout.HostStatus{}, running, "pending", ""},
		{rollout.HostStatus{Attempt: 1, Started: now.Add(-90 * time.Second)}, running, "running", "handed to its agent 1m30s ago; waiting for its report"},
		{rollout.HostStatus{Attempt: 1, Started: now.Add(-time.Hour)}, running, "running", "handed to its agent 1h0m0s ago; waiting for its report (an agent started with --no-jobs, or the quickstart's, runs no jobs)"},
		{rollout.HostStatus{Attempt: 1, Started: now.Add(-time.Hour)}, &rollout.Machine{State: rollout.Aborted}, "abandoned", "the rollout was aborted after the job was handed out; its agent may still report it"},
		{rollout.HostStatus{Attempt: 1, Outcome: job.Succeeded}, running, "succeeded", ""},
	} {
		if out, why := hostOutcome(c.h, c.m, now); out != c.out || why != c.why {
			t.Errorf("%+v: %q %q, want %q %q", c.h, out, why, c.out, c.why)
		}
	}
}
