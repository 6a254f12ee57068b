package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/patchbay/patchbay/api/policyapi"
	"github.com/patchbay/patchbay/fleet"
	"github.com/patchbay/patchbay/internal/debroot"
	"github.com/patchbay/patchbay/internal/promtest"
	"github.com/patchbay/patchbay/internal/sharedtest"
	"github.com/patchbay/patchbay/job"
	"github.com/patchbay/patchbay/monitor"
	"github.com/patchbay/patchbay/rollout"
)

// gatedStrategy: a canary ring of one host of two, then the rest; while
// the canary bakes, its error ratio in Prometheus must stay under 5 % (two
// measurements a minute apart); a halt reverts the hosts it patched.
const gatedStrategy = `apiVersion: patchbay/v1
kind: RolloutStrategy
metadata: {name: gated}
spec:
  rings:
    - {name: canary, share: 50%, maxConcurrency: 1, errorThreshold: 0, bake: 10m}
    - {name: rest, share: 100%, maxConcurrency: 1, errorThreshold: 0}
  reboot: never
  promote: automatic
  rollbackOnHalt: true
  gates:
    prometheus:
      - name: error-rate
        query: 'app_error_ratio{host="{{ .Host }}"}'
        condition: "< 0.05"
        phases: [bake]
        interval: 1m
        count: 2
`

