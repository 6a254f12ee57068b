package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/patchbay/patchbay/api/policyapi"
	"github.com/patchbay/patchbay/api/rolloutapi"
	"github.com/patchbay/patchbay/fleet"
	"github.com/patchbay/patchbay/internal/debroot"
	"github.com/patchbay/patchbay/internal/rollouttest"
	"github.com/patchbay/patchbay/internal/sharedtest"
	"github.com/patchbay/patchbay/rollout"
)

// autopilotPolicy: every patch is approved on its own (no person in the
// loop); the nightly schedule patches the security updates (pcre2 aside)
// in the nightly window: staging, a ten-minute bake, then production with
// a health check a file on the host breaks; the kev-lane schedule takes
// the emergency lane at once (its own window, once a year, is never
// reached here).
const autopilotPolicy = `---
apiVersion: patchbay/v1
kind: MaintenanceWindow
metadata: {name: new-year}
spec: {schedule: "0 3 1 1 *", duration: 1h, timeZone: UTC, hostGroups: [staging, production]}
---
apiVersion: patchbay/v1
kind: ApprovalRule
metadata: {name: autopilot}
spec: {approve: automatic}
---
apiVersion: patchbay/v1
kind: RolloutStrategy
metadata: {name: autopilot}
spec:
  rings:
    - {name: staging, hostGroup: staging, maxConcurrency: 1, errorThreshold: 0, bake: 10m}
    - name: prod
      hostGroup: production
      maxConcurrency: 2
      errorThreshold: 0
      healthChecks:
        - command: [test, "!", -e, /etc/patchbay-broken]
  reboot: never
  promote: automatic
  jobTimeout: 30m
---
apiVersion: patchbay/v1
kind: RolloutStrategy
metadata: {name: at-once}
spec:
  rings: [{name: all, share: 100%, maxConcurrency: 2, errorThreshold: 0}]
  reboot: never
  promote: automatic
---
apiVersion: patchbay/v1
kind: PatchSchedule
metadata: {name: nightly}
spec:
  selector: {types: [security]}
  exclude: {packages: ["pcre2"]}
  strategy: autopilot
  windows: [nightly]
  minAge: {security: 0d, bugfix: 7d}
---
apiVersion: patchbay/v1
kind: PatchSchedule
metadata: {name: kev-lane}
spec:
  selector: {types: [security]}
  strategy: at-once
  windows: [new-year]
  emergency: true
`

