// Command rollout measures rollouts at fleet scale with simulated agents:
// it makes N hosts (default 10,000) with a pending security update
// directly in a fresh database, starts a patchbay server process on
// loopback, has one goroutine per host long-poll for jobs (one HTTP
// connection each) and report success as soon as a job arrives, then
// starts a rollout of two rings (a 10% canary, then the rest). It prints
// the time from `rollout start` to every canary host holding its job, from
// the canary's last job to every host of the second ring holding its job
// (target: one long-poll cycle plus 1 s), and the scheduler's cost of the
// steps that started each ring (the server's own timings).
//
// Usage:
//
//	go run ./bench/rollout                 # 10,000 hosts, embedded database
//	go run ./bench/rollout -hosts 2000 -wait 30s -db postgres://…/fresh
package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/patchbay/patchbay/api"
	"github.com/patchbay/patchbay/api/policyapi"
	"github.com/patchbay/patchbay/api/rolloutapi"
	"github.com/patchbay/patchbay/auth"
	"github.com/patchbay/patchbay/fleet"
	"github.com/patchbay/patchbay/internal/rollouttest"
	"github.com/patchbay/patchbay/job"
	"github.com/patchbay/patchbay/patch"
	"github.com/patchbay/patchbay/rollout"
	"github.com/patchbay/patchbay/store"
)

// policyYAML: the shared production group (every simulated host is
// env=prod) and the bench's own strategy; the shared window and approval
// rule stay out (the rollout runs at once, approved by one person).
var policyYAML = rollouttest.Documents("HostGroup/production") + `---
apiVersion: patchbay/v1
kind: RolloutStrategy
metadata: {name: canary-then-fleet}
spec:
  rings:
    - {name: canary, share: 10%, maxConcurrency: 100%, errorThreshold: 5%}
    - {name: fleet, hostGroup: production, maxConcurrency: 100%, errorThreshold: 5%}
  reboot: never
  promote: automatic
  jobTimeout: 1h
`

func main() {
	hosts := flag.Int("hosts", 10000, "simulated hosts")
	wait := flag.Duration("wait", 30*time.Second, "the agents' long-poll wait")
	keep := flag.Bool("keep", false, "keep the work directory")
	dsn := flag.String("db", "", "a fresh PostgreSQL database (postgres://…) instead of the embedded one")
	flag.Parse()
	if err := run(*hosts, *wait, *keep, *dsn); err != nil {
		fmt.Fprintln(os.Stderr, "bench/rollout:", err)
		os.Exit(1)
	}
}

type agent struct {
	id, secret string
	got        atomic.Int64 // unix nanoseconds the job arrived, 0 before
}

