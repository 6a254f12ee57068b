// Package e2e holds end-to-end tests of patchbay's processes: a server on
// loopback with the embedded database and agents on real Debian roots.
package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/patchbay/patchbay/api"
	"github.com/patchbay/patchbay/api/policyapi"
	"github.com/patchbay/patchbay/api/rolloutapi"
	"github.com/patchbay/patchbay/fleet"
	"github.com/patchbay/patchbay/internal/debroot"
	"github.com/patchbay/patchbay/internal/rollouttest"
	"github.com/patchbay/patchbay/internal/sharedtest"
	"github.com/patchbay/patchbay/job"
	"github.com/patchbay/patchbay/patch"
	"github.com/patchbay/patchbay/rollout"
)

// guardedStrategy is the test's own strategy beside the shared policy
// (rollouttest.Policy): standard's rings, with a health check on prod that
// a file on the host breaks, and no reboot.
const guardedStrategy = `apiVersion: patchbay/v1
kind: RolloutStrategy
metadata: {name: guarded}
spec:
  rings:
    - {name: staging, hostGroup: staging, maxConcurrency: 1, errorThreshold: 0, bake: 1h}
    - name: prod
      hostGroup: production
      maxConcurrency: 1
      errorThreshold: 0
      healthChecks:
        - command: [test, "!", -e, /etc/patchbay-broken]
  reboot: never
  promote: automatic
  jobTimeout: 30m
`

// rig is the fleet: the binary, the server process, agents on roots.
type rig struct {
	t       *testing.T
	bin     string
	data    string
	clock   string
	url     string
	listen  string
	server  *exec.Cmd
	srvLog  *lockedBuffer
	admin   string
	tamper  atomic.Bool
	proxy   *httptest.Server
	agents  map[string]*agentProc
	hookMu  sync.Mutex
	hooked  []string
	hookURL string
	// serverFlags are more flags of the server process.
	serverFlags []string
}

type agentProc struct {
	name, root, state string
	cmd               *exec.Cmd
	log               *lockedBuffer
	id                string
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (r *rig) setClock(at time.Time) {
	r.t.Helper()
	tmp := r.clock + ".tmp"
	if err := os.WriteFile(tmp, []byte(at.UTC().Format(time.RFC3339Nano)), 0o644); err != nil {
		r.t.Fatal(err)
	}
	if err := os.Rename(tmp, r.clock); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rig) cli(args ...string) string {
	r.t.Helper()
	cmd := exec.Command(r.bin, append([]string{"--data-dir", r.data}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		r.t.Fatalf("patchbay %s: %v\n%s", strings.Join(args, " "), err, errb.String())
	}
	return strings.TrimSpace(out.String())
}

// pb runs a client command of the CLI with a token.
func (r *rig) pb(token string, args ...string) (int, string, string) {
	r.t.Helper()
	cmd := exec.Command(r.bin, args...)
	cmd.Env = append(os.Environ(), "PATCHBAY_SERVER="+r.url, "PATCHBAY_TOKEN="+token)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		r.t.Fatal(err)
	}
	return code, out.String(), errb.String()
}

func (r *rig) startServer() {
	r.t.Helper()
	cmd := exec.Command(r.bin, "--data-dir", r.data, "server", "--listen", r.listen, "--plain-http", "--replica-id", "e2e",
		"--step-interval", "200ms", "--agent-stale", "24h", "--notify-backoff", "1s", "--checkin-interval", "5s",
		"--webhook", "ops="+r.hookURL, "--webhook", "chat=slack+"+r.hookURL)
	cmd.Args = append(cmd.Args, r.serverFlags...)
	cmd.Env = append(os.Environ(), "PATCHBAY_TEST_CLOCK="+r.clock)
	cmd.Stdout, cmd.Stderr = r.srvLog, r.srvLog
	if err := cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	r.server = cmd
	r.waitFor("the server to lead", 30*time.Second, func() bool {
		resp, err := http.Get(r.url + "/readyz")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var v struct{ Leader bool }
		json.NewDecoder(resp.Body).Decode(&v)
		return v.Leader
	})
}

func (r *rig) killServer() {
	r.t.Helper()
	if err := r.server.Process.Signal(syscall.SIGKILL); err != nil {
		r.t.Fatal(err)
	}
	r.server.Wait()
}

func (r *rig) waitFor(what string, timeout time.Duration, cond func() bool) {
	r.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			r.t.Fatalf("timed out waiting for %s\nserver log tail:\n%s", what, tail(r.srvLog.String(), 30))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// call sends a JSON request to the server.
func (r *rig) call(method, path, token string, body, out any) (int, string) {
	r.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, r.url+api.Prefix+path, rd)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(b, out); err != nil {
			r.t.Fatalf("%s %s: %v: %s", method, path, err, b)
		}
	}
	return resp.StatusCode, string(b)
}

