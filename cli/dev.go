package cli

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/patchbay/patchbay/api"
	"github.com/patchbay/patchbay/api/policyapi"
	"github.com/patchbay/patchbay/auth"
	"github.com/patchbay/patchbay/fleet"
	"github.com/patchbay/patchbay/inventory"
	"github.com/patchbay/patchbay/inventory/collect"
	"github.com/patchbay/patchbay/patch"
	"github.com/patchbay/patchbay/server"
)

func newDevCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{Use: "dev", Short: "Developer tools: load generation"}
	cmd.AddCommand(newSimulateCmd(e))
	return cmd
}

type simOpts struct {
	agents, concurrency, rounds, packages int
	soak                                  time.Duration
	serverURL, token, pin, shared         string
	debugListen                           string
	feedsDirs                             []string
	keep                                  bool
}

func newSimulateCmd(e *env) *cobra.Command {
	o := &simOpts{}
	cmd := &cobra.Command{
		Use:   "simulate --agents N",
		Short: "Run N in-process agents with realistic Debian inventories against a real server over loopback, and print figures",
		Long: `simulate builds N varied Debian 12 hosts from the shared dpkg fixtures (OS
packages, a tenth of their versions varied per host) plus application
dependencies from the shared lockfile corpus, up to --packages each, and runs
them as agents against a server over loopback: enrollment, the first full
check-in of every host (inventory ingest), --rounds rounds of steady
check-ins with unchanged inventories, and an incremental rematch after a new
advisory is imported. Without --server it starts ` + "`patchbay server`" + ` as a child
process on the database --db names (default a fresh SQLite file) and reports
its peak RSS.`,
		RunE: func(cmd *cobra.Command, args []string) error { return e.simulate(cmd.Context(), o) },
	}
	f := cmd.Flags()
	f.IntVar(&o.agents, "agents", 100, "hosts to simulate")
	f.IntVar(&o.concurrency, "concurrency", 64, "agents talking to the server at once")
	f.IntVar(&o.rounds, "rounds", 3, "rounds of steady check-ins")
	spanVar(f, &o.soak, "soak", 0, "after the other phases, keep every agent checking in for this long (a hundredth of them with a changed inventory each round), then check that no acknowledged report is lost and count 5xx answers")
	f.IntVar(&o.packages, "packages", 1500, "packages per host (OS packages plus application dependencies)")
	f.StringVar(&o.serverURL, "server", "", "server URL (default: start one)")
	f.StringVar(&o.token, "token", os.Getenv("PATCHBAY_TOKEN"), "admin token of --server (env PATCHBAY_TOKEN)")
	f.StringVar(&o.pin, "pin", "", "certificate fingerprint of --server")
	f.StringVar(&o.shared, "shared", "../shared", "the shared material (fixtures/dpkg, corpus, feeds)")
	f.StringSliceVar(&o.feedsDirs, "feeds-dir", nil, "feeds the started server imports (default SHARED/feeds/osv/Debian and the KEV catalog)")
	f.BoolVar(&o.keep, "keep", false, "keep the started server's data dir")
	f.StringVar(&o.debugListen, "debug-listen", "", "the started server serves Go's pprof profiles on this loopback address (to profile it during the phases)")
	return cmd
}

// simHost is one simulated host.
type simHost struct {
	facts fleet.Facts
	pkgs  []inventory.Package
	hash  string
	cred  string
	id    string
	body  []byte // the full report, encoded
}

