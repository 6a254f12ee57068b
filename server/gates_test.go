package server_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/patchbay/patchbay/api"
	"github.com/patchbay/patchbay/api/policyapi"
	"github.com/patchbay/patchbay/api/rolloutapi"
	"github.com/patchbay/patchbay/audit"
	"github.com/patchbay/patchbay/auth"
	"github.com/patchbay/patchbay/feeds"
	"github.com/patchbay/patchbay/internal/promtest"
	"github.com/patchbay/patchbay/internal/rollouttest"
	"github.com/patchbay/patchbay/job"
	"github.com/patchbay/patchbay/monitor"
	"github.com/patchbay/patchbay/patch"
	"github.com/patchbay/patchbay/rollout"
	"github.com/patchbay/patchbay/server"
)

// watchedStrategy rolls out to one host, then the two others, each ring
// gated by the hosts' error ratio in Prometheus (two good measurements a
// minute apart before the ring and during its bake, and in the
// background) and by Alertmanager's alerts on the ring's hosts.
const watchedStrategy = `apiVersion: patchbay/v1
kind: RolloutStrategy
metadata: {name: watched}
spec:
  rings:
    - {name: canary, share: 30%, maxConcurrency: 1, errorThreshold: 0, bake: 2m}
    - {name: rest, share: 100%, maxConcurrency: 2, errorThreshold: 0, bake: 2m}
  reboot: never
  promote: automatic
  rollbackOnHalt: true
  gates:
    prometheus:
      - name: error-rate
        query: 'app_error_ratio{host="{{ .Host }}"}'
        condition: "< 0.05"
        interval: 1m
        count: 2
    alerts:
      - name: host-alerts
        matchers: ['host="{{ .Host }}"', 'severity="page"']
`

// comparedStrategy halts a ring whose patched host is worse than the
// hosts not patched yet (a Mann-Whitney U test over the last 5 s).
const comparedStrategy = `apiVersion: patchbay/v1
kind: RolloutStrategy
metadata: {name: compared}
spec:
  rings:
    - {name: canary, share: 30%, maxConcurrency: 1, errorThreshold: 0, bake: 1m}
    - {name: rest, share: 100%, maxConcurrency: 2, errorThreshold: 0}
  reboot: never
  promote: automatic
  rollbackOnHalt: true
  gates:
    comparison:
      - {name: vs-baseline, query: 'app_error_ratio{host="{{ .Host }}"}', range: 5s, step: 1s, minSamples: 5, interval: 1m}
`

// testRolloutGates runs rollouts over three hosts watched by a real
// Prometheus scraping an exporter per host and a real Alertmanager: a
// rollout proceeds while the error ratio stays low, halts when the
// patched host's rises (the audit entry and notification carry the
// query, values and threshold), waits while an alert fires on a ring's
// host, halts when one starts after the patch, and fails closed with the
// reason when Prometheus is down.
func TestRolloutGatesSQLite(t *testing.T)   { t.Parallel(); testRolloutGates(t, "sqlite") }
func TestRolloutGatesPostgres(t *testing.T) { t.Parallel(); testRolloutGates(t, "postgres") }