func (r *rig) must(method, path, token string, body, out any) {
	r.t.Helper()
	if code, b := r.call(method, path, token, body, out); code >= 300 {
		r.t.Fatalf("%s %s: %d %s", method, path, code, b)
	}
}

// create creates a plan as token.
func (r *rig) create(token string, spec rollout.PlanSpec) *rollout.Plan {
	r.t.Helper()
	var st rolloutapi.PlanStatus // a fresh one: Plan is a pointer
	r.must("POST", "/plans", token, spec, &st)
	return st.Plan
}

// chapter runs one step of the story as the subtest name, the rig
// reporting to it meanwhile. It returns false when the step stopped short
// (t.Fatal, t.FailNow): the later steps build on what it leaves, and the
// caller returns. A step that only reports errors (t.Error) lets the story
// go on. Processes the story keeps (the server, agents) are started
// outside the chapters: a chapter's cleanups run when it ends.
func (r *rig) chapter(name string, step func(t *testing.T)) bool {
	parent := r.t
	finished := false
	parent.Run(name, func(t *testing.T) {
		r.t = t
		defer func() { r.t = parent }()
		step(t)
		finished = true
	})
	return finished
}

func (r *rig) status(id string) rolloutapi.PlanStatus {
	r.t.Helper()
	var st rolloutapi.PlanStatus
	r.must("GET", "/plans/"+id+"?hosts=1", r.admin, nil, &st)
	return st
}

func (r *rig) startAgent(a *agentProc, enroll, server string, labels ...string) {
	r.t.Helper()
	args := []string{"agent", "--server", server, "--enroll-token", enroll, "--root", a.root, "--state-dir", a.state,
		"--interval", "5s", "--job-wait", "2s", "--allow-check-commands", "--reboot-command", "false"}
	for _, l := range labels {
		args = append(args, "--label", l)
	}
	cmd := exec.Command(r.bin, args...)
	cmd.Env = append(os.Environ(), "PATCHBAY_TEST_CLOCK="+r.clock)
	cmd.Stdout, cmd.Stderr = a.log, a.log
	if err := cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	a.cmd = cmd
	r.t.Cleanup(func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() })
}

func freePort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// updates lists a root's pending updates as apt sees them: name →
// installed, candidate.
func updates(t *testing.T, root string) map[string][2]string {
	out, err := exec.Command("chroot", root, "apt-get", "-s", "-q", "upgrade").Output()
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`^Inst (\S+) \[([^\]]+)\] \(([^ ]+) `)
	m := map[string][2]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if g := re.FindStringSubmatch(sc.Text()); g != nil {
			m[g[1]] = [2]string{g[2], g[3]}
		}
	}
	return m
}

// jobsStarted counts the "job started" lines of an agent's log by job
// and attempt.
func jobsStarted(log string) map[string]int {
	re := regexp.MustCompile(`msg="job started" job_id=(\S+) plan_id=\S+ rollout_id=\S+ host=\S+ attempt=(\d+)`)
	out := map[string]int{}
	for _, g := range re.FindAllStringSubmatch(log, -1) {
		out[g[1]+"#"+g[2]]++
	}
	return out
}