// templates reads the shared dpkg fixtures and corpus lockfiles.
func simTemplates(ctx context.Context, shared string) (oses [][]inventory.Package, apps [][]inventory.Package, err error) {
	fixtures, err := filepath.Glob(filepath.Join(shared, "fixtures/dpkg/status-*"))
	if err != nil || len(fixtures) == 0 {
		return nil, nil, fmt.Errorf("no dpkg fixtures in %s/fixtures/dpkg (--shared)", shared)
	}
	sort.Strings(fixtures)
	tmp, err := os.MkdirTemp("", "patchbay-sim-")
	if err != nil {
		return nil, nil, err
	}
	defer os.RemoveAll(tmp)
	osRelease := "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\nID=debian\n"
	for i, fx := range fixtures {
		root := filepath.Join(tmp, strconv.Itoa(i))
		b, err := os.ReadFile(fx)
		if err != nil {
			return nil, nil, err
		}
		if err := writeFiles(root, map[string]string{"var/lib/dpkg/status": string(b), "etc/os-release": osRelease}); err != nil {
			return nil, nil, err
		}
		inv, err := collect.Collect(ctx, collect.Options{Root: root})
		if err != nil {
			return nil, nil, err
		}
		for j := range inv.Packages {
			inv.Packages[j].Location = "/var/lib/dpkg/status"
		}
		oses = append(oses, inv.Packages)
	}
	inv, err := collect.Collect(ctx, collect.Options{Paths: []string{filepath.Join(shared, "corpus")}})
	if err != nil {
		return nil, nil, err
	}
	byFile := map[string][]inventory.Package{}
	var files []string
	for _, p := range inv.Packages {
		rel, _ := filepath.Rel(shared, p.Location)
		p.Location = "/srv/" + rel
		if _, ok := byFile[p.Location]; !ok {
			files = append(files, p.Location)
		}
		byFile[p.Location] = append(byFile[p.Location], p)
	}
	sort.Strings(files)
	for _, f := range files {
		apps = append(apps, byFile[f])
	}
	return oses, apps, nil
}

// simInventory varies a template for host i: a tenth of the OS package
// versions changed, and application lockfiles up to n packages.
func simInventory(i, n int, oses, apps [][]inventory.Package) []inventory.Package {
	base := oses[len(oses)-1]
	switch i % 10 {
	case 7, 8:
		base = oses[i%len(oses)]
	}
	pkgs := make([]inventory.Package, 0, n)
	for j, p := range base {
		if (j+i)%10 == 0 {
			p.Version += fmt.Sprintf("~pb%d", i%5)
			if p.SourceVersion != "" {
				p.SourceVersion += fmt.Sprintf("~pb%d", i%5)
			}
		}
		pkgs = append(pkgs, p)
	}
	for k := 0; len(pkgs) < n && k < len(apps); k++ {
		app := apps[(i*7+k*13)%len(apps)]
		for _, p := range app {
			if len(pkgs) >= n {
				break
			}
			pkgs = append(pkgs, p)
		}
	}
	return pkgs
}

// latencies keeps durations for percentiles.
type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, d)
	l.mu.Unlock()
}

func (l *latencies) pct(p float64) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.d) == 0 {
		return 0
	}
	sort.Slice(l.d, func(i, j int) bool { return l.d[i] < l.d[j] })
	return l.d[min(len(l.d)-1, int(float64(len(l.d))*p))]
}

// phase runs fn for every host with the given concurrency and reports
// rate and latencies.
func (e *env) phase(ctx context.Context, name string, hosts []*simHost, conc int, cpu func() float64, fn func(ctx context.Context, h *simHost) error) error {
	var lat latencies
	cpu0 := cpu()
	var firstErr error
	var errOnce sync.Once
	var failed atomic.Int64
	start := time.Now()
	fanOut(ctx, len(hosts), conc, func(i int) {
		t := time.Now()
		if err := fn(ctx, hosts[i]); err != nil {
			failed.Add(1)
			errOnce.Do(func() { firstErr = fmt.Errorf("%s: host %d: %w", name, i, err) })
			return
		}
		lat.add(time.Since(t))
	})
	el := time.Since(start)
	fmt.Fprintf(e.stdout, "%-28s %7d in %7.2fs  %8.1f/s  p50 %6.1fms  p99 %6.1fms  failed %d%s\n", name, len(hosts), el.Seconds(),
		float64(len(hosts))/el.Seconds(), ms(lat.pct(.5)), ms(lat.pct(.99)), failed.Load(), cpuNote(cpu0, cpu()))
	return firstErr
}