func testRolloutGates(t *testing.T, backend string) {
	feed := debianFeed(t)
	pkgs := webDB(t)
	hostNames := []string{"app-1", "app-2", "app-3"}
	exps := map[string]*promtest.Exporter{}
	var all []*promtest.Exporter
	for _, h := range hostNames {
		exps[h] = promtest.NewExporter(t, h, 0.01)
		all = append(all, exps[h])
	}
	prom := promtest.Prometheus(t, all)
	amPort := promtest.Port(t)
	amURL := fmt.Sprintf("http://127.0.0.1:%d", amPort)

	var clock atomic.Pointer[time.Time]
	set := func(t time.Time) { clock.Store(&t) }
	set(time.Now().UTC().Truncate(time.Second))
	now := func() time.Time { return *clock.Load() }
	tick := func(d time.Duration) { set(now().Add(d)) }

	logs := &lockedBuffer{}
	f := newFixture(t, backend, func(c *server.Config) {
		c.Log = slog.New(slog.NewJSONHandler(logs, nil))
		c.Now = now
		c.PrometheusURL, c.AlertmanagerURL = prom.URL, amURL
		c.Webhooks = []server.Webhook{{Name: "ops", URL: "http://127.0.0.1:9/never", Format: "json"}}
	})
	ctx := context.Background()
	if _, err := (&feeds.Importer{Store: f.db, Now: now}).ImportPaths(ctx, []string{feed}); err != nil {
		t.Fatal(err)
	}
	viewer, admin, alice := f.api(auth.Viewer), f.api(auth.Admin), f.api(auth.Operator)
	// Alertmanager routes every alert to patchbay's receiver, as an
	// operator token.
	am := promtest.Alertmanager(t, amPort, f.url+api.Prefix+"/alerts", f.api(auth.Operator))
	f.apply(admin, policyapi.ApplyRequest{Files: []policyapi.PolicyFile{
		{Name: "groups.yaml", Content: rollouttest.Documents("HostGroup/staging", "HostGroup/production")},
		{Name: "watched.yaml", Content: watchedStrategy}, {Name: "compared.yaml", Content: comparedStrategy}}})
	enrollTok := f.token(auth.KindEnrollment, auth.Agent, -1, time.Time{})
	sources := []string{"openssl", "curl", "glibc"}
	hosts := map[string]*simHost{}
	byID := map[string]*simHost{}
	for _, name := range hostNames {
		facts := factsOf(name, "m-"+name)
		facts.Labels = map[string]string{"env": "app"} // no window covers them: any time
		e := f.enrollWithUpdates(enrollTok, viewer, facts, pkgs, sources)
		k, _ := base64.StdEncoding.DecodeString(e.JobKey)
		hosts[name] = &simHost{name: name, id: e.HostID, cred: e.Credential, facts: facts, key: ed25519.PublicKey(k)}
		byID[e.HostID] = hosts[name]
	}

	// Prometheus has scraped every exporter.
	mc := &monitor.Client{PrometheusURL: prom.URL}
	waitRatio := func(host string, want func(float64) bool) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			ss, err := mc.Query(ctx, fmt.Sprintf(`app_error_ratio{host=%q}`, host))
			if err == nil && len(ss) == 1 && want(ss[0].Value) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("prometheus has no wanted app_error_ratio of %s: %v %v", host, ss, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	for _, h := range hostNames {
		waitRatio(h, func(v float64) bool { return v == 0.01 })
	}

	poll := func(h *simHost) []job.Signed {
		t.Helper()
		code, body := f.do("GET", api.Prefix+"/agent/jobs?wait=0", h.cred, nil)
		if code != 200 {
			t.Fatalf("poll %s: %d %s", h.name, code, body)
		}
		var r api.JobsResponse
		f.decode(body, &r)
		return r.Jobs
	}
	// step: a minute passes, the agents poll, the leader steps; it returns
	// the hosts that hold a job.
	step := func() map[string]job.Manifest {
		t.Helper()
		tick(time.Minute)
		for _, h := range hosts {
			poll(h)
		}
		if err := f.srv.FlushCheckins(ctx); err != nil {
			t.Fatal(err)
		}
		if err := f.srv.StepRollouts(ctx, rollout.Fence{}); err != nil {
			t.Fatal(err)
		}
		out := map[string]job.Manifest{}
		for _, h := range hosts {
			for _, s := range poll(h) {
				m, err := job.Verify(s, h.key, h.id, now())
				if err != nil {
					t.Fatalf("%s: %v", h.name, err)
				}
				out[h.name] = m
			}
		}
		return out
	}
	report := func(h string, m job.Manifest) {
		t.Helper()
		if code, body := f.do("POST", api.Prefix+"/agent/jobs/result", hosts[h].cred, job.Result{JobID: m.JobID, Attempt: m.Attempt, Outcome: job.Succeeded, Started: now(), Finished: now()}); code != 200 {
			t.Fatalf("report %s: %d %s", h, code, body)
		}
	}
	status := func(id string) rolloutapi.PlanStatus {
		t.Helper()
		code, body := f.do("GET", api.Prefix+"/plans/"+id+"?hosts=1", viewer, nil)
		if code != 200 {
			t.Fatalf("plan %s: %d %s", id, code, body)
		}
		var st rolloutapi.PlanStatus
		f.decode(body, &st)
		return st
	}
	startWith := func(strategy string) string {
		t.Helper()
		p := f.createPlan("plan", alice, rollout.PlanSpec{Strategy: strategy, Selector: rollout.Selector{Types: []patch.Type{patch.Security}}})
		if p.State != rollout.Approved {
			f.do("POST", api.Prefix+"/plans/"+p.ID+"/approve", alice, nil)
		}
		if code, body := f.do("POST", api.Prefix+"/plans/"+p.ID+"/start", alice, nil); code != 200 {
			t.Fatalf("start: %d %s", code, body)
		}
		return p.ID
	}
	start := func() string { return startWith("watched") }
	// runRing steps until a job is dispatched, checking that the before
	// gate held the ring for its first measurement; it reports the jobs.
	runRing := func(id string, n int) []string {
		t.Helper()
		got := step()
		if len(got) != 0 {
			t.Fatalf("jobs before the gate's second measurement: %v", got)
		}
		got = step()
		if len(got) != n {
			t.Fatalf("jobs after the before gate passed: %v, want %d (%s)", got, n, status(id).Rollout.Why)
		}
		var names []string
		for h, m := range got {
			report(h, m)
			names = append(names, h)
		}
		return names
	}

	if !f.chapter("proceeds while healthy", func(t *testing.T) {
		id := start()
		canary := runRing(id, 1)
		// Baking: two bake measurements a minute apart and the 2m bake.
		for range 3 {
			if got := step(); len(got) != 0 {
				t.Fatalf("jobs during the canary's bake: %v", got)
			}
		}
		rest := runRing(id, 2)
		for range 4 {
			step()
		}
		st := status(id)
		if st.Rollout.State != rollout.Completed {
			t.Fatalf("rollout %s after %v then %v: %+v", st.Rollout.State, canary, rest, st.Rollout)
		}
		for k, g := range st.Rollout.GateStates {
			if g.Result != "ok" || g.Failures != 0 {
				t.Errorf("gate %s: %+v", k, g)
			}
		}
	}) {
		return
	}

	if !f.chapter("halts when the patched host degrades", func(t *testing.T) {
		id := start()
		canary := runRing(id, 1)[0]
		exps[canary].Set(0.5)
		waitRatio(canary, func(v float64) bool { return v == 0.5 })
		step() // the background measurement fails (before the ring's bake)
		st := status(id)
		r := st.Rollout
		if r.State != rollout.Halted || r.Halt == nil || r.Halt.Gate != "error-rate" || r.Halt.Phase != rollout.PhaseBackground {
			t.Fatalf("rollout: %+v", r)
		}
		q := fmt.Sprintf(`app_error_ratio{host="%s"}`, canary)
		if !strings.Contains(r.Why, q) || !strings.Contains(r.Why, "= 0.5, want < 0.05") || len(r.Halt.Values) != 1 || r.Halt.Values[0].Value != 0.5 {
			t.Errorf("why: %s; halt %+v", r.Why, r.Halt)
		}
		// The audit entry's digest covers the gate's query, values and
		// threshold; the notification carries them.
		es := f.auditOf("rollout.halt")
		want, err := audit.DigestOf(map[string]any{"ring": "canary", "why": r.Why, "gate": r.Halt, "reverting": r.Reverting})
		if err != nil {
			t.Fatal(err)
		}
		if len(es) == 0 || es[len(es)-1].Digest != want || es[len(es)-1].Object != "plan/"+id {
			t.Errorf("rollout.halt audit entries: %+v, want the digest %s", es, want)
		}
		var halted []string
		for _, n := range f.notifications(admin, id) {
			if n.Event == "rollout.halted" {
				halted = append(halted, string(n.Payload))
			}
		}
		if len(halted) == 0 {
			t.Fatal("no rollout.halted notification")
		}
		for _, want := range []string{`"query":["` + strings.ReplaceAll(q, `"`, `\"`) + `"]`, `"condition":"\u003c 0.05"`, `"value":0.5`, `"failure_limit":0`} {
			if !strings.Contains(halted[0], want) {
				t.Errorf("notification lacks %s: %s", want, halted[0])
			}
		}
		// The canary is put back at its previous versions; no other job
		// starts.
		if !slices.Equal(r.Reverting, []string{canary}) {
			t.Errorf("reverting %v, want [%s]", r.Reverting, canary)
		}
		got := step()
		rv, ok := got[canary]
		if len(got) != 1 || !ok || rv.Attempt != 2 || !strings.Contains(rv.Revert, q) {
			t.Fatalf("jobs after the halt: %+v", got)
		}
		var from []job.Package
		for _, h := range status(id).Hosts {
			if h.Hostname == canary {
				for _, tg := range h.Targets {
					from = append(from, job.Package{Name: tg.Name, Version: tg.From})
				}
			}
		}
		if len(from) == 0 || !slices.Equal(rv.Install, from) {
			t.Errorf("revert installs %v, want the versions before %v", rv.Install, from)
		}
		if code, body := f.do("POST", api.Prefix+"/agent/jobs/result", hosts[canary].cred, job.Result{JobID: rv.JobID, Attempt: 2, Outcome: job.RolledBack, Reason: "reverted", Started: now(), Finished: now()}); code != 200 {
			t.Fatalf("report the revert: %d %s", code, body)
		}
		for range 2 {
			if got := step(); len(got) != 0 {
				t.Fatalf("jobs after the revert: %v", got)
			}
		}
		for _, h := range status(id).Hosts {
			if want := map[bool]job.Outcome{true: job.RolledBack, false: ""}[h.Hostname == canary]; h.Outcome != want {
				t.Errorf("%s: outcome %q, want %q", h.Hostname, h.Outcome, want)
			}
		}
		exps[canary].Set(0.01)
		waitRatio(canary, func(v float64) bool { return v == 0.01 })
	}) {
		return
	}

	if !f.chapter("alerts block the start and halt", func(t *testing.T) {
		// Pre-existing: a page on every host keeps the first ring from
		// starting.
		for _, h := range hostNames {
			if err := am.Fire(ctx, map[string]string{"alertname": "Old", "host": h, "severity": "page"}, time.Now().Add(-time.Hour), time.Now().Add(20*time.Second)); err != nil {
				t.Fatal(err)
			}
		}
		id := start()
		for range 3 {
			if got := step(); len(got) != 0 {
				t.Fatalf("jobs while an alert fires: %v", got)
			}
		}
		st := status(id).Rollout.GateStates["alerts/host-alerts/before"]
		if st == nil || !strings.Contains(st.Result, "blocking the start of the ring") {
			t.Fatalf("alert gate: %+v", st)
		}
		// Resolved: the ring starts.
		for _, h := range hostNames {
			if err := am.Fire(ctx, map[string]string{"alertname": "Old", "host": h, "severity": "page"}, time.Now().Add(-time.Hour), time.Now().Add(-time.Second)); err != nil {
				t.Fatal(err)
			}
		}
		got := step()
		if len(got) != 1 {
			t.Fatalf("jobs once the alert resolved: %v (%+v)", got, status(id).Rollout.GateStates)
		}
		var canary string
		for h, m := range got {
			canary = h
			report(h, m)
		}
		// A page that starts after the patch halts.
		if err := am.Fire(ctx, map[string]string{"alertname": "HighErrorRate", "host": canary, "severity": "page"}, now(), time.Time{}); err != nil {
			t.Fatal(err)
		}
		step()
		r := status(id).Rollout
		if r.State != rollout.Halted || r.Halt == nil || r.Halt.Kind != "alerts" || !strings.Contains(r.Why, "HighErrorRate{host="+canary+"}") {
			t.Fatalf("rollout: %s %s %+v", r.State, r.Why, r.Halt)
		}
		// Alertmanager delivered the alert to patchbay's receiver, which
		// linked it to the canary's job: listed with the rollout, on the
		// host's timeline and notified.
		var linked []rollout.Alert
		deadline := time.Now().Add(15 * time.Second)
		for len(linked) == 0 {
			var as struct {
				Alerts []rollout.Alert `json:"alerts"`
			}
			_, body := f.do("GET", api.Prefix+"/alerts?rollout="+id, viewer, nil)
			f.decode(body, &as)
			linked = as.Alerts
			if time.Now().After(deadline) {
				t.Fatal("the alert was not received and linked")
			}
			time.Sleep(100 * time.Millisecond)
		}
		if a := linked[0]; a.Name != "HighErrorRate" || a.Hostname != canary || a.Plan != id || a.JobStarted.IsZero() || a.Status != "firing" {
			t.Errorf("linked alert: %+v", a)
		}
		var tl rolloutapi.Events
		_, body := f.do("GET", api.Prefix+"/events?host="+canary+"&rollout="+id, viewer, nil)
		f.decode(body, &tl)
		var kinds []string
		for _, e := range tl.Events {
			if e.Hostname != canary {
				t.Errorf("host timeline of %s: %+v", canary, e)
			}
			kinds = append(kinds, e.Kind)
		}
		slices.Sort(kinds) // the check-in and the job's start are at one time
		if !slices.Equal(kinds, []string{"alert", "checkin", "job.started"}) {
			t.Errorf("host timeline: %s", body)
		}
		_, body = f.do("GET", api.Prefix+"/events?rollout="+id, viewer, nil)
		for _, want := range []string{`"kind":"gate"`, `"kind":"halt"`, `"kind":"alert"`, "alert HighErrorRate firing, 0s after the job of " + id} {
			if !strings.Contains(string(body), want) {
				t.Errorf("rollout timeline lacks %s: %s", want, body)
			}
		}
		var notified bool
		for _, n := range f.notifications(admin, id) {
			notified = notified || n.Event == "alert.linked" && strings.Contains(string(n.Payload), `"alert":"HighErrorRate"`)
		}
		if !notified {
			t.Error("no alert.linked notification")
		}
		// The canary's revert (rollbackOnHalt) reports.
		for h, m := range step() {
			if m.Revert == "" {
				t.Fatalf("%s got a job after the halt: %+v", h, m)
			}
			if code, body := f.do("POST", api.Prefix+"/agent/jobs/result", hosts[h].cred, job.Result{JobID: m.JobID, Attempt: m.Attempt, Outcome: job.RolledBack, Started: now(), Finished: now()}); code != 200 {
				t.Fatalf("report the revert: %d %s", code, body)
			}
		}
	}) {
		return
	}

	if !f.chapter("compared with the unpatched hosts", func(t *testing.T) {
		// 0.04 passes the absolute threshold of the watched strategy, but
		// it is worse than the two hosts still at 0.01.
		id := startWith("compared")
		got := step()
		if len(got) != 1 {
			t.Fatalf("canary jobs: %v", got)
		}
		var canary string
		for h, m := range got {
			canary = h
			report(h, m)
		}
		exps[canary].Set(0.04)
		waitRatio(canary, func(v float64) bool { return v == 0.04 })
		time.Sleep(6 * time.Second) // the 5 s range holds only the new values
		step()                      // the ring is done: it bakes
		step()                      // the comparison
		r := status(id).Rollout
		if r.State != rollout.Halted || r.Halt == nil || r.Halt.Kind != "comparison" || !strings.Contains(r.Why, "the patched hosts are higher than the baseline: median 0.04 vs 0.01") {
			t.Fatalf("rollout %s: %s %+v", r.State, r.Why, r.GateStates)
		}
		for h, m := range step() {
			if h != canary || m.Revert == "" {
				t.Fatalf("%s got a job after the halt: %+v", h, m)
			}
			report(h, m)
		}
		exps[canary].Set(0.01)
		waitRatio(canary, func(v float64) bool { return v == 0.01 })
	}) {
		return
	}

	defer f.chapter("log lines carry the ids", func(t *testing.T) { checkLogIDs(t, logs.Bytes()) })
	f.chapter("prometheus down fails closed", func(t *testing.T) {
		prom.Stop()
		id := start()
		step()
		r := status(id).Rollout
		if r.State != rollout.Halted || !strings.Contains(r.Why, "prometheus "+prom.URL) || !strings.Contains(r.Why, "unreachable") {
			t.Fatalf("rollout: %s %q", r.State, r.Why)
		}
		if r.Halt == nil || r.Halt.Phase != rollout.PhaseBefore {
			t.Errorf("halt: %+v", r.Halt)
		}
	})
}

// lockedBuffer is a log's writer the test reads at the end.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) Bytes() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return bytes.Clone(l.b.Bytes())
}