// TestRolloutOnDebianHosts: three debootstrapped bookworm hosts (staging,
// prod-1, prod-2), each with its own agent process, a server process on
// loopback with the embedded database, real bookworm-security updates, and
// time driven through a clock file:
//   - an emergency plan (a KEV-listed pcre2 CVE on internet-facing hosts)
//     runs outside the window after one approval; prod-2's job is tampered
//     with in transit: its agent refuses it and the server records it;
//   - a perl-base plan waits outside the window, then runs; a post-check
//     fails on prod-2, which rolls back (dpkg-query) and halts the rollout;
//   - a plan of every security patch runs, the server is SIGKILLed in the
//     middle of the prod ring and restarted, the rollout completes, every
//     host is at the candidate versions, the findings are remediated, and
//     no host ran a job twice.
//
// Each step is a chapter (a subtest) on the fleet set up once; a chapter
// that stops short ends the story.
func TestRolloutOnDebianHosts(t *testing.T) {
	roots := map[string]string{}
	for i, n := range []string{"stg-1", "prod-1", "prod-2"} {
		roots[n] = debroot.Bookworm(t)
		// Each host its own name and machine-id.
		os.WriteFile(filepath.Join(roots[n], "etc/hostname"), []byte(n+"\n"), 0o644)
		os.WriteFile(filepath.Join(roots[n], "etc/machine-id"), []byte(fmt.Sprintf("%032x\n", 0xe2e0+i)), 0o444)
	}
	debianFeed := filepath.Join(sharedtest.Dir(t, "feeds/osv/Debian"), "all.zip")
	bin := filepath.Join(t.TempDir(), "patchbay")
	// -tags patchbaytest: only such a build reads PATCHBAY_TEST_CLOCK.
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

	r := &rig{t: t, bin: bin, data: t.TempDir(), srvLog: &lockedBuffer{}, agents: map[string]*agentProc{}}
	r.clock = filepath.Join(r.data, "clock")
	r.listen = freePort(t)
	r.url = "http://" + r.listen
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.hookMu.Lock()
		r.hooked = append(r.hooked, req.Header.Get("X-Patchbay-Event")+" "+string(b))
		r.hookMu.Unlock()
	}))
	defer hook.Close()
	r.hookURL = hook.URL
	t0 := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC) // Tuesday noon: the nightly window is closed
	r.setClock(t0)

	// Feeds: Debian's advisories, and a KEV catalog listing pcre2's CVE.
	r.cli("feeds", "import", debianFeed)
	kevDir := filepath.Join(t.TempDir(), "kev")
	os.MkdirAll(kevDir, 0o755)
	kev := `{"title": "CISA KEV", "catalogVersion": "2026.11.24", "dateReleased": "2026-11-24T10:00:00Z", "count": 1,
	  "vulnerabilities": [{"cveID": "CVE-2026-103111", "vendorProject": "PCRE", "product": "PCRE2", "vulnerabilityName": "PCRE2 test", "dateAdded": "2026-11-24",
	  "shortDescription": "x", "requiredAction": "patch", "dueDate": "2026-12-15", "knownRansomwareCampaignUse": "Unknown", "notes": ""}]}`
	os.WriteFile(filepath.Join(kevDir, "known_exploited_vulnerabilities.json"), []byte(kev), 0o644)
	r.cli("feeds", "import", kevDir)
	r.admin = r.cli("admin", "token", "create", "--role", "admin", "--name", "e2e")
	alice := r.cli("admin", "token", "create", "--role", "operator", "--name", "alice")
	bob := r.cli("admin", "token", "create", "--role", "operator", "--name", "bob")
	enroll := r.cli("admin", "token", "create", "--enrollment", "--uses", "3")
	r.startServer()
	defer func() {
		if r.server.ProcessState == nil {
			r.server.Process.Signal(syscall.SIGTERM)
			r.server.Wait()
		}
	}()
	r.must("POST", "/policy/apply", r.admin, policyapi.ApplyRequest{Files: []policyapi.PolicyFile{
		{Name: "rollout.yaml", Content: rollouttest.Policy}, {Name: "guarded.yaml", Content: guardedStrategy}}}, nil)

	// prod-2 talks to the server through a proxy that can tamper with the
	// jobs it relays (a package added to a signed manifest).
	target, _ := url.Parse(r.url)
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.ModifyResponse = func(resp *http.Response) error {
		if !r.tamper.Load() || resp.Request.URL.Path != api.Prefix+"/agent/jobs" || resp.StatusCode != 200 {
			return nil
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var jr api.JobsResponse
		if json.Unmarshal(b, &jr) == nil {
			for i := range jr.Jobs {
				jr.Jobs[i].Manifest = json.RawMessage(strings.Replace(string(jr.Jobs[i].Manifest), `"install":[`, `"install":[{"name":"netcat-traditional","version":"1.10-47"},`, 1))
			}
			b, _ = json.Marshal(jr)
		}
		resp.Body = io.NopCloser(bytes.NewReader(b))
		resp.ContentLength = int64(len(b))
		resp.Header.Set("Content-Length", fmt.Sprint(len(b)))
		return nil
	}
	rp.ErrorLog = log.New(io.Discard, "", 0) // the server is killed once: its relayed polls break
	r.proxy = httptest.NewServer(rp)
	defer r.proxy.Close()

	for _, n := range []string{"stg-1", "prod-1", "prod-2"} {
		a := &agentProc{name: n, root: roots[n], state: filepath.Join(t.TempDir(), "agent"), log: &lockedBuffer{}}
		r.agents[n] = a
		env := "prod"
		if n == "stg-1" {
			env = "staging"
		}
		srv := r.url
		if n == "prod-2" {
			srv = r.proxy.URL
		}
		r.startAgent(a, enroll, srv, "env="+env, "exposure=internet")
	}
	hostIDs := func() map[string]fleet.HostSummary {
		var hl struct {
			Hosts []fleet.HostSummary `json:"hosts"`
		}
		r.must("GET", "/hosts", r.admin, nil, &hl)
		out := map[string]fleet.HostSummary{}
		for _, h := range hl.Hosts {
			out[h.Hostname] = h
		}
		return out
	}
	// Hostnames of chroots are the machine's: name them by machine-id.
	r.waitFor("three agents to report their updates", 3*time.Minute, func() bool {
		hs := hostIDs()
		n := 0
		for _, h := range hs {
			if h.Updates > 0 {
				n++
			}
		}
		return len(hs) == 3 && n == 3
	})
	byID := map[string]string{}
	for _, a := range r.agents {
		cred, err := os.ReadFile(filepath.Join(a.state, "credential.json"))
		if err != nil {
			t.Fatal(err)
		}
		var c struct {
			HostID string `json:"host_id"`
		}
		json.Unmarshal(cred, &c)
		a.id = c.HostID
		byID[c.HostID] = a.name
	}
	nameOf := func(h rollout.HostStatus) string { return byID[h.ID] }
	outcomeOf := func(st rolloutapi.PlanStatus, name string) job.Outcome {
		for _, h := range st.Hosts {
			if nameOf(h) == name {
				return h.Outcome
			}
		}
		return ""
	}

	// The state the chapters hand on.
	var (
		ep, pp, ap *rollout.Plan // the emergency plan, the perl-base plan, the plan of every security patch
		window     = time.Date(2026, 11, 24, 22, 1, 0, 0, time.UTC)
		night2     = time.Date(2026, 11, 25, 22, 1, 0, 0, time.UTC)
	)

	// 1. The emergency lane, outside the window, after one approval; the
	// tampered job on prod-2 is refused and reported.
	if !r.chapter("emergency lane", func(t *testing.T) {
		ep = r.create(alice, rollout.PlanSpec{Strategy: "standard", Emergency: true, Description: "KEV pcre2"})
		if !ep.Emergency || ep.Required != 1 || ep.State != rollout.AwaitingApproval || ep.Rings[0].Hosts != 1 || ep.Rings[1].Hosts != 2 {
			t.Fatalf("emergency plan: %+v", ep)
		}
		for _, h := range r.status(ep.ID).Hosts {
			if len(h.Targets) != 1 || h.Targets[0].Name != "libpcre2-8-0" || h.Targets[0].To != initial[nameOf(h)]["libpcre2-8-0"][1] {
				t.Fatalf("emergency targets of %s: %+v", nameOf(h), h.Targets)
			}
		}
		r.must("POST", "/plans/"+ep.ID+"/approve", bob, nil, nil)
		r.tamper.Store(true)
		r.must("POST", "/plans/"+ep.ID+"/start", alice, nil, nil)
		r.waitFor("staging to patch pcre2", 3*time.Minute, func() bool { return outcomeOf(r.status(ep.ID), "stg-1") != "" })
		if o := outcomeOf(r.status(ep.ID), "stg-1"); o != job.Succeeded {
			t.Fatalf("stg-1: %s", o)
		}
	}) {
		return
	}

	if !r.chapter("a tampered job is refused", func(t *testing.T) {
		r.setClock(t0.Add(61 * time.Minute)) // staging baked
		r.waitFor("the emergency rollout to end", 3*time.Minute, func() bool {
			st := r.status(ep.ID)
			return st.Rollout.State == rollout.Halted || st.Rollout.State == rollout.Completed
		})
		r.tamper.Store(false)
		st := r.status(ep.ID)
		if st.Rollout.State != rollout.Halted || outcomeOf(st, "prod-1") != job.Succeeded || outcomeOf(st, "prod-2") != job.Failed {
			t.Fatalf("emergency rollout: %+v %+v", st.Rollout, st.Rings)
		}
		for _, h := range st.Hosts {
			if nameOf(h) != "prod-2" {
				continue
			}
			var res job.Result
			json.Unmarshal(h.Result, &res)
			if !res.Refused || !strings.Contains(res.Reason, "signature does not verify") {
				t.Errorf("prod-2's refusal: %+v", res)
			}
		}
		for n, root := range roots {
			want := initial[n]["libpcre2-8-0"][1]
			if n == "prod-2" {
				want = initial[n]["libpcre2-8-0"][0] // refused: untouched
			}
			if v := debroot.Query(t, root, "libpcre2-8-0"); v != want {
				t.Errorf("%s: libpcre2-8-0 %s, want %s", n, v, want)
			}
			if n == "prod-2" && debroot.Query(t, root, "perl-base") != initial[n]["perl-base"][0] {
				t.Error("the tampered job installed something")
			}
		}
		if strings.Contains(debrootList(t, roots["prod-2"]), "netcat-traditional") {
			t.Error("the tampered package was installed")
		}
	}) {
		return
	}

	// 2. perl-base by the guarded strategy: two approvals; nothing starts
	// outside the window; prod-2's post-check fails: rolled back, halted.
	if !r.chapter("approvals through the CLI", func(t *testing.T) {
		r.setClock(t0.Add(70 * time.Minute))
		// This one through the CLI, from a PatchPlan document.
		planFile := filepath.Join(t.TempDir(), "perl.yaml")
		os.WriteFile(planFile, []byte("apiVersion: patchbay/v1\nkind: PatchPlan\nmetadata: {name: perl}\nspec:\n  strategy: guarded\n  selector:\n    packages: [perl-base]\n"), 0o644)
		code, out, errs := r.pb(alice, "plan", "create", "-f", planFile, "-o", "json")
		var pst rolloutapi.PlanStatus
		if code != 0 || json.Unmarshal([]byte(out), &pst) != nil {
			t.Fatalf("plan create -f: %d %s %s", code, out, errs)
		}
		pp = pst.Plan
		if pp.Required != 2 || len(pp.Rings) != 2 || pp.Rings[1].Windows[0].Name != "nightly" || pp.Description != "PatchPlan/perl" {
			t.Fatalf("perl plan: %+v", pp)
		}
		if code, out, _ := r.pb(alice, "plan", "show", pp.ID); code != 0 || !strings.Contains(out, "approvals 0 of 2") || !regexp.MustCompile(`prod\s+2\s+2\s+P3:26\s+nightly 2026-11-24 22:00 UTC–02:00 \(2\)`).MatchString(out) {
			t.Errorf("plan show: %d\n%s", code, out)
		}
		if code, out, errs := r.pb(alice, "plan", "approve", pp.ID, "--comment", "perl"); code != 0 || !strings.Contains(out, "awaiting_approval (approvals 1 of 2)") {
			t.Fatalf("approve: %d %s %s", code, out, errs)
		}
		if code, _, errs := r.pb(alice, "plan", "approve", pp.ID); code == 0 || !strings.Contains(errs, "already approved by this actor") {
			t.Errorf("alice approving twice: %d %s", code, errs)
		}
		if code, _, errs := r.pb(alice, "rollout", "start", pp.ID); code == 0 || !strings.Contains(errs, "only an approved plan starts") {
			t.Errorf("start with one approval of two: %d %s", code, errs)
		}
		if code, out, errs := r.pb(bob, "plan", "approve", pp.ID); code != 0 || !strings.Contains(out, "approved (approvals 2 of 2)") {
			t.Fatalf("bob: %d %s %s", code, out, errs)
		}
		if code, out, errs := r.pb(bob, "rollout", "start", pp.ID); code != 0 || out != "rollout "+pp.ID+": running\n" {
			t.Fatalf("rollout start: %d %q %s", code, out, errs)
		}
	}) {
		return
	}

	if !r.chapter("outside the window", func(t *testing.T) {
		time.Sleep(2 * time.Second) // ten scheduler steps, outside the window
		st := r.status(pp.ID)
		if st.Rollout.State != rollout.Running || st.Rings[0].Pending != 1 || st.Rings[0].InFlight != 0 {
			t.Fatalf("outside the window something started: %+v %+v", st.Rollout, st.Rings)
		}
		for _, a := range r.agents {
			for k := range jobsStarted(a.log.String()) {
				if strings.HasPrefix(k, pp.ID) {
					t.Fatalf("%s started %s outside the window", a.name, k)
				}
			}
		}
	}) {
		return
	}

	if !r.chapter("a failed post-check rolls back", func(t *testing.T) {
		broken := filepath.Join(roots["prod-2"], "etc/patchbay-broken")
		if err := os.WriteFile(broken, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		r.setClock(window)
		r.waitFor("staging to patch perl", 3*time.Minute, func() bool { return outcomeOf(r.status(pp.ID), "stg-1") != "" })
		r.setClock(window.Add(61 * time.Minute))
		r.waitFor("the perl rollout to halt", 4*time.Minute, func() bool { return r.status(pp.ID).Rollout.State == rollout.Halted })
		st := r.status(pp.ID)
		if code, out, _ := r.pb(r.admin, "rollout", "status", pp.ID); code != 0 || !strings.Contains(out, "halted, ring prod; staging[succeeded 1] prod[succeeded 1, rolled_back 1] — ring prod: 1 errors") {
			t.Errorf("rollout status: %d %s", code, out)
		}
		if outcomeOf(st, "stg-1") != job.Succeeded || outcomeOf(st, "prod-1") != job.Succeeded || outcomeOf(st, "prod-2") != job.RolledBack ||
			!strings.Contains(st.Rollout.Why, "ring prod: 1 errors, more than its threshold of 0") {
			t.Fatalf("perl rollout: %+v %+v", st.Rollout, st.Rings)
		}
		// --hosts says why prod-2 rolled back: its failed check's detail,
		// as its result holds it.
		var failed []string
		for _, h := range st.Hosts {
			var res job.Result
			if h.Hostname == "prod-2" && json.Unmarshal(h.Result, &res) == nil {
				for _, c := range res.Checks {
					if !c.OK && c.Detail != "" {
						failed = append(failed, c.Detail)
					}
				}
			}
		}
		code, out, _ := r.pb(r.admin, "rollout", "status", pp.ID, "--hosts")
		row := regexp.MustCompile(`(?m)^prod-2\s+prod\s+\d+\s+rolled_back\s+(.+)$`).FindStringSubmatch(out)
		if code != 0 || len(failed) == 0 || row == nil || !strings.Contains(row[1], failed[0]) {
			t.Errorf("rollout status --hosts: %d, failed checks %q, prod-2's reason not there:\n%s", code, failed, out)
		}
		for n, root := range roots {
			want := initial[n]["perl-base"][1]
			if n == "prod-2" {
				want = initial[n]["perl-base"][0]
			}
			if v := debroot.Query(t, root, "perl-base"); v != want {
				t.Errorf("%s: perl-base %s, want %s", n, v, want)
			}
		}
		os.Remove(broken)
	}) {
		return
	}

	// 3. Every security patch; the server is killed in the middle of the
	// prod ring and restarted; the rollout completes.
	if !r.chapter("a server kill mid-ring", func(t *testing.T) {
		r.waitFor("fresh update lists", 2*time.Minute, func() bool {
			h := hostIDs()
			return h["stg-1"].Updates == len(initial["stg-1"])-2 && h["prod-2"].Updates == len(initial["prod-2"])
		})
		r.setClock(night2)
		ap = r.create(alice, rollout.PlanSpec{Strategy: "standard", Selector: rollout.Selector{Types: []patch.Type{patch.Security}}})
		r.must("POST", "/plans/"+ap.ID+"/approve", alice, nil, nil)
		r.must("POST", "/plans/"+ap.ID+"/approve", bob, nil, nil)
		r.must("POST", "/plans/"+ap.ID+"/start", alice, nil, nil)
		r.waitFor("staging to patch everything", 3*time.Minute, func() bool { return outcomeOf(r.status(ap.ID), "stg-1") != "" })
		r.setClock(night2.Add(61 * time.Minute))
		r.waitFor("prod-1's job to start", time.Minute, func() bool {
			return strings.Contains(r.agents["prod-1"].log.String(), `msg="job started" job_id=`+ap.ID)
		})
		r.killServer()
		r.waitFor("prod-1 to finish its job while the server is down", 3*time.Minute, func() bool {
			return strings.Contains(r.agents["prod-1"].log.String(), `msg="job finished" job_id=`+ap.ID)
		})
		r.startServer()
		if code, out, errs := r.pb(r.admin, "rollout", "watch", ap.ID, "--every", "200ms"); code != 0 || !strings.Contains(out, "rollout "+ap.ID+": completed, ring prod") {
			t.Fatalf("rollout watch: %d\n%s\n%s", code, out, errs)
		}
		st := r.status(ap.ID)
		for _, n := range []string{"stg-1", "prod-1", "prod-2"} {
			if o := outcomeOf(st, n); o != job.Succeeded && o != job.SucceededReboot {
				t.Errorf("%s: %s", n, o)
			}
		}
	}) {
		return
	}

	if !r.chapter("at the candidate versions", func(t *testing.T) {
		// Every host, as dpkg sees them.
		for n, root := range roots {
			for pkg, v := range initial[n] {
				if got := debroot.Query(t, root, pkg); got != v[1] {
					t.Errorf("%s: %s is %s, want the candidate %s", n, pkg, got, v[1])
				}
			}
			if left := updates(t, root); len(left) != 0 {
				t.Errorf("%s: updates left: %v", n, left)
			}
		}
	}) {
		return
	}

	if !r.chapter("findings remediated", func(t *testing.T) {
		// Once the agents report their inventory.
		r.waitFor("the findings to be remediated", 2*time.Minute, func() bool {
			for _, h := range hostIDs() {
				if h.OpenTotal() != 0 {
					return false
				}
			}
			return true
		})
		var closed fleet.FindingPage
		r.must("GET", "/findings?status=remediated&limit=500", r.admin, nil, &closed)
		if len(closed.Findings) < 3*14 {
			t.Errorf("remediated findings: %d, want pcre2's and perl's on three hosts", len(closed.Findings))
		}
	}) {
		return
	}

	if !r.chapter("no job twice", func(t *testing.T) {
		for _, a := range r.agents {
			for k, n := range jobsStarted(a.log.String()) {
				if n != 1 {
					t.Errorf("%s started %s %d times", a.name, k, n)
				}
			}
		}
	}) {
		return
	}

	r.chapter("webhooks", func(t *testing.T) {
		// Deliveries of the halts and the completion.
		r.waitFor("the completion's webhooks", time.Minute, func() bool {
			var ns struct {
				Notifications []rollout.Notification `json:"notifications"`
			}
			r.must("GET", "/notifications?plan="+ap.ID, r.admin, nil, &ns)
			for _, n := range ns.Notifications {
				if n.Event == "rollout.completed" && !n.DeliveredAt.IsZero() {
					return true
				}
			}
			return false
		})
		r.hookMu.Lock()
		defer r.hookMu.Unlock()
		var halted, completed bool
		for _, h := range r.hooked {
			halted = halted || strings.HasPrefix(h, "rollout.halted {\"event\":\"rollout.halted\",\"plan\":\""+pp.ID)
			completed = completed || strings.HasPrefix(h, "rollout.completed {\"text\":\"patchbay: plan `"+ap.ID+"` (standard) completed")
		}
		if !halted || !completed {
			t.Errorf("webhooks: %q", r.hooked)
		}
	})
}

func debrootList(t *testing.T, root string) string {
	out, err := exec.Command("chroot", root, "dpkg-query", "-W", "-f", "${Package}\n").Output()
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}