// fanOut calls fn for 0..n-1 from conc goroutines, until ctx ends.
func fanOut(ctx context.Context, n, conc int, fn func(i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n || ctx.Err() != nil {
					return
				}
				fn(i)
			}
		}()
	}
	wg.Wait()
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func (e *env) simulate(ctx context.Context, o *simOpts) error {
	if o.agents <= 0 || o.concurrency <= 0 {
		return errors.New("--agents and --concurrency: want positive numbers")
	}
	oses, apps, err := simTemplates(ctx, o.shared)
	if err != nil {
		return err
	}
	var child *exec.Cmd
	if o.serverURL == "" {
		var stop func()
		child, stop, err = e.spawnServer(ctx, o)
		if err != nil {
			return err
		}
		defer stop()
	}
	// The started server's CPU seconds (user and system) so far: on a
	// shared machine a steadier figure than the wall clock.
	cpu := func() float64 {
		if child == nil {
			return 0
		}
		return procCPU(child.Process.Pid)
	}
	hc, err := api.NewHTTPClient("", o.pin)
	if err != nil {
		return err
	}
	hc.Transport.(*http.Transport).MaxIdleConnsPerHost = o.concurrency * 2
	admin := &api.Client{Base: o.serverURL, Token: o.token, HTTP: hc}
	var tr api.TokenResponse
	if err := admin.Do(ctx, http.MethodPost, api.Prefix+"/tokens", api.TokenRequest{Kind: auth.KindEnrollment, Name: "simulate", Uses: o.agents, TTLSeconds: 86400}, &tr); err != nil {
		return fmt.Errorf("create enrollment token: %w", err)
	}
	hosts := make([]*simHost, o.agents)
	run := make([]byte, 4)
	rand.Read(run)
	total := 0
	for i := range hosts {
		pkgs := simInventory(i, o.packages, oses, apps)
		total += len(pkgs)
		mid := make([]byte, 16)
		rand.Read(mid)
		hosts[i] = &simHost{pkgs: pkgs, hash: fleet.InventoryHash(pkgs), facts: fleet.Facts{
			Hostname: fmt.Sprintf("sim-%s-%05d", hex.EncodeToString(run), i), MachineID: hex.EncodeToString(mid), OSID: "debian", OSVersion: "12",
			OSPretty: "Debian GNU/Linux 12 (bookworm)", Ecosystem: "Debian:12", KernelRunning: "6.1.0-28-amd64", KernelNewest: "6.1.0-28-amd64",
			Labels: map[string]string{"env": []string{"prod", "staging"}[i%2], "team": fmt.Sprintf("team-%d", i%8)}, AgentVersion: Version}}
	}
	fmt.Fprintf(e.stdout, "simulating %d hosts (%.0f packages each on average) against %s, %d at a time\n", o.agents, float64(total)/float64(o.agents), o.serverURL, o.concurrency)
	noUpdates := []patch.Update{}
	updHash := fleet.UpdatesHash(noUpdates)
	err = e.phase(ctx, "enroll", hosts, o.concurrency, cpu, func(ctx context.Context, h *simHost) error {
		c := &api.Client{Base: o.serverURL, Token: tr.Secret, HTTP: hc}
		var r api.EnrollResponse
		if err := c.Do(ctx, http.MethodPost, api.Prefix+"/agent/enroll", api.EnrollRequest{Facts: h.facts}, &r); err != nil {
			return err
		}
		h.id, h.cred = r.HostID, r.Credential
		return nil
	})
	if err != nil {
		return err
	}
	// Reports are encoded (JSON, gzip) before the clock starts: the
	// agents' work is not the server's.
	for _, h := range hosts {
		c := &api.Client{GzipAbove: 4 << 10}
		if h.body, _, err = c.Encode(api.Report{CollectedAt: time.Now(), Facts: h.facts,
			InventoryHash: h.hash, Inventory: &h.pkgs, UpdatesHash: updHash, Updates: &noUpdates}); err != nil {
			return err
		}
	}
	err = e.phase(ctx, "first check-in (full ingest)", hosts, o.concurrency, cpu, func(ctx context.Context, h *simHost) error {
		c := &api.Client{Base: o.serverURL, Token: h.cred, HTTP: hc}
		return c.DoRaw(ctx, http.MethodPost, api.Prefix+"/agent/checkin", h.body, true, nil)
	})
	if err != nil {
		return err
	}
	for r := 0; r < o.rounds; r++ {
		err = e.phase(ctx, fmt.Sprintf("steady check-in, round %d", r+1), hosts, o.concurrency, cpu, func(ctx context.Context, h *simHost) error {
			c := &api.Client{Base: o.serverURL, Token: h.cred, HTTP: hc}
			return c.Do(ctx, http.MethodPost, api.Prefix+"/agent/checkin", api.Report{CollectedAt: time.Now(), Facts: h.facts,
				InventoryHash: h.hash, UpdatesHash: updHash}, nil)
		})
		if err != nil {
			return err
		}
	}
	if child != nil {
		// A new advisory for a package every simulated host has.
		if err := writeFiles(e.simFeedDir(), map[string]string{"PB-SIM-0001.json": `{"id": "PB-SIM-0001", "modified": "` + time.Now().UTC().Format(time.RFC3339Nano) + `",
			"aliases": ["CVE-2099-0001"], "summary": "simulated advisory",
			"affected": [{"package": {"ecosystem": "Debian:12", "name": "bash"},
			  "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "9.9"}]}]}]}`}); err != nil {
			return err
		}
		var rr server.RefreshResult
		start, cpu0 := time.Now(), cpu()
		if err := admin.Do(ctx, http.MethodPost, api.Prefix+"/feeds/refresh", nil, &rr); err != nil {
			return fmt.Errorf("refresh: %w", err)
		}
		fmt.Fprintf(e.stdout, "%-28s %7d hosts (%d package sets) rematched in %.3fs; %d opened (refresh with import %.2fs%s)\n", "rematch after new advisory",
			rr.Rematch.Hosts, rr.Rematch.Groups, rr.RematchSeconds, rr.Rematch.Opened, time.Since(start).Seconds(), cpuNote(cpu0, cpu()))
		// CISA adds the simulated CVE to KEV: its findings are decided again.
		// The catalog is the shared one with that entry added (a catalog
		// that shrinks is refused).
		kev, err := simKEV(o.shared)
		if err != nil {
			return err
		}
		if err := writeFiles(e.simFeedDir(), map[string]string{"known_exploited_vulnerabilities.json": kev}); err != nil {
			return err
		}
		start, cpu0 = time.Now(), cpu()
		if err := admin.Do(ctx, http.MethodPost, api.Prefix+"/feeds/refresh", nil, &rr); err != nil {
			return fmt.Errorf("refresh: %w", err)
		}
		fmt.Fprintf(e.stdout, "%-28s %7d hosts, %d findings decided again, %d changed in %.3fs (refresh with import %.2fs%s)\n", "KEV update",
			rr.Reprioritized.Hosts, rr.Reprioritized.Findings, rr.Reprioritized.Changed, rr.ReprioritizeSeconds, time.Since(start).Seconds(), cpuNote(cpu0, cpu()))
		// A policy for the whole fleet: every open finding decided again.
		docs := `apiVersion: patchbay/v1
kind: Team
metadata: {name: sim}
spec: {}
---
apiVersion: patchbay/v1
kind: Service
metadata: {name: sim-prod}
spec: {owner: sim, tier: 1, exposure: internet, hosts: env=prod}
`
		var ar policyapi.ApplyResponse
		start, cpu0 = time.Now(), cpu()
		if err := admin.Do(ctx, http.MethodPost, api.Prefix+"/policy/apply", policyapi.ApplyRequest{Files: []policyapi.PolicyFile{{Name: "sim.yaml", Content: docs}}}, &ar); err != nil {
			return fmt.Errorf("policy apply: %w", err)
		}
		if r := ar.Reprioritized; r != nil {
			fmt.Fprintf(e.stdout, "%-28s %7d hosts, %d findings decided again, %d changed in %.3fs%s\n", "policy apply (fleet-wide)", r.Hosts, r.Findings, r.Changed,
				time.Since(start).Seconds(), cpuNote(cpu0, cpu()))
		}
		if ar.Pending {
			// The leader finishes: wait until every finding is decided
			// with the new revision.
			for {
				var pl policyapi.PolicyList
				if err := admin.Do(ctx, http.MethodGet, api.Prefix+"/policy?kind=team", nil, &pl); err != nil {
					return err
				}
				if pl.Decided >= pl.Revision {
					break
				}
				time.Sleep(time.Second)
			}
			fmt.Fprintf(e.stdout, "%-28s every finding decided with the new policy %.1fs after the apply%s\n", "", time.Since(start).Seconds(), cpuNote(cpu0, cpu()))
		}
		start = time.Now()
		if err := admin.Do(ctx, http.MethodPut, api.Prefix+"/hosts/"+hosts[0].id+"/labels", api.Labels{Labels: map[string]string{"tier": "4"}}, nil); err != nil {
			return fmt.Errorf("labels: %w", err)
		}
		fmt.Fprintf(e.stdout, "%-28s %7d host decided again in %.3fs\n", "label change", 1, time.Since(start).Seconds())
	}
	if o.soak > 0 {
		if err := e.soak(ctx, o, admin, hosts, hc, updHash); err != nil {
			return err
		}
	}
	if child != nil {
		rss, hwm := procRSS(child.Process.Pid)
		fmt.Fprintf(e.stdout, "%-28s RSS %.0f MiB, peak %.0f MiB\n", "server memory", rss, hwm)
	}
	return nil
}

