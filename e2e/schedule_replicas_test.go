package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/patchbay/patchbay/api"
	"github.com/patchbay/patchbay/api/policyapi"
	"github.com/patchbay/patchbay/api/rolloutapi"
	"github.com/patchbay/patchbay/fleet"
	"github.com/patchbay/patchbay/internal/pgtest"
	"github.com/patchbay/patchbay/internal/rollouttest"
	"github.com/patchbay/patchbay/inventory"
	"github.com/patchbay/patchbay/patch"
)

// replicaPolicy: the shared groups and nightly window, a rule that
// approves every patch on its own, a one-ring strategy and the schedule.
const replicaPolicy = `---
apiVersion: patchbay/v1
kind: ApprovalRule
metadata: {name: everything-automatic}
spec: {approve: automatic}
---
apiVersion: patchbay/v1
kind: RolloutStrategy
metadata: {name: one-ring}
spec:
  rings: [{name: all, share: 100%, maxConcurrency: 1, errorThreshold: 0}]
  reboot: never
  promote: automatic
---
apiVersion: patchbay/v1
kind: PatchSchedule
metadata: {name: nightly}
spec:
  selector: {types: [security]}
  strategy: one-ring
  windows: [nightly]
`

type replicaProc struct {
	name, url string
	cmd       *exec.Cmd
	log       *lockedBuffer
}