// TestRolloutGateRevertsDebianHost: two debootstrapped bookworm hosts
// with real agents, a server process told of a real Prometheus that
// scrapes an exporter per host. The canary is patched for real by apt
// (perl-base to the bookworm-security candidate); its error ratio rises
// after the patch; the prometheus gate halts the bake; the revert job
// (rollbackOnHalt) puts perl-base back at its previous version, as dpkg
// in the root says; the other host gets no job.
func TestRolloutGateRevertsDebianHost(t *testing.T) {
	names := []string{"app-1", "app-2"}
	roots := map[string]string{}
	exps := map[string]*promtest.Exporter{}
	var all []*promtest.Exporter
	for i, n := range names {
		roots[n] = debroot.Bookworm(t)
		os.WriteFile(filepath.Join(roots[n], "etc/hostname"), []byte(n+"\n"), 0o644)
		os.WriteFile(filepath.Join(roots[n], "etc/machine-id"), []byte(fmt.Sprintf("%032x\n", 0xe2f0+i)), 0o444)
		exps[n] = promtest.NewExporter(t, n, 0.01)
		all = append(all, exps[n])
	}
	prom := promtest.Prometheus(t, all)
	bin := filepath.Join(t.TempDir(), "patchbay")
	if out, err := exec.Command("go", "build", "-tags", "patchbaytest", "-o", bin, "../cmd/patchbay").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	initial := map[string]map[string][2]string{}
	for n, root := range roots {
		initial[n] = updates(t, root)
		if initial[n]["perl-base"][1] == "" {
			t.Fatalf("%s: the test needs a pending security update of perl-base: %v", n, initial[n])
		}
	}

	r := &rig{t: t, bin: bin, data: t.TempDir(), srvLog: &lockedBuffer{}, agents: map[string]*agentProc{},
		hookURL: "http://127.0.0.1:9/never", serverFlags: []string{"--prometheus-url", prom.URL}}
	r.clock = filepath.Join(r.data, "clock")
	r.listen = fmt.Sprintf("127.0.0.1:%d", promtest.Port(t))
	r.url = "http://" + r.listen
	now := time.Now().UTC().Truncate(time.Second) // Prometheus answers at the real time
	r.setClock(now)
	r.cli("feeds", "import", filepath.Join(sharedtest.Dir(t, "feeds/osv/Debian"), "all.zip"))
	r.admin = r.cli("admin", "token", "create", "--role", "admin", "--name", "e2e")
	alice := r.cli("admin", "token", "create", "--role", "operator", "--name", "alice")
	enroll := r.cli("admin", "token", "create", "--enrollment", "--uses", "2")
	r.startServer()
	defer func() { r.server.Process.Signal(syscall.SIGTERM); r.server.Wait() }()
	r.must("POST", "/policy/apply", r.admin, policyapi.ApplyRequest{Files: []policyapi.PolicyFile{{Name: "gated.yaml", Content: gatedStrategy}}}, nil)
	for _, n := range names {
		a := &agentProc{name: n, root: roots[n], state: filepath.Join(t.TempDir(), "agent"), log: &lockedBuffer{}}
		r.agents[n] = a
		r.startAgent(a, enroll, r.url, "env=app") // no window covers them: any time
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("%s's agent log:\n%s", a.name, tail(a.log.String(), 20))
			}
		})
	}
	byID := map[string]string{}
	r.waitFor("two agents to report their updates", 40*time.Second, func() bool {
		for _, a := range r.agents {
			cred, err := os.ReadFile(filepath.Join(a.state, "credential.json"))
			var c struct {
				HostID string `json:"host_id"`
			}
			if err != nil || json.Unmarshal(cred, &c) != nil {
				return false
			}
			a.id, byID[c.HostID] = c.HostID, a.name
		}
		var hl struct {
			Hosts []fleet.HostSummary `json:"hosts"`
		}
		r.must("GET", "/hosts", r.admin, nil, &hl)
		return len(hl.Hosts) == 2 && hl.Hosts[0].Updates > 0 && hl.Hosts[1].Updates > 0
	})
	mc := &monitor.Client{PrometheusURL: prom.URL}
	waitRatio := func(host string, want float64) {
		r.waitFor("prometheus to scrape "+host, 20*time.Second, func() bool {
			ss, err := mc.Query(context.Background(), fmt.Sprintf(`app_error_ratio{host=%q}`, host))
			return err == nil && len(ss) == 1 && ss[0].Value == want
		})
	}
	for _, n := range names {
		waitRatio(n, 0.01)
	}
	outcomes := func(id string) map[string]job.Outcome {
		out := map[string]job.Outcome{}
		for _, h := range r.status(id).Hosts {
			out[byID[h.ID]] = h.Outcome
		}
		return out
	}

	p := r.create(alice, rollout.PlanSpec{Strategy: "gated", Selector: rollout.Selector{Packages: []string{"perl-base"}}})
	if p.State != rollout.Approved {
		r.must("POST", "/plans/"+p.ID+"/approve", alice, nil, nil)
	}
	r.must("POST", "/plans/"+p.ID+"/start", alice, nil, nil)
	var canary, other string
	r.waitFor("the canary to patch perl-base", 3*time.Minute, func() bool {
		for n, o := range outcomes(p.ID) {
			if o != "" {
				canary = n
			}
		}
		return canary != ""
	})
	for _, n := range names {
		if n != canary {
			other = n
		}
	}
	if o := outcomes(p.ID)[canary]; o != job.Succeeded {
		t.Fatalf("%s: %s\n%s", canary, o, tail(r.agents[canary].log.String(), 20))
	}
	if v := debroot.Query(t, roots[canary], "perl-base"); v != initial[canary]["perl-base"][1] {
		t.Fatalf("%s: perl-base %s after the patch, want %s", canary, v, initial[canary]["perl-base"][1])
	}

	// The patched host's error ratio rises; the bake's measurements halt.
	exps[canary].Set(0.5)
	waitRatio(canary, 0.5)
	for i := 1; i <= 3 && r.status(p.ID).Rollout.State != rollout.Halted; i++ {
		r.setClock(now.Add(time.Duration(i) * time.Minute))
		time.Sleep(time.Second) // a few scheduler steps
	}
	r.waitFor("the gate to halt the rollout", 30*time.Second, func() bool { return r.status(p.ID).Rollout.State == rollout.Halted })
	st := r.status(p.ID)
	if st.Rollout.Halt == nil || st.Rollout.Halt.Kind != "prometheus" || !strings.Contains(st.Rollout.Why, "< 0.05") {
		t.Fatalf("halt: %s %+v", st.Rollout.Why, st.Rollout.Halt)
	}

	// The revert job runs on the canary: dpkg says perl-base is back.
	r.waitFor("the canary's revert", 3*time.Minute, func() bool { return outcomes(p.ID)[canary] == job.RolledBack })
	if v := debroot.Query(t, roots[canary], "perl-base"); v != initial[canary]["perl-base"][0] {
		t.Errorf("%s: perl-base %s after the revert, want the previous %s", canary, v, initial[canary]["perl-base"][0])
	}
	if started := jobsStarted(r.agents[canary].log.String()); len(started) != 2 || started[p.ID+"/"+r.agents[canary].id+"#2"] != 1 {
		t.Errorf("%s's agent started %v, want its job and the revert (attempt 2)", canary, started)
	}
	if o := outcomes(p.ID)[other]; o != "" {
		t.Errorf("%s: %s, want no job", other, o)
	}
	if started := jobsStarted(r.agents[other].log.String()); len(started) != 0 {
		t.Errorf("%s started jobs: %v", other, started)
	}
	if v := debroot.Query(t, roots[other], "perl-base"); v != initial[other]["perl-base"][0] {
		t.Errorf("%s: perl-base %s, want it untouched at %s", other, v, initial[other]["perl-base"][0])
	}
}