// soak keeps every agent checking in for o.soak, a hundredth of them with
// a changed inventory each round, counting failures and 5xx answers; then
// it reads every host back and counts the acknowledged reports the server
// lost: an inventory other than the last one acknowledged, or a check-in
// time before the last acknowledged check-in.
func (e *env) soak(ctx context.Context, o *simOpts, admin *api.Client, hosts []*simHost, hc *http.Client, updHash string) error {
	type acked struct {
		hash string
		at   time.Time
	}
	last := make([]acked, len(hosts))
	for i, h := range hosts {
		last[i] = acked{hash: h.hash}
	}
	noUpdates := []patch.Update{}
	var requests, failed, fivexx atomic.Int64
	var firstErr error
	var errOnce sync.Once
	start := time.Now()
	rounds := 0
	var lat latencies
	for time.Since(start) < o.soak && ctx.Err() == nil {
		rounds++
		fanOut(ctx, len(hosts), o.concurrency, func(i int) {
			h := hosts[i]
			c := &api.Client{Base: o.serverURL, Token: h.cred, HTTP: hc, GzipAbove: 4 << 10}
			rep := api.Report{CollectedAt: time.Now(), Facts: h.facts, InventoryHash: last[i].hash, UpdatesHash: updHash}
			if (i+rounds)%100 == 0 { // a changed inventory: one package a version further
				pkgs := slices.Clone(h.pkgs)
				pkgs[rounds%len(pkgs)].Version += fmt.Sprintf("+soak%d", rounds)
				rep.Inventory, rep.InventoryHash, rep.Updates = &pkgs, fleet.InventoryHash(pkgs), &noUpdates
			}
			t := time.Now()
			err := c.Do(ctx, http.MethodPost, api.Prefix+"/agent/checkin", rep, nil)
			requests.Add(1)
			if err != nil {
				failed.Add(1)
				var se *api.StatusError
				if errors.As(err, &se) && se.Status >= 500 {
					fivexx.Add(1)
				}
				errOnce.Do(func() { firstErr = fmt.Errorf("soak: host %d: %w", i, err) })
				return
			}
			lat.add(time.Since(t))
			last[i] = acked{hash: rep.InventoryHash, at: t}
		})
	}
	el := time.Since(start)
	fmt.Fprintf(e.stdout, "%-28s %7d check-ins in %d rounds over %.0fs  %8.1f/s  p50 %6.1fms  p99 %6.1fms  max %6.1fms  failed %d  5xx %d\n", "soak",
		requests.Load(), rounds, el.Seconds(), float64(requests.Load())/el.Seconds(), ms(lat.pct(.5)), ms(lat.pct(.99)), ms(lat.pct(1)), failed.Load(), fivexx.Load())
	// Check-in times are written once a second: give the last ones time.
	time.Sleep(3 * time.Second)
	seen, err := simReadHosts(ctx, admin)
	if err != nil {
		return fmt.Errorf("soak: read hosts back: %w", err)
	}
	lost := 0
	for i, h := range hosts {
		got, ok := seen[h.id]
		if !ok || got.InventoryHash != last[i].hash || got.LastSeen.Before(last[i].at.Add(-time.Second)) {
			lost++
			if lost <= 3 {
				fmt.Fprintf(e.stderr, "patchbay: soak: host %s: stored inventory %.12s seen %s, acknowledged %.12s at %s\n", h.id, got.InventoryHash, got.LastSeen.Format(time.RFC3339Nano), last[i].hash, last[i].at.Format(time.RFC3339Nano))
			}
		}
	}
	fmt.Fprintf(e.stdout, "%-28s %7d hosts read back, %d acknowledged reports lost\n", "", len(hosts), lost)
	if lost > 0 || fivexx.Load() > 0 {
		return fmt.Errorf("soak: %d acknowledged reports lost, %d 5xx answers (first error: %v)", lost, fivexx.Load(), firstErr)
	}
	return nil
}