// TestScheduleAcrossReplicasSIGKILL: two server processes on one
// PostgreSQL database evaluate the same PatchSchedule; the window opens,
// the leader plans and starts the opening and is SIGKILLed; the other
// replica takes over, then it is SIGKILLed too and the first, restarted,
// leads. Whoever leads, the opening has exactly one plan.
func TestScheduleAcrossReplicasSIGKILL(t *testing.T) {
	dsn := pgtest.Fresh(t)
	bin := filepath.Join(t.TempDir(), "patchbay")
	if out, err := exec.Command("go", "build", "-tags", "patchbaytest", "-o", bin, "../cmd/patchbay").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	data := t.TempDir()
	clock := filepath.Join(data, "clock")
	r := &rig{t: t, bin: bin, data: data, clock: clock, srvLog: &lockedBuffer{}}
	r.setClock(time.Date(2026, 11, 24, 21, 0, 0, 0, time.UTC))
	cli := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(bin, append([]string{"--data-dir", data, "--db", dsn}, args...)...).Output()
		if err != nil {
			t.Fatalf("patchbay %s: %v", strings.Join(args, " "), err)
		}
		return strings.TrimSpace(string(out))
	}
	r.admin = cli("admin", "token", "create", "--role", "admin", "--name", "e2e")
	enroll := cli("admin", "token", "create", "--enrollment", "--uses", "3")
	// Both replicas sign with one job key, as a deployment's do.
	jobKey := filepath.Join(data, "job.key")
	start := func(name, listen string) *replicaProc {
		t.Helper()
		p := &replicaProc{name: name, url: "http://" + listen, log: &lockedBuffer{}}
		p.cmd = exec.Command(bin, "--data-dir", filepath.Join(data, name), "--db", dsn, "server", "--listen", listen, "--plain-http", "--replica-id", name,
			"--job-key", jobKey, "--step-interval", "100ms", "--lease-ttl", "1s", "--agent-stale", "24h")
		p.cmd.Env = append(os.Environ(), "PATCHBAY_TEST_CLOCK="+clock)
		p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
		if err := p.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if p.cmd.ProcessState == nil {
				p.cmd.Process.Signal(syscall.SIGTERM)
				p.cmd.Wait()
			}
		})
		return p
	}
	leads := func(p *replicaProc) bool {
		resp, err := http.Get(p.url + "/readyz")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var v struct{ Leader bool }
		json.NewDecoder(resp.Body).Decode(&v)
		return v.Leader
	}
	kill := func(p *replicaProc) {
		t.Helper()
		if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		p.cmd.Wait()
	}
	os.MkdirAll(filepath.Join(data, "a"), 0o700)
	os.MkdirAll(filepath.Join(data, "b"), 0o700)
	up := func(p *replicaProc) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			resp, err := http.Get(p.url + "/healthz")
			if err == nil {
				resp.Body.Close()
				return
			}
			if time.Now().After(deadline) || p.cmd.ProcessState != nil {
				t.Fatalf("replica %s does not serve: %v\n%s", p.name, err, tail(p.log.String(), 30))
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	// The first start makes the job key the second reads.
	a := start("a", "127.0.0.1:18210")
	up(a)
	b := start("b", "127.0.0.1:18211")
	up(b)
	var leader, other *replicaProc
	r.waitFor("a replica to lead", 30*time.Second, func() bool {
		switch {
		case leads(a):
			leader, other = a, b
		case leads(b):
			leader, other = b, a
		}
		return leader != nil
	})
	r.url = other.url
	r.must("POST", "/policy/apply", r.admin, policyapi.ApplyRequest{Files: []policyapi.PolicyFile{
		{Name: "rollout.yaml", Content: rollouttest.Documents("HostGroup/staging", "HostGroup/production", "MaintenanceWindow/nightly")},
		{Name: "autopilot.yaml", Content: replicaPolicy}}}, nil)
	// Three hosts report a security update (their agents stay quiet: no
	// job runs; what counts here is the plans).
	for i := range 3 {
		facts := fleet.Facts{Hostname: fmt.Sprintf("web-%d", i), MachineID: fmt.Sprintf("m-web-%d", i), OSID: "debian", OSVersion: "12", Ecosystem: "Debian:12",
			AgentVersion: "test", Labels: map[string]string{"env": "prod"}}
		var e api.EnrollResponse
		r.must("POST", "/agent/enroll", enroll, api.EnrollRequest{Facts: facts}, &e)
		ups := []patch.Update{{Ecosystem: "Debian:12", Name: "libssl3", SourceName: "openssl", Installed: "3.0.15-1~deb12u1", Candidate: "3.0.17-1~deb12u2",
			Origin: "bookworm-security", Pocket: "security", CVEs: []string{}, Types: []patch.Type{patch.Security}, Cycle: "system"}}
		pkgs := []inventory.Package{}
		rep := api.Report{CollectedAt: time.Now().UTC(), Facts: facts, InventoryHash: fleet.InventoryHash(pkgs), Inventory: &pkgs, UpdatesHash: fleet.UpdatesHash(ups), Updates: &ups}
		r.must("POST", "/agent/checkin", e.Credential, rep, nil)
	}
	plans := func() []rolloutapi.PlanStatus {
		t.Helper()
		var resp struct {
			Plans []rolloutapi.PlanStatus `json:"plans"`
		}
		r.must("GET", "/plans", r.admin, nil, &resp)
		return resp.Plans
	}
	if n := len(plans()); n != 0 {
		t.Fatalf("%d plans before the window", n)
	}
	// The window opens: the leader plans, starts, and dies. From now the
	// clock runs (lease expiry reads it too).
	opened, real := time.Date(2026, 11, 24, 22, 0, 30, 0, time.UTC), time.Now()
	r.setClock(opened)
	stop := make(chan struct{})
	ticked := make(chan struct{})
	go func() {
		defer close(ticked)
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			tmp := clock + ".tick"
			os.WriteFile(tmp, []byte(opened.Add(time.Since(real)).Format(time.RFC3339Nano)), 0o644)
			os.Rename(tmp, clock)
		}
	}()
	defer func() { close(stop); <-ticked }()
	r.waitFor("the opening's plan", 20*time.Second, func() bool { return len(plans()) > 0 })
	kill(leader)
	r.waitFor("the other replica to lead", 20*time.Second, func() bool { return leads(other) })
	time.Sleep(time.Second) // ten of its ticks
	check := func(when string) {
		t.Helper()
		ps := plans()
		if len(ps) != 1 {
			t.Fatalf("%s: %d plans, want 1: %+v\nleader log:\n%s\nother log:\n%s", when, len(ps), ps, tail(leader.log.String(), 20), tail(other.log.String(), 20))
		}
		p := ps[0]
		if p.Plan.Schedule != "nightly" || p.Plan.Opening != "nightly@2026-11-24T22:00:00Z" || p.Rollout == nil || len(p.Plan.AutoRules) != 1 {
			t.Errorf("%s: plan %+v rollout %+v", when, p.Plan, p.Rollout)
		}
	}
	check("after the leader was SIGKILLed")
	// The killed replica comes back; the one leading now is SIGKILLed.
	again := start(leader.name, strings.TrimPrefix(leader.url, "http://"))
	kill(other)
	r.url = again.url
	deadline := time.Now().Add(20 * time.Second)
	for !leads(again) {
		if time.Now().After(deadline) {
			t.Fatalf("the restarted replica does not lead:\n%s", tail(again.log.String(), 30))
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(time.Second)
	check("after a second leader change")
	var st rolloutapi.ScheduleStatus
	r.must("GET", "/schedules/nightly", r.admin, nil, &st)
	if len(st.Runs) != 1 || st.Runs[0].Plan == "" {
		t.Errorf("runs: %+v", st.Runs)
	}
	if !bytes.Contains([]byte(leader.log.String()+other.log.String()+again.log.String()), []byte("scheduled plan created")) {
		t.Error("no replica logged the scheduled plan")
	}
}
