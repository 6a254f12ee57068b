package server_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
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
	"github.com/patchbay/patchbay/fleet"
	"github.com/patchbay/patchbay/internal/rollouttest"
	"github.com/patchbay/patchbay/inventory"
	"github.com/patchbay/patchbay/job"
	"github.com/patchbay/patchbay/kinds"
	"github.com/patchbay/patchbay/patch"
	"github.com/patchbay/patchbay/rollout"
	"github.com/patchbay/patchbay/server"
)

// nightlySchedule runs every security update in the shared nightly
// window under the shared standard strategy; bug fixes wait a week.
const nightlySchedule = `apiVersion: patchbay/v1
kind: PatchSchedule
metadata: {name: nightly-security}
spec:
  selector: {types: [security, bugfix]}
  strategy: standard
  windows: [nightly]
  minAge: {bugfix: 7d}
`

func TestScheduleSQLite(t *testing.T)   { testSchedule(t, "sqlite") }
func TestSchedulePostgres(t *testing.T) { testSchedule(t, "postgres") }

// testSchedule: a PatchSchedule plans its window's opening once (two
// servers evaluating at once on one database), waits for the approvals
// the rules ask, starts by itself, halts on a failure; the next opening
// skips the halted rollout's hosts and patches a new one; pausing stops
// it, audited; the preview says why hosts and packages are left out.
func testSchedule(t *testing.T, backend string) {
	t.Parallel()
	var clock atomic.Pointer[time.Time]
	set := func(t time.Time) { clock.Store(&t) }
	day := time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)
	set(day.Add(12 * time.Hour))
	now := func() time.Time { return *clock.Load() }
	hooks := []server.Webhook{{Name: "ops", URL: "http://127.0.0.1:18201/hook", Format: "json"}}
	mod := func(c *server.Config) {
		c.Now = now
		c.Webhooks = hooks
	}
	f := newFixture(t, backend, mod)
	ctx := context.Background()
	// A second server on the same database evaluates at the same time.
	srv2, err := server.New(server.Config{DB: f.db, Kinds: kinds.All(), ReplicaID: "two", JobKey: testJobKey, Now: now, Webhooks: hooks, MaxBody: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	viewer, admin := f.api(auth.Viewer), f.api(auth.Admin)
	alice, bob := f.api(auth.Operator), f.api(auth.Operator)
	f.apply(admin, policyapi.ApplyRequest{Files: []policyapi.PolicyFile{{Name: "rollout.yaml", Content: rollouttest.Policy}, {Name: "schedule.yaml", Content: nightlySchedule}}})

	enrollTok := f.token(auth.KindEnrollment, auth.Agent, -1, time.Time{})
	hosts := map[string]*simHost{}
	enroll := func(name, env string, bugfix bool) {
		facts := factsOf(name, "m-"+name)
		facts.Labels = map[string]string{"env": env}
		e := f.enroll(enrollTok, facts)
		k, _ := base64.StdEncoding.DecodeString(e.JobKey)
		ups := []patch.Update{{Ecosystem: "Debian:12", Name: "libssl3", SourceName: "openssl", Installed: "3.0.15-1~deb12u1", Candidate: "3.0.17-1~deb12u2",
			Origin: "bookworm-security", Pocket: "security", CVEs: []string{}, Types: []patch.Type{patch.Security}, Cycle: "system"}}
		if bugfix {
			ups = append(ups, patch.Update{Ecosystem: "Debian:12", Name: "tzdata", Installed: "2024a-0+deb12u1", Candidate: "2025b-0+deb12u1",
				Origin: "bookworm-updates", Pocket: "updates", CVEs: []string{}, Types: []patch.Type{patch.BugFix}, Cycle: "system"})
		}
		rep := report(facts, []inventory.Package{}, true)
		rep.UpdatesHash, rep.Updates = fleet.UpdatesHash(ups), &ups
		if code, body := f.do("POST", api.Prefix+"/agent/checkin", e.Credential, rep); code != 200 {
			t.Fatalf("check-in %s: %d %s", name, code, body)
		}
		hosts[name] = &simHost{name: name, id: e.HostID, cred: e.Credential, facts: facts, key: k}
	}
	enroll("stg-1", "staging", false)
	enroll("prod-1", "prod", true)
	enroll("prod-2", "prod", false)
	enroll("prod-0", "prod", false) // its agent is never heard from again
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
	// The agents that run poll (prod-0 does not), then the leader steps.
	alive := func() {
		f.t.Helper()
		for _, h := range hosts {
			if h.name != "prod-0" {
				poll(h)
			}
		}
		if err := f.srv.FlushCheckins(ctx); err != nil {
			f.t.Fatal(err)
		}
	}
	step := func() {
		f.t.Helper()
		alive()
		if err := f.srv.StepRollouts(ctx, rollout.Fence{}); err != nil {
			f.t.Fatal(err)
		}
	}
	run := func(h *simHost, o job.Outcome) {
		f.t.Helper()
		jobs := poll(h)
		if len(jobs) != 1 {
			f.t.Fatalf("%s holds %d jobs, want 1", h.name, len(jobs))
		}
		m, err := job.Verify(jobs[0], h.key, h.id, now())
		if err != nil {
			f.t.Fatalf("%s: %v", h.name, err)
		}
		if code, body := f.do("POST", api.Prefix+"/agent/jobs/result", h.cred, job.Result{JobID: m.JobID, Attempt: m.Attempt, Outcome: o, Started: now(), Finished: now()}); code != 200 {
			f.t.Fatalf("report %s: %d %s", h.name, code, body)
		}
	}
	evaluate := func(srv *server.Server) server.ScheduleResult {
		f.t.Helper()
		r, err := srv.EvaluateSchedules(ctx, rollout.Fence{})
		if err != nil {
			f.t.Fatal(err)
		}
		return r
	}
	show := func() rolloutapi.ScheduleStatus {
		f.t.Helper()
		code, body := f.do("GET", api.Prefix+"/schedules/nightly-security", viewer, nil)
		if code != 200 {
			f.t.Fatalf("show: %d %s", code, body)
		}
		var st rolloutapi.ScheduleStatus
		f.decode(body, &st)
		return st
	}
	planOf := func(id string) rolloutapi.PlanStatus {
		f.t.Helper()
		_, body := f.do("GET", api.Prefix+"/plans/"+id+"?hosts=1", viewer, nil)
		var st rolloutapi.PlanStatus
		f.decode(body, &st)
		return st
	}
	var first, second string

	if !f.chapter("preview", func(t *testing.T) {
		set(day.Add(21 * time.Hour)) // prod-0 was last seen at noon
		alive()
		if r := evaluate(f.srv); r.Planned+r.Empty+r.Started != 0 {
			t.Errorf("before the window: %+v", r)
		}
		st := show()
		if len(st.Openings) != server.PreviewOpenings || st.Openings[0].Key() != "nightly@2026-11-24T22:00:00Z" || st.Openings[4].Key() != "nightly@2026-11-28T22:00:00Z" {
			t.Fatalf("openings: %+v", st.Openings)
		}
		pv := st.Openings[0].Preview
		if pv.Hosts != 3 || pv.Packages != 3 || pv.LeftOut[rollout.LeftNoAgent] != 1 || pv.LeftOut[rollout.LeftAgeGate] != 1 || len(pv.LeftOut) != 2 {
			t.Errorf("preview: %+v", pv)
		}
		code, body := f.do("GET", api.Prefix+"/schedules/nope", viewer, nil)
		if code != 404 || !strings.Contains(errOf(body).Error, "no such PatchSchedule: nope") {
			t.Errorf("unknown schedule: %d %s", code, body)
		}
	}) {
		return
	}

	if !f.chapter("the opening is planned once", func(t *testing.T) {
		set(day.Add(22*time.Hour + time.Minute))
		alive()
		var wg sync.WaitGroup
		var planned atomic.Int32
		for _, srv := range []*server.Server{f.srv, srv2} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r, err := srv.EvaluateSchedules(ctx, rollout.Fence{})
				if err != nil {
					t.Error(err)
				}
				planned.Add(int32(r.Planned))
			}()
		}
		wg.Wait()
		if planned.Load() != 1 {
			t.Fatalf("planned %d plans, want 1", planned.Load())
		}
		if r := evaluate(f.srv); r.Planned+r.Empty != 0 {
			t.Errorf("again: %+v", r)
		}
		st := show()
		if st.LastRun == nil || st.LastRun.Opening != "nightly@2026-11-24T22:00:00Z" || st.LastRun.Plan == "" || !st.Openings[0].Ran {
			t.Fatalf("runs: %+v %+v", st.LastRun, st.Openings[0])
		}
		first = st.LastRun.Plan
		p := planOf(first)
		// Production takes two people (the rule): the plan waits, and says so.
		if p.Plan.Schedule != "nightly-security" || p.Plan.State != rollout.AwaitingApproval || p.Plan.Required != 2 || len(p.Hosts) != 3 || p.Plan.CreatedBy != "server:test" && p.Plan.CreatedBy != "server:two" {
			t.Fatalf("plan: %+v", p.Plan)
		}
		for _, h := range p.Hosts {
			if h.Hostname == "prod-0" || len(h.Targets) != 1 || h.Targets[0].Name != "libssl3" || h.Window != "nightly" {
				t.Errorf("host %s: %+v", h.Hostname, h.PlanHost)
			}
		}
		if ns := f.notifications(viewer, first); len(ns) != 1 || ns[0].Event != "plan.awaiting_approval" {
			t.Errorf("notifications: %+v", ns)
		}
		if r := evaluate(f.srv); r.Started != 0 {
			t.Errorf("started without approvals: %+v", r)
		}
	}) {
		return
	}

	if !f.chapter("approved, it starts by itself and halts on a failure", func(t *testing.T) {
		f.do("POST", api.Prefix+"/plans/"+first+"/approve", alice, nil)
		f.do("POST", api.Prefix+"/plans/"+first+"/approve", bob, nil)
		if r := evaluate(srv2); r.Started != 1 {
			t.Fatalf("after the approvals: %+v", r)
		}
		step()
		run(hosts["stg-1"], job.Succeeded)
		step()
		if p := planOf(first); p.Rollout == nil || p.Rollout.State != rollout.Baking {
			t.Fatalf("after staging: %+v", p.Rollout)
		}
		set(day.Add(23*time.Hour + 5*time.Minute))
		step()
		run(hosts["prod-1"], job.Failed)
		step()
		if p := planOf(first); p.Rollout.State != rollout.Halted {
			t.Fatalf("after a failure: %+v", p.Rollout)
		}
	}) {
		return
	}

	if !f.chapter("the next opening skips the halted hosts", func(t *testing.T) {
		enroll("prod-3", "prod", false)
		set(day.Add(46*time.Hour + time.Minute))
		alive()
		if r := evaluate(f.srv); r.Planned != 1 {
			t.Fatalf("second opening: %+v", r)
		}
		st := show()
		second = st.LastRun.Plan
		p := planOf(second)
		if len(p.Hosts) != 1 || p.Hosts[0].Hostname != "prod-3" {
			t.Errorf("second plan: %+v", p.Hosts)
		}
		// The halted rollout's three hosts are left out until a person
		// resumes or aborts it.
		if pv := st.Openings[0].Preview; pv.LeftOut[rollout.LeftHalted] != 3 || pv.LeftOut[rollout.LeftRunning] != 1 {
			t.Errorf("third opening's preview: %+v", pv)
		}
	}) {
		return
	}

	if !f.chapter("pause and resume", func(t *testing.T) {
		code, body := f.do("POST", api.Prefix+"/schedules/nightly-security/pause", alice, map[string]string{})
		if code != 400 || !strings.Contains(errOf(body).Error, "reason: missing") {
			t.Errorf("pause without a reason: %d %s", code, body)
		}
		if code, _ := f.do("POST", api.Prefix+"/schedules/nightly-security/pause", viewer, map[string]string{"reason": "x"}); code != 403 {
			t.Errorf("pause by a viewer: %d", code)
		}
		code, body = f.do("POST", api.Prefix+"/schedules/nightly-security/pause", alice, map[string]string{"reason": "change freeze CHG-1"})
		var sum rolloutapi.ScheduleSummary
		f.decode(body, &sum)
		if code != 200 || sum.Paused == nil || sum.Paused.Reason != "change freeze CHG-1" {
			t.Fatalf("pause: %d %s", code, body)
		}
		if code, _ := f.do("POST", api.Prefix+"/schedules/nightly-security/pause", alice, map[string]string{"reason": "again"}); code != 409 {
			t.Errorf("paused twice: %d", code)
		}
		// The aborted first rollout frees its hosts; paused, nothing is planned.
		f.do("POST", api.Prefix+"/plans/"+first+"/abort", alice, nil)
		set(day.Add(70*time.Hour + time.Minute))
		alive()
		if r := evaluate(f.srv); r.Planned+r.Empty != 0 {
			t.Errorf("paused: %+v", r)
		}
		_, body = f.do("GET", api.Prefix+"/schedules", viewer, nil)
		var list rolloutapi.ScheduleList
		f.decode(body, &list)
		if len(list.Schedules) != 1 || list.Schedules[0].Paused == nil || list.Schedules[0].Paused.By == "" {
			t.Errorf("list: %s", body)
		}
		if code, body := f.do("POST", api.Prefix+"/schedules/nightly-security/resume", bob, map[string]string{"reason": "freeze over"}); code != 200 {
			t.Fatalf("resume: %d %s", code, body)
		}
		// Resumed inside the opening: planned now, without prod-3 (its
		// update waits in the second plan) and with the freed hosts but
		// stg-1, whose job succeeded and whose agent has not reported since.
		if r := evaluate(f.srv); r.Planned != 1 {
			t.Fatalf("resumed: %+v", r)
		}
		st := show()
		p := planOf(st.LastRun.Plan)
		if pv := st.Openings[0].Preview; pv.LeftOut[rollout.LeftUnreported] != 1 || pv.LeftOut[rollout.LeftRunning] != 3 {
			t.Errorf("preview: %+v", pv)
		}
		var names []string
		for _, h := range p.Hosts {
			names = append(names, h.Hostname)
		}
		slices.Sort(names)
		if strings.Join(names, ",") != "prod-1,prod-2" {
			t.Errorf("third plan: %v", names)
		}
	}) {
		return
	}

	f.chapter("audited", func(t *testing.T) {
		_, body := f.do("GET", api.Prefix+"/audit", admin, nil)
		n := map[string]int{}
		sc := bufio.NewScanner(bytes.NewReader(body))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var e audit.Entry
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				t.Fatal(err)
			}
			if strings.HasPrefix(e.Actor, "server:") && e.Action == "plan.create" {
				n["auto plan.create"]++
			}
			if strings.HasPrefix(e.Action, "schedule.") {
				n[e.Action]++
			}
			if e.Action == "rollout.start" && strings.HasPrefix(e.Actor, "server:") {
				n["auto rollout.start"]++
			}
		}
		if n["auto plan.create"] != 3 || n["schedule.pause"] != 1 || n["schedule.resume"] != 1 || n["auto rollout.start"] != 1 {
			t.Errorf("audit: %v", n)
		}
	})
}