// simReadHosts reads every host, a page of the server's largest (1000) at a
// time.
func simReadHosts(ctx context.Context, admin *api.Client) (map[string]fleet.HostSummary, error) {
	const page = 1000
	seen := map[string]fleet.HostSummary{}
	for offset := 0; ; offset += page {
		var hl api.HostList
		if err := admin.Do(ctx, http.MethodGet, fmt.Sprintf("%s/hosts?limit=%d&offset=%d", api.Prefix, page, offset), nil, &hl); err != nil {
			return nil, err
		}
		for _, h := range hl.Hosts {
			seen[h.ID] = h
		}
		if len(hl.Hosts) < page || hl.Total == nil || offset+len(hl.Hosts) >= *hl.Total {
			return seen, nil
		}
	}
}

// simFeedDir is where the started server finds the simulation's advisories.
func (e *env) simFeedDir() string { return filepath.Join(e.dataDir, "sim-feeds") }

// spawnServer starts `patchbay server` over plain HTTP on a free loopback
// port, with a fresh data dir (and the --db of this command).
func (e *env) spawnServer(ctx context.Context, o *simOpts) (*exec.Cmd, func(), error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, nil, err
	}
	if e.dataDir == "" || e.dataDir == defaultDataDir() {
		d, err := os.MkdirTemp("", "patchbay-sim-")
		if err != nil {
			return nil, nil, err
		}
		e.dataDir = d
	}
	if err := os.MkdirAll(e.simFeedDir(), 0o755); err != nil {
		return nil, nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	feedsDirs := o.feedsDirs
	if len(feedsDirs) == 0 {
		feedsDirs = []string{filepath.Join(o.shared, "feeds/osv/Debian"), filepath.Join(o.shared, "feeds/kev")}
	}
	args := []string{"server", "--plain-http", "--listen", addr, "--data-dir", e.dataDir, "--log-level", "warn", "--sync-interval", "24h"}
	// The simulation's own feeds last: its KEV catalog replaces the real one.
	for _, d := range append(feedsDirs, e.simFeedDir()) {
		args = append(args, "--feeds-dir", d)
	}
	if e.dsn != "" {
		args = append(args, "--db", e.dsn)
	}
	if o.debugListen != "" {
		args = append(args, "--debug-listen", o.debugListen)
	}
	cmd := exec.CommandContext(ctx, exe, args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	stop := func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
		if !o.keep {
			os.RemoveAll(e.dataDir)
		}
	}
	tokenCh := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sent := false
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if !sent && strings.HasPrefix(line, "pb_") {
				tokenCh <- line
				sent = true
			}
			if strings.Contains(line, "level=ERROR") || strings.Contains(line, "level=WARN") {
				fmt.Fprintln(e.stderr, "server:", line)
			}
		}
		io.Copy(io.Discard, stderr)
	}()
	select {
	case o.token = <-tokenCh:
	case <-time.After(60 * time.Second):
		stop()
		return nil, nil, errors.New("the server did not print its admin token within 60 s")
	}
	o.serverURL = "http://" + addr
	// Ready once the leader has imported the feeds.
	c := &api.Client{Base: o.serverURL, HTTP: http.DefaultClient}
	deadline := time.Now().Add(5 * time.Minute)
	for {
		var ready map[string]any
		if err := c.Do(ctx, http.MethodGet, "/readyz", nil, &ready); err == nil && ready["leader"] == true {
			var st map[string]any
			ac := &api.Client{Base: o.serverURL, Token: o.token, HTTP: http.DefaultClient}
			if err := ac.Do(ctx, http.MethodGet, api.Prefix+"/feeds", nil, &st); err == nil {
				if srcs, _ := st["sources"].([]any); len(srcs) > 0 {
					break
				}
			}
		}
		if time.Now().After(deadline) {
			stop()
			return nil, nil, errors.New("the server did not become ready with feeds within 5 minutes")
		}
		time.Sleep(200 * time.Millisecond)
	}
	return cmd, stop, nil
}