// checkLogIDs: in the server's JSON log, every line about a plan,
// rollout or job names it by plan_id (and rollout_id, the same id, once
// started; a job by job_id and host), never under other keys, so a log
// tool joins them with the agents' lines.
func checkLogIDs(t *testing.T, log []byte) {
	t.Helper()
	msgs := map[string]bool{}
	for _, l := range strings.Split(strings.TrimSpace(string(log)), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("not a JSON log line: %q", l)
		}
		msg, _ := m["msg"].(string)
		msgs[msg] = true
		for _, bad := range []string{"plan", "job", "rollout"} {
			if _, ok := m[bad]; ok {
				t.Errorf("%q names its %s as %q, not %s_id", msg, bad, bad, bad)
			}
		}
		if r, ok := m["rollout_id"]; ok && r != m["plan_id"] {
			t.Errorf("%q: rollout_id %v without the same plan_id (%v)", msg, r, m["plan_id"])
		}
		if id, ok := m["job_id"].(string); ok && (m["host"] == nil || !strings.HasPrefix(id, fmt.Sprint(m["plan_id"])+"/")) {
			t.Errorf("%q: job_id %s without its plan_id and host: %v", msg, id, m)
		}
	}
	for _, want := range []string{"plan created", "rollout step", "alert linked to a job"} {
		if !msgs[want] {
			t.Errorf("no %q line in the log", want)
		}
	}
}