// TestScheduleOnDebianHosts: the autopilot on debootstrapped bookworm
// hosts with their agents and a server process, time driven through the
// clock file, no person approving or starting anything:
//   - the nightly window opens a minute after the start: its plan patches
//     staging, bakes, patches production; the findings close;
//   - the next night's opening patches nothing;
//   - a KEV entry added to the feed (pcre2, internet-facing hosts) sends
//     its patch through the emergency lane at once, outside the window;
//   - a new host whose health check fails halts the third night's
//     rollout; the fourth night skips it and patches another new host.
func TestScheduleOnDebianHosts(t *testing.T) {
	names := []string{"stg-1", "prod-1", "prod-2", "prod-3"}
	roots := map[string]string{}
	for i, n := range names {
		roots[n] = debroot.Bookworm(t)
		os.WriteFile(filepath.Join(roots[n], "etc/hostname"), []byte(n+"\n"), 0o644)
		os.WriteFile(filepath.Join(roots[n], "etc/machine-id"), []byte(fmt.Sprintf("%032x\n", 0xa070+i)), 0o444)
	}
	debianFeed := filepath.Join(sharedtest.Dir(t, "feeds/osv/Debian"), "all.zip")
	bin := filepath.Join(t.TempDir(), "patchbay")
	if out, err := exec.Command("go", "build", "-tags", "patchbaytest", "-o", bin, "../cmd/patchbay").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	initial := map[string]map[string][2]string{}
	for n, root := range roots {
		initial[n] = updates(t, root)
		if len(initial[n]) < 3 || initial[n]["perl-base"][1] == "" || initial[n]["libpcre2-8-0"][1] == "" {
			t.Fatalf("%s: the test needs pending security updates of perl-base and libpcre2-8-0: %v", n, initial[n])
		}
	}
	kevDir := filepath.Join(t.TempDir(), "kev")
	os.MkdirAll(kevDir, 0o755)
	r := &rig{t: t, bin: bin, data: t.TempDir(), srvLog: &lockedBuffer{}, agents: map[string]*agentProc{},
		serverFlags: []string{"--feeds-dir", kevDir, "--emergency-every", "1s", "--agent-stale", "240h"}}
	r.clock = filepath.Join(r.data, "clock")
	r.listen = freePort(t)
	r.url = "http://" + r.listen
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) { io.Copy(io.Discard, req.Body) }))
	defer hook.Close()
	r.hookURL = hook.URL
	t0 := time.Date(2026, 11, 24, 21, 59, 0, 0, time.UTC) // a minute before the nightly window
	night := func(n int) time.Time { return time.Date(2026, 11, 24+n-1, 22, 0, 30, 0, time.UTC) }
	r.setClock(t0)
	r.cli("feeds", "import", debianFeed)
	r.admin = r.cli("admin", "token", "create", "--role", "admin", "--name", "e2e")
	enroll := r.cli("admin", "token", "create", "--enrollment", "--uses", "4")
	r.startServer()
	defer func() {
		if r.server.ProcessState == nil {
			r.server.Process.Signal(syscall.SIGTERM)
			r.server.Wait()
		}
	}()
	r.must("POST", "/policy/apply", r.admin, policyapi.ApplyRequest{Files: []policyapi.PolicyFile{
		{Name: "rollout.yaml", Content: rollouttest.Documents("HostGroup/staging", "HostGroup/production", "MaintenanceWindow/nightly")},
		{Name: "autopilot.yaml", Content: autopilotPolicy}}}, nil)

	hostIDs := func() map[string]fleet.HostSummary {
		var hl struct {
			Hosts []fleet.HostSummary `json:"hosts"`
		}
		r.must("GET", "/hosts", r.admin, nil, &hl)
		out := map[string]fleet.HostSummary{}
		for _, h := range hl.Hosts {
			out[h.ID] = h
		}
		return out
	}
	// agent starts a host's agent and waits for its updates to reach the
	// server; stg-1 and prod-1 face the internet (KEV findings go to the
	// emergency lane there), prod-2 and prod-3 do not.
	agent := func(n string) {
		t.Helper()
		a := &agentProc{name: n, root: roots[n], state: filepath.Join(t.TempDir(), "agent"), log: &lockedBuffer{}}
		r.agents[n] = a
		env, exposure := "prod", "internal"
		if n == "stg-1" {
			env = "staging"
		}
		if n == "stg-1" || n == "prod-1" {
			exposure = "internet"
		}
		r.startAgent(a, enroll, r.url, "env="+env, "exposure="+exposure)
		r.waitFor(n+" to report its updates", 3*time.Minute, func() bool {
			b, err := os.ReadFile(filepath.Join(a.state, "credential.json"))
			if err != nil {
				return false
			}
			var c struct {
				HostID string `json:"host_id"`
			}
			json.Unmarshal(b, &c)
			a.id = c.HostID
			return c.HostID != "" && hostIDs()[c.HostID].Updates > 0
		})
	}
	nameOf := func(id string) string {
		for n, a := range r.agents {
			if a.id == id {
				return n
			}
		}
		return id
	}
	schedule := func(name string) rolloutapi.ScheduleStatus {
		t.Helper()
		var st rolloutapi.ScheduleStatus
		r.must("GET", "/schedules/"+name, r.admin, nil, &st)
		return st
	}
	// runOf waits for the schedule's run of an opening.
	runOf := func(name, opening string) rollout.Run {
		t.Helper()
		var run rollout.Run
		r.waitFor(name+" to run "+opening, time.Minute, func() bool {
			for _, ru := range schedule(name).Runs {
				if ru.Opening == opening {
					run = ru
					return true
				}
			}
			return false
		})
		return run
	}
	ended := func(id string) rolloutapi.PlanStatus {
		t.Helper()
		var st rolloutapi.PlanStatus
		r.waitFor("rollout "+id+" to end", 4*time.Minute, func() bool {
			st = r.status(id)
			return st.Rollout != nil && (st.Rollout.State == rollout.Completed || st.Rollout.State == rollout.Halted)
		})
		return st
	}
	hostsOf := func(st rolloutapi.PlanStatus) string {
		var out []string
		for _, h := range st.Hosts {
			out = append(out, nameOf(h.ID)+":"+string(h.Outcome))
		}
		slices.Sort(out)
		return strings.Join(out, " ")
	}
	agent("stg-1")
	agent("prod-1")
	var first string

	if !r.chapter("the window opens: staging, bake, production", func(t *testing.T) {
		r.setClock(night(1))
		run := runOf("nightly", "nightly@2026-11-24T22:00:00Z")
		if run.Plan == "" {
			t.Fatal("the first night planned nothing")
		}
		first = run.Plan
		st := r.status(first)
		if st.Plan.CreatedBy != "server:e2e" || st.Plan.StartedBy != "server:e2e" || len(st.Plan.AutoRules) != 1 || st.Plan.AutoRules[0] != "autopilot" {
			t.Errorf("not the autopilot's own: %+v", st.Plan)
		}
		for _, h := range st.Hosts {
			for _, tg := range h.Targets {
				if strings.HasPrefix(tg.Name, "libpcre2") {
					t.Errorf("%s: pcre2 is excluded: %+v", nameOf(h.ID), tg)
				}
			}
		}
		r.waitFor("staging to patch and bake", 3*time.Minute, func() bool {
			st := r.status(first)
			return st.Rollout != nil && st.Rollout.State == rollout.Baking
		})
		r.setClock(night(1).Add(11 * time.Minute))
		st = ended(first)
		if st.Rollout.State != rollout.Completed || hostsOf(st) != "prod-1:succeeded stg-1:succeeded" {
			t.Fatalf("first rollout: %s %s", st.Rollout.State, hostsOf(st))
		}
		for _, n := range []string{"stg-1", "prod-1"} {
			for pkg, v := range initial[n] {
				want := v[1]
				if strings.HasPrefix(pkg, "libpcre2") {
					want = v[0]
				}
				if got := debroot.Query(t, roots[n], pkg); got != want {
					t.Errorf("%s: %s is %s, want %s", n, pkg, got, want)
				}
			}
		}
		// The findings close once the agents report their inventory:
		// what is left open is pcre2's.
		r.waitFor("the findings to close", 2*time.Minute, func() bool {
			var page fleet.FindingPage
			r.must("GET", "/findings?limit=500", r.admin, nil, &page)
			for _, f := range page.Findings {
				if f.Package != "pcre2" {
					return false
				}
			}
			return len(page.Findings) > 0
		})
	}) {
		return
	}

	if !r.chapter("a KEV entry: the emergency lane at once, outside the window", func(t *testing.T) {
		r.setClock(night(2).Add(-10 * time.Hour)) // Wednesday noon
		kev := `{"title": "CISA KEV", "catalogVersion": "2026.11.25", "dateReleased": "2026-11-25T10:00:00Z", "count": 1,
		  "vulnerabilities": [{"cveID": "CVE-2026-103111", "vendorProject": "PCRE", "product": "PCRE2", "vulnerabilityName": "PCRE2 test", "dateAdded": "2026-11-25",
		  "shortDescription": "x", "requiredAction": "patch", "dueDate": "2026-12-15", "knownRansomwareCampaignUse": "Unknown", "notes": ""}]}`
		os.WriteFile(filepath.Join(kevDir, "known_exploited_vulnerabilities.json"), []byte(kev), 0o644)
		r.must("POST", "/feeds/refresh", r.admin, nil, nil)
		// Each host's finding goes to the lane as it is decided: one plan
		// or two, each host in exactly one.
		emergencyHosts := func() (string, []string) {
			var hosts, plans []string
			for _, ru := range schedule("kev-lane").Runs {
				if !strings.HasPrefix(ru.Opening, "emergency:") || ru.Plan == "" {
					continue
				}
				st := r.status(ru.Plan)
				if !st.Plan.Emergency {
					t.Errorf("plan %s of the lane is not an emergency plan", ru.Plan)
				}
				plans = append(plans, ru.Plan)
				hosts = append(hosts, strings.Fields(hostsOf(st))...)
			}
			slices.Sort(hosts)
			return strings.Join(hosts, " "), plans
		}
		r.waitFor("the emergency plans of both hosts", time.Minute, func() bool {
			h, _ := emergencyHosts()
			return strings.Count(h, ":") == 2
		})
		_, plans := emergencyHosts()
		for _, id := range plans {
			if st := ended(id); st.Rollout.State != rollout.Completed {
				t.Fatalf("emergency rollout %s: %+v %s", id, st.Rollout, hostsOf(st))
			}
		}
		if h, _ := emergencyHosts(); h != "prod-1:succeeded stg-1:succeeded" {
			t.Errorf("emergency lane: %s", h)
		}
		for _, n := range []string{"stg-1", "prod-1"} {
			if got := debroot.Query(t, roots[n], "libpcre2-8-0"); got != initial[n]["libpcre2-8-0"][1] {
				t.Errorf("%s: libpcre2-8-0 %s", n, got)
			}
		}
		time.Sleep(2 * time.Second) // two emergency evaluations more: no other plan
		if h, more := emergencyHosts(); len(more) != len(plans) {
			t.Errorf("%d emergency plans, then %d: %s", len(plans), len(more), h)
		}
	}) {
		return
	}

	if !r.chapter("the second night patches nothing", func(t *testing.T) {
		r.setClock(night(2))
		if run := runOf("nightly", "nightly@2026-11-25T22:00:00Z"); run.Plan != "" {
			t.Errorf("the second night planned %s: %s", run.Plan, hostsOf(r.status(run.Plan)))
		}
	}) {
		return
	}

	var third string
	if !r.chapter("a failing health check halts the third night", func(t *testing.T) {
		os.WriteFile(filepath.Join(roots["prod-2"], "etc/patchbay-broken"), nil, 0o644)
		agent("prod-2")
		r.setClock(night(3))
		run := runOf("nightly", "nightly@2026-11-26T22:00:00Z")
		third = run.Plan
		if third == "" {
			_, out, _ := r.pb(r.admin, "schedules", "show", "nightly")
			t.Fatalf("the third night planned nothing:\n%s\n%s", out, tail(r.srvLog.String(), 20))
		}
		st := ended(third)
		if st.Rollout.State != rollout.Halted || hostsOf(st) != "prod-2:rolled_back" {
			t.Fatalf("third rollout: %+v %s", st.Rollout, hostsOf(st))
		}
	}) {
		return
	}

	r.chapter("the fourth night skips the halted host, patches the new one", func(t *testing.T) {
		agent("prod-3")
		// The third night's window is still open: the fourth is next.
		pv := schedule("nightly").Openings[1]
		if pv.Key() != "nightly@2026-11-27T22:00:00Z" || pv.Preview.LeftOut[rollout.LeftHalted] != 1 || pv.Preview.Hosts != 1 {
			t.Errorf("preview of the fourth night: %+v", pv)
		}
		r.setClock(night(4))
		run := runOf("nightly", "nightly@2026-11-27T22:00:00Z")
		st := ended(run.Plan)
		if st.Rollout.State != rollout.Completed || hostsOf(st) != "prod-3:succeeded" {
			t.Fatalf("fourth rollout: %+v %s", st.Rollout, hostsOf(st))
		}
		if got := debroot.Query(t, roots["prod-3"], "perl-base"); got != initial["prod-3"]["perl-base"][1] {
			t.Errorf("prod-3: perl-base %s", got)
		}
		if got := debroot.Query(t, roots["prod-2"], "perl-base"); got != initial["prod-2"]["perl-base"][0] {
			t.Errorf("prod-2 (halted, rolled back): perl-base %s", got)
		}
		for _, a := range r.agents {
			for k, n := range jobsStarted(a.log.String()) {
				if n != 1 {
					t.Errorf("%s started %s %d times", a.name, k, n)
				}
			}
		}
	})
}
