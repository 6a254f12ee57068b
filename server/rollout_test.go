package server_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
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
	"github.com/patchbay/patchbay/fleet"
	"github.com/patchbay/patchbay/internal/jsontest"
	"github.com/patchbay/patchbay/internal/pgtest"
	"github.com/patchbay/patchbay/internal/rollouttest"
	"github.com/patchbay/patchbay/inventory"
	"github.com/patchbay/patchbay/job"
	"github.com/patchbay/patchbay/kinds"
	"github.com/patchbay/patchbay/patch"
	"github.com/patchbay/patchbay/risk"
	"github.com/patchbay/patchbay/rollout"
	"github.com/patchbay/patchbay/server"
)

// carefulStrategy is the story's own strategy beside the shared policy
// (rollouttest.Policy): the same rings without a bake, never rebooting,
// promoted by a person.
const carefulStrategy = `apiVersion: patchbay/v1
kind: RolloutStrategy
metadata: {name: careful}
spec:
  rings:
    - {name: staging, hostGroup: staging, maxConcurrency: 1, errorThreshold: 0}
    - {name: prod, hostGroup: production, maxConcurrency: 1, errorThreshold: 0}
  reboot: never
  promote: manual
`

// updatesFor makes the security updates the package manager would offer
// for the fixed versions of a host's open findings of a few sources.
func updatesFor(pkgs []inventory.Package, open []fleet.FindingRow, sources []string) []patch.Update {
	fixed := map[string]string{}
	for _, f := range open {
		if slices.Contains(sources, f.Package) && f.Fixed != "" {
			if cur, ok := fixed[f.Package]; !ok || cur < f.Fixed {
				fixed[f.Package] = f.Fixed
			}
		}
	}
	var ups []patch.Update
	for _, p := range pkgs {
		src := p.SourceName
		if src == "" {
			src = p.Name
		}
		if v, ok := fixed[src]; ok {
			ups = append(ups, patch.Update{Ecosystem: "Debian:12", Name: p.Name, SourceName: src, SourceVersion: p.SourceVersion, Installed: p.Version,
				Candidate: v, Origin: "bookworm-security", Pocket: "security", CVEs: []string{}, Types: []patch.Type{patch.Security}, Cycle: "system"})
		}
	}
	return ups
}

type simHost struct {
	name, id, cred string
	facts          fleet.Facts
	key            ed25519.PublicKey
}

// enrollWithUpdates enrolls a host, checks in its inventory, then the
// security updates of sources that fix its findings.
func (f *fixture) enrollWithUpdates(enrollTok, viewer string, facts fleet.Facts, pkgs []inventory.Package, sources []string) api.EnrollResponse {
	f.t.Helper()
	e := f.enroll(enrollTok, facts)
	if code, body := f.do("POST", api.Prefix+"/agent/checkin", e.Credential, report(facts, pkgs, true)); code != 200 {
		f.t.Fatalf("check-in %s: %d %s", facts.Hostname, code, body)
	}
	ups := updatesFor(pkgs, f.findings(viewer, url.Values{"host": {e.HostID}}), sources)
	rep := report(facts, pkgs, false)
	rep.UpdatesHash, rep.Updates = fleet.UpdatesHash(ups), &ups
	if code, body := f.do("POST", api.Prefix+"/agent/checkin", e.Credential, rep); code != 200 {
		f.t.Fatalf("updates of %s: %d %s", facts.Hostname, code, body)
	}
	return e
}

// createPlan creates a plan as token; what names it in the failure.
func (f *fixture) createPlan(what, token string, spec rollout.PlanSpec) *rollout.Plan {
	f.t.Helper()
	code, body := f.do("POST", api.Prefix+"/plans", token, spec)
	if code != 201 {
		f.t.Fatalf("%s: %d %s", what, code, body)
	}
	var st rolloutapi.PlanStatus // a fresh one: Plan is a pointer
	f.decode(body, &st)
	return st.Plan
}

// approveAndStart has two people approve a plan and the first start it,
// as the story does for the plans whose approvals it has checked before.
func (f *fixture) approveAndStart(id, first, second string) {
	f.do("POST", api.Prefix+"/plans/"+id+"/approve", first, nil)
	f.do("POST", api.Prefix+"/plans/"+id+"/approve", second, nil)
	f.do("POST", api.Prefix+"/plans/"+id+"/start", first, nil)
}

// notifications lists the notifications of a plan.
func (f *fixture) notifications(token, planID string) []rollout.Notification {
	f.t.Helper()
	var ns struct {
		Notifications []rollout.Notification `json:"notifications"`
	}
	_, body := f.do("GET", api.Prefix+"/notifications?plan="+planID, token, nil)
	f.decode(body, &ns)
	return ns.Notifications
}

func TestRolloutSQLite(t *testing.T)   { testRollout(t, "sqlite") }
func TestRolloutPostgres(t *testing.T) { testRollout(t, "postgres") }