// procCPU reads a process's CPU seconds, user and system (clock ticks of
// 1/100 s, Linux's USER_HZ).
func procCPU(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name may hold spaces: the fields after it count from
	// its closing parenthesis (state is field 3, utime 14, stime 15).
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (u + st) / 100
}

// cpuNote says how many CPU seconds the server spent, when it was started.
func cpuNote(from, to float64) string {
	if to == 0 {
		return ""
	}
	return fmt.Sprintf(", server CPU %.1fs", to-from)
}

// procRSS reads a process's resident and peak resident memory, in MiB.
func procRSS(pid int) (rss, hwm float64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.ParseFloat(f[1], 64)
		switch f[0] {
		case "VmRSS:":
			rss = v / 1024
		case "VmHWM:":
			hwm = v / 1024
		}
	}
	return rss, hwm
}

func writeFiles(root string, files map[string]string) error {
	for p, c := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// simKEV is the shared KEV catalog with the simulated CVE added.
func simKEV(shared string) (string, error) {
	b, err := os.ReadFile(filepath.Join(shared, "feeds/kev/known_exploited_vulnerabilities.json"))
	if err != nil {
		return "", fmt.Errorf("the KEV catalog of the simulation: %w", err)
	}
	var cat map[string]any
	if err := json.Unmarshal(b, &cat); err != nil {
		return "", fmt.Errorf("the shared KEV catalog: %w", err)
	}
	vulns, _ := cat["vulnerabilities"].([]any)
	now := time.Now().UTC()
	vulns = append(vulns, map[string]any{"cveID": "CVE-2099-0001", "vendorProject": "sim", "product": "bash", "vulnerabilityName": "simulated",
		"dateAdded": now.Format(time.DateOnly), "shortDescription": "x", "requiredAction": "patch", "dueDate": now.AddDate(0, 0, 14).Format(time.DateOnly),
		"knownRansomwareCampaignUse": "Unknown", "notes": ""})
	cat["vulnerabilities"], cat["count"], cat["catalogVersion"] = vulns, len(vulns), "2099.01.01"
	out, err := json.Marshal(cat)
	return string(out), err
}