func run(n int, wait time.Duration, keep bool, dsn string) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil {
		lim.Cur = lim.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
		if lim.Cur < uint64(n)+500 {
			return fmt.Errorf("%d file descriptors allowed; %d hosts need one connection each (ulimit -n)", lim.Cur, n)
		}
	}
	dir, err := os.MkdirTemp("", "patchbay-bench-rollout-")
	if err != nil {
		return err
	}
	if keep {
		fmt.Println("work directory:", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	bin := filepath.Join(dir, "patchbay")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/patchbay").CombinedOutput(); err != nil {
		return fmt.Errorf("build: %v\n%s", err, out)
	}
	data := filepath.Join(dir, "data")
	if err := os.MkdirAll(data, 0o700); err != nil {
		return err
	}
	ctx := context.Background()

	// The fleet, written directly: hosts, credentials, updates.
	start := time.Now()
	if dsn == "" {
		dsn = filepath.Join(data, "patchbay.db")
	}
	db, err := store.Open(ctx, dsn)
	if err != nil {
		return err
	}
	agents := make([]*agent, n)
	now := time.Now().UTC()
	for i := range agents {
		secret, credID, hash, err := auth.NewSecret()
		if err != nil {
			return err
		}
		id := fmt.Sprintf("%024x", i+1)
		name := fmt.Sprintf("host-%05d", i)
		facts := fleet.Facts{Hostname: name, MachineID: fmt.Sprintf("%032x", i+1), OSID: "debian", OSVersion: "12", Ecosystem: "Debian:12", AgentVersion: "bench",
			Labels: map[string]string{"env": "prod"}}
		h := fleet.Host{ID: id, MachineID: facts.MachineID, Hostname: name, Ecosystem: facts.Ecosystem, Labels: map[string]string{}, LastSeen: now, Facts: facts, EnrolledAt: now}
		tok := auth.Token{ID: credID, Kind: auth.KindHost, Role: auth.Agent, Name: name, Created: now, UsesLeft: -1, Subject: id}
		if _, err := db.Fleet.Enroll(ctx, h, tok, hash, ""); err != nil {
			return err
		}
		ups := []patch.Update{{Ecosystem: "Debian:12", Name: "libssl3", SourceName: "openssl", Installed: "3.0.15-1~deb12u1", Candidate: "3.0.17-1~deb12u2",
			Origin: "bookworm-security", Pocket: "security", CVEs: []string{}, Types: []patch.Type{patch.Security}, Cycle: patch.CycleSystem}}
		if err := db.Fleet.SetUpdates(ctx, id, fleet.UpdatesHash(ups), ups); err != nil {
			return err
		}
		agents[i] = &agent{id: id, secret: secret}
	}
	db.Close()
	fmt.Printf("fleet of %d hosts written in %s\n", n, time.Since(start).Round(time.Millisecond))
	pb := func(args ...string) (string, error) {
		out, err := exec.Command(bin, append([]string{"--data-dir", data, "--db", dsn}, args...)...).Output()
		return strings.TrimSpace(string(out)), err
	}
	admin, err := pb("admin", "token", "create", "--role", "admin")
	if err != nil {
		return fmt.Errorf("admin token: %w", err)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	addr := ln.Addr().String()
	ln.Close()
	logPath := filepath.Join(dir, "server.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	srv := exec.Command(bin, "--data-dir", data, "--db", dsn, "server", "--listen", addr, "--plain-http", "--max-conns-per-client", "0", "--step-interval", "1s", "--agent-stale", "24h")
	srv.Stdout, srv.Stderr = logFile, logFile
	if err := srv.Start(); err != nil {
		return err
	}
	defer func() { srv.Process.Signal(syscall.SIGTERM); srv.Wait() }()
	base := "http://" + addr
	client := &http.Client{}
	call := func(method, path, token string, body, out any) error {
		var rd io.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
		}
		req, _ := http.NewRequest(method, base+api.Prefix+path, rd)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode >= 300 {
			return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, b)
		}
		if out != nil {
			return json.Unmarshal(b, out)
		}
		return nil
	}
	for deadline := time.Now().Add(30 * time.Second); ; {
		if resp, err := http.Get(base + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the server did not start; see %s", logPath)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := call("POST", "/policy/apply", admin, policyapi.ApplyRequest{Files: []policyapi.PolicyFile{{Name: "bench.yaml", Content: policyYAML}}}, nil); err != nil {
		return err
	}
	t := time.Now()
	var st rolloutapi.PlanStatus
	if err := call("POST", "/plans", admin, rollout.PlanSpec{Strategy: "canary-then-fleet", Selector: rollout.Selector{Types: []patch.Type{patch.Security}}}, &st); err != nil {
		return err
	}
	fmt.Printf("plan of %d hosts resolved in %s (rings %d + %d)\n", st.Plan.Rings[0].Hosts+st.Plan.Rings[1].Hosts, time.Since(t).Round(time.Millisecond), st.Plan.Rings[0].Hosts, st.Plan.Rings[1].Hosts)
	if st.Plan.State != rollout.Approved {
		if err := call("POST", "/plans/"+st.Plan.ID+"/approve", admin, nil, nil); err != nil {
			return err
		}
	}
	keyB64, err := jobKey(data)
	if err != nil {
		return err
	}
	pub, _ := base64.StdEncoding.DecodeString(keyB64)

	// The agents: each long-polls on its own connection.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var polling atomic.Int64
	var wg sync.WaitGroup
	var verifyErrs atomic.Int64
	for _, a := range agents {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tr := &http.Transport{MaxIdleConnsPerHost: 1, DisableCompression: true}
			c := &http.Client{Transport: tr}
			defer tr.CloseIdleConnections()
			first := true
			for ctx.Err() == nil {
				req, _ := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("%s%s/agent/jobs?wait=%d", base, api.Prefix, int(wait/time.Second)), nil)
				req.Header.Set("Authorization", "Bearer "+a.secret)
				if first {
					polling.Add(1)
					first = false
				}
				resp, err := c.Do(req)
				if err != nil {
					if ctx.Err() == nil {
						time.Sleep(time.Second)
					}
					continue
				}
				var jr api.JobsResponse
				json.NewDecoder(resp.Body).Decode(&jr)
				resp.Body.Close()
				if len(jr.Jobs) == 0 {
					continue
				}
				a.got.CompareAndSwap(0, time.Now().UnixNano())
				m, err := job.Verify(jr.Jobs[0], ed25519.PublicKey(pub), a.id, time.Now())
				if err != nil {
					verifyErrs.Add(1)
					return
				}
				res := job.Result{JobID: m.JobID, Attempt: m.Attempt, Outcome: job.Succeeded, Started: time.Now(), Finished: time.Now()}
				b, _ := json.Marshal(res)
				rq, _ := http.NewRequestWithContext(ctx, "POST", base+api.Prefix+"/agent/jobs/result", bytes.NewReader(b))
				rq.Header.Set("Authorization", "Bearer "+a.secret)
				if r2, err := c.Do(rq); err == nil {
					io.Copy(io.Discard, r2.Body)
					r2.Body.Close()
				}
				return
			}
		}()
	}
	for polling.Load() < int64(n) {
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // every poll reaches the server and waits
	fmt.Printf("%d agents long-polling (wait %s)\n", n, wait)

	t0 := time.Now()
	if err := call("POST", "/plans/"+st.Plan.ID+"/start", admin, nil, nil); err != nil {
		return err
	}
	var status rolloutapi.PlanStatus
	if err := call("GET", "/plans/"+st.Plan.ID+"?hosts=1", admin, nil, &status); err != nil {
		return err
	}
	ring := map[string]int{}
	for _, h := range status.Hosts {
		ring[h.ID] = h.Ring
	}
	holding := func(r int) (int, time.Time) {
		c, last := 0, time.Time{}
		for _, a := range agents {
			if ring[a.id] == r {
				if g := a.got.Load(); g != 0 {
					c++
					if t := time.Unix(0, g); t.After(last) {
						last = t
					}
				}
			}
		}
		return c, last
	}
	sizes := []int{status.Rings[0].Hosts, status.Rings[1].Hosts}
	deadline := time.Now().Add(wait + 2*time.Minute)
	for {
		c0, _ := holding(0)
		c1, _ := holding(1)
		if c0 == sizes[0] && c1 == sizes[1] {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %s: ring 1 %d/%d, ring 2 %d/%d hold their jobs (verify errors %d); see %s", time.Since(t0), c0, sizes[0], c1, sizes[1], verifyErrs.Load(), logPath)
		}
		time.Sleep(20 * time.Millisecond)
	}
	_, last0 := holding(0)
	_, last1 := holding(1)
	// The canary's last report: its hosts report at once on receipt.
	fmt.Printf("rollout start → all %d canary hosts hold their job: %s\n", sizes[0], last0.Sub(t0).Round(time.Millisecond))
	fmt.Printf("last canary job received → all %d fleet hosts hold their job: %s (after start: %s)\n", sizes[1], last1.Sub(last0).Round(time.Millisecond), last1.Sub(t0).Round(time.Millisecond))
	cancel()
	wg.Wait()
	logFile.Close()
	b, _ := os.ReadFile(logPath)
	re := regexp.MustCompile(`msg="rollout step".*state=(\S+) ring=(\S+) started=(\d+) settled=(\d+) took=(\S+)`)
	var steps []string
	for _, g := range re.FindAllStringSubmatch(string(b), -1) {
		if g[3] != "0" || !slices.Contains([]string{"running"}, g[1]) {
			steps = append(steps, fmt.Sprintf("  ring %-6s state %-9s started %5s settled %5s took %s", g[2], g[1], g[3], g[4], g[5]))
		}
	}
	fmt.Println("scheduler steps that started jobs or changed state (the server's timings):")
	fmt.Println(strings.Join(steps, "\n"))
	if verifyErrs.Load() > 0 {
		return fmt.Errorf("%d jobs did not verify", verifyErrs.Load())
	}
	return nil
}

// jobKey reads the server's job public key as an enrollment would give it,
// from the key file the server made in its data dir.
func jobKey(data string) (string, error) {
	seed, err := os.ReadFile(filepath.Join(data, "job-signing.key"))
	if err != nil {
		return "", err
	}
	if len(seed) != ed25519.SeedSize {
		return "", fmt.Errorf("job key: %d bytes, want %d", len(seed), ed25519.SeedSize)
	}
	return base64.StdEncoding.EncodeToString(ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)), nil
}