// testRollout drives a plan through approvals, a maintenance window, two
// rings with a bake, a server restart, a halt, an emergency plan and a
// tampered job, with simulated agents and an injected clock. Each step is
// a chapter (a subtest); a chapter that stops short ends the story.
func testRollout(t *testing.T, backend string) {
	feed := debianFeed(t)
	pkgs := webDB(t)
	var clock atomic.Pointer[time.Time]
	set := func(t time.Time) { clock.Store(&t) }
	set(time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)) // a Tuesday, noon: the window is closed
	now := func() time.Time { return *clock.Load() }

	// The webhook fails its first delivery, then takes them.
	var hookMu sync.Mutex
	var hooked []string
	var hookCalls atomic.Int32
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hookCalls.Add(1) == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		b, _ := io.ReadAll(r.Body)
		hookMu.Lock()
		hooked = append(hooked, r.Header.Get("X-Patchbay-Event")+" "+string(b))
		hookMu.Unlock()
	}))
	defer hook.Close()
	webhooks := []server.Webhook{{Name: "ops", URL: hook.URL, Format: "json"}, {Name: "chat", URL: hook.URL, Format: "slack"}}
	mod := func(c *server.Config) {
		c.Now = now
		c.Webhooks = webhooks
		c.NotifyBackoff = time.Minute
	}
	f := newFixture(t, backend, mod)
	ctx := context.Background()
	im := &feeds.Importer{Store: f.db, Now: now}
	if _, err := im.ImportPaths(ctx, []string{feed}); err != nil {
		t.Fatal(err)
	}
	viewer, admin := f.api(auth.Viewer), f.api(auth.Admin)
	alice, bob := f.api(auth.Operator), f.api(auth.Operator)
	f.apply(admin, policyapi.ApplyRequest{Files: []policyapi.PolicyFile{{Name: "rollout.yaml", Content: rollouttest.Policy}, {Name: "careful.yaml", Content: carefulStrategy}}})

	enrollTok := f.token(auth.KindEnrollment, auth.Agent, -1, time.Time{})
	sources := []string{"openssl", "curl", "glibc"}
	hosts := map[string]*simHost{}
	for _, h := range []struct{ name, env string }{{"stg-1", "staging"}, {"prod-1", "prod"}, {"prod-2", "prod"}} {
		facts := factsOf(h.name, "m-"+h.name)
		facts.Labels = map[string]string{"env": h.env, "exposure": "internet"}
		e := f.enrollWithUpdates(enrollTok, viewer, facts, pkgs, sources)
		k, err := base64.StdEncoding.DecodeString(e.JobKey)
		if err != nil || len(k) != ed25519.PublicKeySize {
			t.Fatalf("enrollment gave no job key: %q", e.JobKey)
		}
		hosts[h.name] = &simHost{name: h.name, id: e.HostID, cred: e.Credential, facts: facts, key: k}
	}
	// prod-0 reports once and is never heard from again: no active agent.
	{
		facts := factsOf("prod-0", "m-prod-0")
		facts.Labels = map[string]string{"env": "prod", "exposure": "internet"}
		f.enrollWithUpdates(enrollTok, viewer, facts, pkgs, sources)
	}

	// The simulated agents and the leader; they report to the running
	// chapter (f.t).
	poll := func(h *simHost) []job.Signed {
		f.t.Helper()
		code, body := f.do("GET", api.Prefix+"/agent/jobs?wait=0", h.cred, nil)
		if code != 200 {
			f.t.Fatalf("poll %s: %d %s", h.name, code, body)
		}
		var r api.JobsResponse
		f.decode(body, &r)
		return r.Jobs
	}
	// step: the agents long-poll (which marks them active), then the
	// leader steps.
	step := func(srv *server.Server) {
		f.t.Helper()
		for _, h := range hosts {
			poll(h)
		}
		if err := f.srv.FlushCheckins(ctx); err != nil {
			f.t.Fatal(err)
		}
		if err := srv.StepRollouts(ctx, rollout.Fence{}); err != nil {
			f.t.Fatal(err)
		}
	}
	reportJob := func(h *simHost, res job.Result) (int, []byte) {
		return f.do("POST", api.Prefix+"/agent/jobs/result", h.cred, res)
	}
	// run verifies the host's one job as an agent would and reports o.
	run := func(h *simHost, o job.Outcome) job.Manifest {
		f.t.Helper()
		jobs := poll(h)
		if len(jobs) != 1 {
			f.t.Fatalf("%s holds %d jobs, want 1", h.name, len(jobs))
		}
		m, err := job.Verify(jobs[0], h.key, h.id, now())
		if err != nil {
			f.t.Fatalf("%s: job does not verify: %v", h.name, err)
		}
		if code, body := reportJob(h, job.Result{JobID: m.JobID, Attempt: m.Attempt, Outcome: o, Started: now(), Finished: now()}); code != 200 {
			f.t.Fatalf("report %s: %d %s", h.name, code, body)
		}
		return m
	}
	status := func(id string) rolloutapi.PlanStatus {
		f.t.Helper()
		code, body := f.do("GET", api.Prefix+"/plans/"+id+"?hosts=1", viewer, nil)
		if code != 200 {
			f.t.Fatalf("plan %s: %d %s", id, code, body)
		}
		var st rolloutapi.PlanStatus
		f.decode(body, &st)
		return st
	}

	// The state the chapters hand on.
	spec := rollout.PlanSpec{Strategy: "standard", Selector: rollout.Selector{Types: []patch.Type{patch.Security}}} // every security patch
	window := time.Date(2026, 11, 24, 22, 0, 0, 0, time.UTC)
	var (
		p    *rollout.Plan         // the plan of every security patch
		st   rolloutapi.PlanStatus // its preview
		m    job.Manifest          // stg-1's job of it
		srv2 *server.Server        // a second server on the same database
		ep   *rollout.Plan         // the emergency plan
		tp   *rollout.Plan         // the plan paused, resumed and aborted
	)

	if !f.chapter("preview", func(t *testing.T) {
		code, _ := f.do("POST", api.Prefix+"/plans", viewer, spec)
		if code != 403 {
			t.Errorf("plan by a viewer: %d", code)
		}
		code, body := f.do("POST", api.Prefix+"/plans", alice, rollout.PlanSpec{Strategy: "nope"})
		if code != 400 || !strings.Contains(errOf(body).Error, `strategy "nope": no such RolloutStrategy`) {
			t.Errorf("unknown strategy: %d %s", code, body)
		}
		p = f.createPlan("create plan", alice, spec)
		if p.State != rollout.AwaitingApproval || p.Required != 2 || len(p.Rings) != 2 || p.Rings[0].Hosts != 1 || p.Rings[1].Hosts != 3 {
			t.Fatalf("plan: %+v", p)
		}
		for _, r := range p.Rings {
			if len(r.Windows) != 1 || r.Windows[0].Name != "nightly" || !r.Windows[0].Start.Equal(window) || !r.Windows[0].End.Equal(window.Add(4*time.Hour)) {
				t.Errorf("ring %s windows: %+v", r.Name, r.Windows)
			}
			if r.Closes["P4"]+r.Closes["P3"]+r.Closes["P2"]+r.Closes["P1"] == 0 || r.Packages == 0 {
				t.Errorf("ring %s closes nothing: %+v", r.Name, r)
			}
		}
		st = status(p.ID)
		for _, h := range st.Hosts {
			if len(h.Targets) == 0 || len(h.Closes) == 0 {
				t.Errorf("host %s: %+v", h.Hostname, h.PlanHost)
			}
			for _, tg := range h.Targets {
				if tg.To == "" || tg.From == tg.To || tg.Approval != map[bool]string{true: "production-two-people", false: "default"}[h.Hostname != "stg-1"] {
					t.Errorf("%s target %+v", h.Hostname, tg)
				}
			}
		}
	}) {
		return
	}

	if !f.chapter("approvals", func(t *testing.T) {
		// Two distinct people; nothing starts before.
		if code, body := f.do("POST", api.Prefix+"/plans/"+p.ID+"/start", alice, nil); code != 409 || !strings.Contains(errOf(body).Error, "only an approved plan starts") {
			t.Errorf("start before approval: %d %s", code, body)
		}
		if code, body := f.do("POST", api.Prefix+"/plans/"+p.ID+"/approve", alice, map[string]string{"comment": "looks fine"}); code != 200 {
			t.Fatalf("approve: %d %s", code, body)
		}
		if code, body := f.do("POST", api.Prefix+"/plans/"+p.ID+"/approve", alice, nil); code != 409 || !strings.Contains(errOf(body).Error, "already approved by this actor") {
			t.Errorf("second approval by the same person: %d %s", code, body)
		}
		if code, body := f.do("POST", api.Prefix+"/plans/"+p.ID+"/approve", bob, nil); code != 200 || !strings.Contains(string(body), `"state":"approved"`) {
			t.Fatalf("approve by bob: %d %s", code, body)
		}
		if code, body := f.do("POST", api.Prefix+"/plans/"+p.ID+"/start", alice, nil); code != 200 {
			t.Fatalf("start: %d %s", code, body)
		}
	}) {
		return
	}

	if !f.chapter("outside the window", func(t *testing.T) {
		// Noon: nothing is dispatched.
		step(f.srv)
		for _, h := range hosts {
			if jobs := poll(h); len(jobs) != 0 {
				t.Fatalf("%s got a job outside the window", h.name)
			}
		}
	}) {
		return
	}

	if !f.chapter("staging in the window", func(t *testing.T) {
		// 22:05: staging runs.
		set(window.Add(5 * time.Minute))
		step(f.srv)
		if jobs := poll(hosts["prod-1"]); len(jobs) != 0 {
			t.Fatal("prod got a job before staging finished")
		}
		m = run(hosts["stg-1"], job.Succeeded)
		stgHost := st.Hosts[slices.IndexFunc(st.Hosts, func(h rollout.HostStatus) bool { return h.Hostname == "stg-1" })]
		if m.JobID != p.ID+"/"+hosts["stg-1"].id || m.Attempt != 1 || len(m.Install) != len(stgHost.Targets) || m.Ring != "staging" ||
			!m.NotAfter.Equal(window.Add(4*time.Hour-30*time.Minute)) || !m.RebootBefore.Equal(window.Add(4*time.Hour)) {
			t.Errorf("manifest: %+v", m)
		}
		for i, tg := range stgHost.Targets {
			if m.Install[i] != (job.Package{Name: tg.Name, Version: tg.To}) {
				t.Errorf("install[%d] = %+v, plan says %+v", i, m.Install[i], tg)
			}
		}
	}) {
		return
	}

	if !f.chapter("stale reports", func(t *testing.T) {
		// The same report again, and a report of a job never dispatched.
		if code, body := reportJob(hosts["stg-1"], job.Result{JobID: m.JobID, Attempt: 1, Outcome: job.Failed}); code != 409 || errOf(body).Code != api.CodeStale {
			t.Errorf("repeated report: %d %s", code, body)
		}
		if code, body := reportJob(hosts["prod-1"], job.Result{JobID: p.ID + "/" + hosts["prod-1"].id, Attempt: 1, Outcome: job.Succeeded}); code != 409 {
			t.Errorf("report of a job not dispatched: %d %s", code, body)
		}
		if code, _ := reportJob(hosts["prod-1"], job.Result{JobID: m.JobID, Attempt: 1, Outcome: job.Succeeded}); code != 400 {
			t.Errorf("a host reporting another host's job: %d", code)
		}
	}) {
		return
	}

	if !f.chapter("staging bakes", func(t *testing.T) {
		// Staging bakes an hour; prod waits.
		step(f.srv)
		set(window.Add(30 * time.Minute))
		step(f.srv)
		if st := status(p.ID); st.Rollout.State != rollout.Baking || len(poll(hosts["prod-1"])) != 0 {
			t.Fatalf("while baking: %+v", st.Rollout)
		}
	}) {
		return
	}

	if !f.chapter("a restart resumes", func(t *testing.T) {
		// A new server on the same database resumes the rollout after the
		// bake.
		var err error
		srv2, err = server.New(server.Config{DB: f.db, Kinds: kinds.All(), ReplicaID: "test-2", JobKey: testJobKey, Now: now, Webhooks: webhooks, NotifyBackoff: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		set(window.Add(66 * time.Minute))
		step(srv2)
		if st := status(p.ID); st.Rollout.State != rollout.Running || st.Rollout.Ring != 1 {
			t.Fatalf("after the bake: %+v", st.Rollout)
		}
		if len(poll(hosts["prod-2"])) != 0 {
			t.Error("prod-2 started beside prod-1: max concurrency is 1")
		}
	}) {
		return
	}

	if !f.chapter("prod halts on a rollback", func(t *testing.T) {
		run(hosts["prod-1"], job.Succeeded)
		step(srv2)
		run(hosts["prod-2"], job.RolledBack)
		step(srv2)
		st := status(p.ID)
		if st.Rollout.State != rollout.Halted || !strings.Contains(st.Rollout.Why, "ring prod: 1 errors, more than its threshold of 0") ||
			st.Rings[0].Outcomes[job.Succeeded] != 1 || st.Rings[1].Outcomes[job.Succeeded] != 1 || st.Rings[1].Outcomes[job.RolledBack] != 1 ||
			st.Rings[1].Outcomes[job.NoAgent] != 1 {
			t.Fatalf("after prod-2 rolled back: %+v %+v", st.Rollout, st.Rings)
		}
		var res job.Result
		for _, h := range st.Hosts {
			if h.Hostname == "prod-2" {
				json.Unmarshal(h.Result, &res)
			}
		}
		if res.Outcome != job.RolledBack {
			t.Errorf("prod-2's result: %+v", res)
		}
		// The plans, their hosts and results, the fleet's hosts and every
		// finding (open, remediated): no time that is not there written
		// as the zero time.
		for _, path := range []string{"/plans", "/plans/" + p.ID + "?hosts=1", "/hosts", "/findings?status=all&limit=1000"} {
			code, body := f.do("GET", api.Prefix+path, viewer, nil)
			if code != 200 {
				t.Fatalf("GET %s: %d %s", path, code, body)
			}
			jsontest.NoZeroTime(t, "GET "+path, body)
		}
		if code, body := f.do("POST", api.Prefix+"/plans/"+p.ID+"/resume", alice, nil); code != 409 {
			t.Errorf("resume a halted rollout: %d %s", code, body)
		}
	}) {
		return
	}

	if !f.chapter("notifications", func(t *testing.T) {
		// The first delivery fails and is retried after the back-off; the
		// deliveries are visible.
		for range 3 {
			if err := f.srv.DeliverNotifications(ctx); err != nil {
				t.Fatal(err)
			}
			set(now().Add(5 * time.Minute))
		}
		ns := f.notifications(viewer, p.ID)
		events := map[string]int{}
		for _, n := range ns {
			if n.DeliveredAt.IsZero() {
				t.Errorf("not delivered: %+v", n)
			}
			events[n.Event]++
			if n.Attempts == 2 && (n.LastError != "" || !strings.Contains(n.Target, "ops") && !strings.Contains(n.Target, "chat")) {
				t.Errorf("retried delivery: %+v", n)
			}
		}
		if events["plan.awaiting_approval"] != 2 || events["rollout.ring_promoted"] != 2 || events["rollout.halted"] != 2 {
			t.Errorf("notifications: %v", events)
		}
		retried := slices.ContainsFunc(ns, func(n rollout.Notification) bool { return n.Attempts == 2 && n.LastStatus == 200 })
		if !retried || hookCalls.Load() != int32(len(ns))+1 {
			t.Errorf("retry: calls %d for %d deliveries: %+v", hookCalls.Load(), len(ns), ns)
		}
		hookMu.Lock()
		slack := slices.ContainsFunc(hooked, func(s string) bool {
			return strings.HasPrefix(s, "rollout.halted {\"text\":\"patchbay: plan `"+p.ID+"` (standard) *halted*: ring prod: 1 errors")
		})
		hookMu.Unlock()
		if !slack {
			t.Errorf("no Slack message of the halt in %q", hooked)
		}
	}) {
		return
	}

	if !f.chapter("audit", func(t *testing.T) {
		// Every transition is audited with its actor.
		es, err := f.db.Audit.Entries(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := audit.Verify(es, nil); err != nil {
			t.Fatal(err)
		}
		actions := map[string][]string{}
		for _, e := range es {
			if e.Object == "plan/"+p.ID || strings.HasPrefix(e.Object, "job/"+p.ID) {
				actions[e.Action] = append(actions[e.Action], e.Actor)
			}
		}
		for _, a := range []string{"plan.create", "plan.approve", "rollout.start", "rollout.promote", "rollout.halt", "job.report"} {
			if len(actions[a]) == 0 {
				t.Errorf("no audit entry %s in %v", a, actions)
			}
		}
		if len(actions["plan.approve"]) != 2 || actions["plan.approve"][0] == actions["plan.approve"][1] || !strings.HasPrefix(actions["job.report"][0], "host:") {
			t.Errorf("actors: %v", actions)
		}
	}) {
		return
	}

	if !f.chapter("emergency lane", func(t *testing.T) {
		// CISA lists an openssl CVE; on these internet-facing hosts its
		// findings go to the emergency lane. An emergency plan runs outside
		// the window after one approval.
		kevJSON := `{"title": "CISA KEV", "catalogVersion": "2026.11.25", "dateReleased": "2026-11-25T12:00:00Z", "count": 1,
		"vulnerabilities": [{"cveID": "CVE-2026-35189", "vendorProject": "OpenSSL", "product": "OpenSSL", "vulnerabilityName": "OpenSSL test", "dateAdded": "2026-11-25",
		"shortDescription": "x", "requiredAction": "patch", "dueDate": "2026-12-15", "knownRansomwareCampaignUse": "Known", "notes": ""}]}`
		if _, err := im.ImportKEV(ctx, strings.NewReader(kevJSON), feeds.SourceState{Origin: "test"}); err != nil {
			t.Fatal(err)
		}
		if _, err := f.srv.ReassessExploitation(ctx); err != nil {
			t.Fatal(err)
		}
		set(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC))
		ep = f.createPlan("emergency plan", alice, rollout.PlanSpec{Strategy: "standard", Emergency: true})
		if ep.Required != 1 || !ep.Emergency {
			t.Fatalf("emergency plan: %+v", ep)
		}
		est := status(ep.ID)
		for _, h := range est.Hosts {
			for _, tg := range h.Targets {
				if tg.Source != "openssl" {
					t.Errorf("emergency plan takes %s on %s", tg.Name, h.Hostname)
				}
			}
			for _, c := range h.Closes {
				if !c.Emergency || c.Priority != risk.P1 {
					t.Errorf("emergency plan closes %+v", c)
				}
			}
		}
		if code, body := f.do("POST", api.Prefix+"/plans/"+ep.ID+"/approve", bob, nil); code != 200 || !strings.Contains(string(body), `"state":"approved"`) {
			t.Fatalf("one approval: %d %s", code, body)
		}
		if code, body := f.do("POST", api.Prefix+"/plans/"+ep.ID+"/start", bob, nil); code != 200 {
			t.Fatalf("start: %d %s", code, body)
		}
		step(f.srv)
		em := run(hosts["stg-1"], job.Succeeded)
		if !em.RebootBefore.IsZero() || !em.NotAfter.Equal(now().Add(30*time.Minute)) {
			t.Errorf("emergency manifest outside a window: not after %s, reboot before %s", em.NotAfter, em.RebootBefore)
		}
	}) {
		return
	}

	if !f.chapter("tampered job", func(t *testing.T) {
		// The agent refuses it and says so; the server records the refusal
		// as a failure of that job.
		step(f.srv)
		set(now().Add(2 * time.Hour)) // the emergency strategy still bakes staging
		step(f.srv)
		jobs := poll(hosts["prod-1"])
		if len(jobs) != 1 {
			t.Fatalf("prod-1 holds %d jobs", len(jobs))
		}
		tampered := jobs[0]
		tampered.Manifest = json.RawMessage(strings.Replace(string(tampered.Manifest), `"install":[`, `"install":[{"name":"netcat-traditional","version":"1.10-47"},`, 1))
		if _, err := job.Verify(tampered, hosts["prod-1"].key, hosts["prod-1"].id, now()); err == nil {
			t.Fatal("a tampered manifest verifies")
		}
		var claimed struct {
			JobID   string `json:"job_id"`
			Attempt int    `json:"attempt"`
		}
		json.Unmarshal(tampered.Manifest, &claimed)
		if code, body := reportJob(hosts["prod-1"], job.Result{JobID: claimed.JobID, Attempt: claimed.Attempt, Outcome: job.Failed, Refused: true, Reason: "refused: signature does not verify"}); code != 200 {
			t.Fatalf("refusal: %d %s", code, body)
		}
		step(f.srv)
		est := status(ep.ID)
		if est.Rollout.State != rollout.Halted || est.Rings[1].Outcomes[job.Failed] != 1 {
			t.Errorf("after the refusal: %+v %+v", est.Rollout, est.Rings)
		}
		es, _ := f.db.Audit.Entries(ctx)
		if !slices.ContainsFunc(es, func(e audit.Entry) bool { return e.Action == "job.refused" && e.Object == "job/"+claimed.JobID }) {
			t.Error("the refusal is not audited")
		}
	}) {
		return
	}

	if !f.chapter("pausing and aborting", func(t *testing.T) {
		// A job dispatched but not yet fetched is not handed out after the
		// abort.
		set(time.Date(2026, 11, 25, 22, 5, 0, 0, time.UTC))
		tp = f.createPlan("third plan", alice, spec)
		f.approveAndStart(tp.ID, alice, bob)
		if code, body := f.do("POST", api.Prefix+"/plans/"+tp.ID+"/pause", alice, nil); code != 200 || !strings.Contains(string(body), `"state":"paused"`) {
			t.Fatalf("pause: %d %s", code, body)
		}
		step(f.srv)
		if st := status(tp.ID); st.Rings[0].InFlight != 0 {
			t.Errorf("a paused rollout started a job: %+v", st.Rings)
		}
		if code, body := f.do("POST", api.Prefix+"/plans/"+tp.ID+"/promote", alice, nil); code != 409 || !strings.Contains(errOf(body).Error, "not awaiting promotion") {
			t.Errorf("promote a paused rollout: %d %s", code, body)
		}
		f.do("POST", api.Prefix+"/plans/"+tp.ID+"/resume", alice, nil)
		if err := f.srv.StepRollouts(ctx, rollout.Fence{}); err != nil { // no poll: the job waits undelivered
			t.Fatal(err)
		}
		if st := status(tp.ID); st.Rings[0].InFlight != 1 {
			t.Fatalf("after resume: %+v", st.Rings)
		}
		if code, body := f.do("POST", api.Prefix+"/plans/"+tp.ID+"/abort", bob, nil); code != 200 || !strings.Contains(string(body), `"state":"aborted"`) {
			t.Fatalf("abort: %d %s", code, body)
		}
		if jobs := poll(hosts["stg-1"]); len(jobs) != 0 {
			t.Errorf("a job of an aborted rollout was handed out")
		}
		if code, _ := f.do("POST", api.Prefix+"/plans/"+tp.ID+"/abort", bob, nil); code != 409 {
			t.Errorf("abort twice: %d", code)
		}
		// Each is audited with the person's actor.
		es, _ := f.db.Audit.Entries(ctx)
		for _, a := range []string{"rollout.pause", "rollout.resume", "rollout.abort"} {
			if !slices.ContainsFunc(es, func(e audit.Entry) bool {
				return e.Action == a && e.Object == "plan/"+tp.ID && strings.HasPrefix(e.Actor, "api:")
			}) {
				t.Errorf("no audit entry %s with a person's actor", a)
			}
		}
	}) {
		return
	}

	if !f.chapter("manual promotion", func(t *testing.T) {
		// After staging the rollout waits for a person.
		cp := f.createPlan("careful plan", alice, rollout.PlanSpec{Strategy: "careful", Selector: rollout.Selector{Types: []patch.Type{patch.Security}}})
		f.approveAndStart(cp.ID, alice, bob)
		step(f.srv)
		run(hosts["stg-1"], job.Succeeded)
		step(f.srv)
		step(f.srv)
		if st := status(cp.ID); st.Rollout.State != rollout.AwaitingPromotion || st.Rings[1].InFlight != 0 {
			t.Fatalf("after staging with manual promotion: %+v %+v", st.Rollout, st.Rings)
		}
		if code, body := f.do("POST", api.Prefix+"/plans/"+cp.ID+"/promote", bob, nil); code != 200 || !strings.Contains(string(body), `"state":"running","ring":1`) {
			t.Fatalf("promote: %d %s", code, body)
		}
		step(f.srv)
		if st := status(cp.ID); st.Rings[1].InFlight != 1 {
			t.Errorf("after the promotion: %+v", st.Rings)
		}
		f.do("POST", api.Prefix+"/plans/"+cp.ID+"/abort", bob, nil)
		if promoted := f.notifications(viewer, cp.ID); !slices.ContainsFunc(promoted, func(n rollout.Notification) bool {
			return n.Event == "rollout.ring_promoted" && strings.Contains(string(n.Payload), `"by":"api:`)
		}) {
			t.Errorf("no notification of the promotion by a person: %+v", promoted)
		}
	}) {
		return
	}

	if !f.chapter("an empty ring is passed over", func(t *testing.T) {
		// No staging host in the plan: with manual promotion it starts
		// in prod, instead of waiting for a promotion of an empty ring.
		ep := f.createPlan("prod-only plan", alice, rollout.PlanSpec{Strategy: "careful", Selector: rollout.Selector{Types: []patch.Type{patch.Security}, Hosts: []string{"prod-1", "prod-2"}}})
		if ep.Rings[0].Hosts != 0 || ep.Rings[1].Hosts != 2 {
			t.Fatalf("plan rings: %+v", ep.Rings)
		}
		f.approveAndStart(ep.ID, alice, bob)
		step(f.srv)
		if st := status(ep.ID); st.Rollout.State != rollout.Running || st.Rollout.Ring != 1 || st.Rings[1].InFlight != 1 {
			t.Fatalf("started without staging hosts: %+v %+v", st.Rollout, st.Rings)
		}
		f.do("POST", api.Prefix+"/plans/"+ep.ID+"/abort", bob, nil)
	}) {
		return
	}

	f.chapter("a rejected plan", func(t *testing.T) {
		// It neither takes approvals nor starts.
		fourth := f.createPlan("fourth plan", alice, spec)
		if code, body := f.do("POST", api.Prefix+"/plans/"+fourth.ID+"/reject", bob, map[string]string{"comment": "not this week"}); code != 200 || !strings.Contains(string(body), `"state":"rejected"`) {
			t.Fatalf("reject: %d %s", code, body)
		}
		for _, a := range []string{"approve", "start"} {
			if code, _ := f.do("POST", api.Prefix+"/plans/"+fourth.ID+"/"+a, alice, nil); code != 409 {
				t.Errorf("%s a rejected plan: %d", a, code)
			}
		}
	})
}

// TestLongPollDrains: a long poll returns when the server drains
// (a graceful shutdown is not held up by agents waiting for jobs), and a
// bad wait is refused.
func TestLongPollDrains(t *testing.T) {
	f := newFixture(t, "sqlite", nil)
	e := f.enroll(f.token(auth.KindEnrollment, auth.Agent, -1, time.Time{}), factsOf("h", "m-h"))
	if code, body := f.do("GET", api.Prefix+"/agent/jobs?wait=61", e.Credential, nil); code != 400 || errOf(body).Field != "query.wait" {
		t.Errorf("wait=61: %d %s", code, body)
	}
	start := time.Now()
	done := make(chan int, 1)
	go func() {
		code, _ := f.do("GET", api.Prefix+"/agent/jobs?wait=60", e.Credential, nil)
		done <- code
	}()
	time.Sleep(300 * time.Millisecond)
	select {
	case <-done:
		t.Fatal("the long poll returned before anything happened")
	default:
	}
	f.srv.Drain()
	select {
	case code := <-done:
		if code != 200 || time.Since(start) > 10*time.Second {
			t.Errorf("drained poll: %d after %s", code, time.Since(start))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the long poll outlived the drain")
	}
}

// TestRolloutAcrossReplicas: two server replicas on one PostgreSQL
// database. Agents long-poll the replica that does not lead (wait 30 s):
// the leader's dispatches reach them within a second. The leader stops
// in the middle of the ring; the other replica takes over and completes
// the rollout; every host ran exactly one job.
func TestRolloutAcrossReplicas(t *testing.T) {
	dsn := pgtest.Fresh(t)
	ctx := context.Background()
	start := func(name string) *replica {
		return startReplica(t, dsn, name, server.Config{LeaseTTL: time.Second, ElectEvery: 200 * time.Millisecond,
			StepEvery: 100 * time.Millisecond, PollEvery: 100 * time.Millisecond})
	}
	a, b := start("a"), start("b")
	leads := func(r *replica) bool { return r.leads() }
	deadline := time.Now().Add(10 * time.Second)
	for !leads(a) && !leads(b) {
		if time.Now().After(deadline) {
			t.Fatal("no replica leads")
		}
		time.Sleep(50 * time.Millisecond)
	}
	leader, other := a, b
	if leads(b) {
		leader, other = b, a
	}
	f := &fixture{t: t, db: other.srv.DB(), srv: other.srv, url: other.url}
	admin := f.api(auth.Admin)
	f.apply(admin, policyapi.ApplyRequest{Files: []policyapi.PolicyFile{{Name: "p.yaml", Content: `apiVersion: patchbay/v1
kind: HostGroup
metadata: {name: fleet}
spec: {selector: env=prod}
---
apiVersion: patchbay/v1
kind: RolloutStrategy
metadata: {name: one-at-a-time}
spec:
  rings: [{name: all, hostGroup: fleet, maxConcurrency: 1, errorThreshold: 0}]
  reboot: never
  promote: automatic
`}}})
	enroll := f.token(auth.KindEnrollment, auth.Agent, -1, time.Time{})
	type simAgent struct {
		name, id, cred string
		key            ed25519.PublicKey
		jobs           atomic.Int32
	}
	var agents []*simAgent
	for i := range 4 {
		facts := factsOf(fmt.Sprintf("web-%d", i), fmt.Sprintf("m-web-%d", i))
		facts.Labels = map[string]string{"env": "prod"}
		e := f.enroll(enroll, facts)
		k, _ := base64.StdEncoding.DecodeString(e.JobKey)
		ups := []patch.Update{{Ecosystem: "Debian:12", Name: "libssl3", SourceName: "openssl", Installed: "3.0.15-1~deb12u1", Candidate: "3.0.17-1~deb12u2",
			Origin: "bookworm-security", Pocket: "security", CVEs: []string{}, Types: []patch.Type{patch.Security}, Cycle: "system"}}
		rep := report(facts, []inventory.Package{}, true)
		rep.UpdatesHash, rep.Updates = fleet.UpdatesHash(ups), &ups
		if code, body := f.do("POST", api.Prefix+"/agent/checkin", e.Credential, rep); code != 200 {
			t.Fatalf("check-in: %d %s", code, body)
		}
		agents = append(agents, &simAgent{name: facts.Hostname, id: e.HostID, cred: e.Credential, key: k})
	}
	code, body := f.do("POST", api.Prefix+"/plans", admin, rollout.PlanSpec{Strategy: "one-at-a-time", Selector: rollout.Selector{Types: []patch.Type{patch.Security}}})
	if code != 201 {
		t.Fatalf("plan: %d %s", code, body)
	}
	var st rolloutapi.PlanStatus
	f.decode(body, &st)
	id := st.Plan.ID
	f.do("POST", api.Prefix+"/plans/"+id+"/approve", admin, nil)

	// The agents long-poll the replica that does not lead; each reports
	// once it holds a job, the first two slowly enough for the leader to
	// die meanwhile.
	received := make(chan time.Time, 16)
	actx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	for i, ag := range agents {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for actx.Err() == nil {
				req, _ := http.NewRequestWithContext(actx, "GET", other.url+api.Prefix+"/agent/jobs?wait=30", nil)
				req.Header.Set("Authorization", "Bearer "+ag.cred)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					continue
				}
				var jr api.JobsResponse
				json.NewDecoder(resp.Body).Decode(&jr)
				resp.Body.Close()
				for _, sj := range jr.Jobs {
					m, err := job.Verify(sj, ag.key, ag.id, time.Now())
					if err != nil {
						t.Errorf("%s: %v", ag.name, err)
						return
					}
					ag.jobs.Add(1)
					received <- time.Now()
					if i == 1 {
						time.Sleep(1500 * time.Millisecond) // the leader dies while this one runs
					}
					b, _ := json.Marshal(job.Result{JobID: m.JobID, Attempt: m.Attempt, Outcome: job.Succeeded})
					rq, _ := http.NewRequestWithContext(actx, "POST", other.url+api.Prefix+"/agent/jobs/result", bytes.NewReader(b))
					rq.Header.Set("Authorization", "Bearer "+ag.cred)
					if r2, err := http.DefaultClient.Do(rq); err == nil {
						r2.Body.Close()
					}
				}
			}
		}()
	}
	time.Sleep(500 * time.Millisecond) // the polls are waiting
	started := time.Now()
	if code, body := f.do("POST", api.Prefix+"/plans/"+id+"/start", admin, nil); code != 200 {
		t.Fatalf("start: %d %s", code, body)
	}
	select {
	case at := <-received:
		d := at.Sub(started)
		t.Logf("rollout start → a job on an agent long-polling the other replica: %s", d)
		if d > 2*time.Second {
			t.Errorf("the first job reached a waiting agent on the other replica after %s; want within a second or so", d)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no job reached a long-polling agent")
	}
	<-received // the second host's job: it reports slowly
	leader.cancel()
	<-leader.done
	deadline = time.Now().Add(30 * time.Second)
	for {
		code, body := f.do("GET", api.Prefix+"/plans/"+id, admin, nil)
		var s rolloutapi.PlanStatus
		f.decode(body, &s)
		if code == 200 && s.Rollout.State == rollout.Completed {
			if s.Rings[0].Outcomes[job.Succeeded] != 4 {
				t.Errorf("outcomes: %+v", s.Rings[0])
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the rollout did not complete after the leader died: %+v %+v", s.Rollout, s.Rings)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !leads(other) {
		t.Error("the other replica does not lead")
	}
	stop()
	wg.Wait()
	for _, ag := range agents {
		if n := ag.jobs.Load(); n != 1 {
			t.Errorf("%s got %d jobs", ag.name, n)
		}
	}
}
