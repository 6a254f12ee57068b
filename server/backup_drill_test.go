package server_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/patchbay/patchbay/agent"
	"github.com/patchbay/patchbay/api"
	"github.com/patchbay/patchbay/api/policyapi"
	"github.com/patchbay/patchbay/api/rolloutapi"
	"github.com/patchbay/patchbay/audit"
	"github.com/patchbay/patchbay/auth"
	"github.com/patchbay/patchbay/backup"
	"github.com/patchbay/patchbay/feeds"
	"github.com/patchbay/patchbay/fleet"
	"github.com/patchbay/patchbay/internal/pgtest"
	"github.com/patchbay/patchbay/internal/rollouttest"
	"github.com/patchbay/patchbay/internal/sharedtest"
	"github.com/patchbay/patchbay/job"
	"github.com/patchbay/patchbay/kinds"
	"github.com/patchbay/patchbay/patch"
	"github.com/patchbay/patchbay/pkgmgr"
	"github.com/patchbay/patchbay/rollout"
	"github.com/patchbay/patchbay/server"
	"github.com/patchbay/patchbay/store"
)

// countingDriver installs by bookkeeping and counts the installs: a host
// that ran a job twice would install twice.
type countingDriver struct {
	inst     map[string]string
	installs int
}

func (d *countingDriver) Installed(context.Context) ([]pkgmgr.Installed, error) {
	var out []pkgmgr.Installed
	for n, v := range d.inst {
		out = append(out, pkgmgr.Installed{Name: n, Version: v})
	}
	return out, nil
}
func (d *countingDriver) Updates(context.Context) ([]pkgmgr.Update, error) { return nil, nil }
func (d *countingDriver) Simulate(context.Context, []pkgmgr.Target) ([]pkgmgr.Change, error) {
	return nil, nil
}
func (d *countingDriver) Install(_ context.Context, ts []pkgmgr.Target, _ pkgmgr.InstallOptions) (pkgmgr.Result, error) {
	d.installs++
	var res pkgmgr.Result
	for _, t := range ts {
		res.Changes = append(res.Changes, pkgmgr.Change{Action: pkgmgr.ActionUpgrade, Name: t.Name, From: d.inst[t.Name], To: t.Version})
		d.inst[t.Name] = t.Version
	}
	return res, nil
}

type noReboot struct{}

func (noReboot) Status(context.Context) (pkgmgr.RebootStatus, error) {
	return pkgmgr.RebootStatus{}, nil
}

// drillHost is an enrolled host with the agent's executor: the real
// journal and kept results on disk.
type drillHost struct {
	name, id, cred string
	drv            *countingDriver
	x              *agent.Executor
	journal        string
}

// TestRestoreDrill: server A with agents and a rollout in its second
// ring; a backup; the rollout goes on; A is destroyed; B is restored from
// the backup: the rollout is paused with an audit entry, the jobs run
// after the backup come back from the agents (their journals refuse to
// run them again and they send their kept results), a resume completes
// it with every host having run its job once, the audit chain verifies
// and the agents' credentials still work (no new enrollment). The backups
// are taken while other hosts check in without pause and the rollout goes
// on: no check-in fails or waits over 1 s, and the restore serves the same
// hosts, findings and audit history. On SQLite and on PostgreSQL.
func TestRestoreDrill(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			if backend == "postgres" {
				for _, tool := range []string{"pg_dump", "pg_restore", "psql"} {
					if _, err := exec.LookPath(tool); err != nil {
						sharedtest.System(t, tool+" is not installed (apt-get install postgresql-client)")
					}
				}
			}
			restoreDrill(t, backend)
		})
	}
}

func restoreDrill(t *testing.T, backend string) {
	feed := debianFeed(t)
	pkgs := webDB(t)
	ctx := context.Background()
	var clock atomic.Pointer[time.Time]
	set := func(t time.Time) { clock.Store(&t) }
	set(time.Date(2026, 11, 24, 22, 5, 0, 0, time.UTC)) // inside the nightly window
	now := func() time.Time { return *clock.Load() }
	mod := func(c *server.Config) { c.Now = now }
	a := newFixture(t, backend, mod)
	if _, err := (&feeds.Importer{Store: a.db, Now: now}).ImportPaths(ctx, []string{feed}); err != nil {
		t.Fatal(err)
	}
	viewer, admin := a.api(auth.Viewer), a.api(auth.Admin)
	alice, bob := a.api(auth.Operator), a.api(auth.Operator)
	a.apply(admin, policyapi.ApplyRequest{Files: []policyapi.PolicyFile{{Name: "rollout.yaml", Content: rollouttest.Policy}}})
	enrollTok := a.token(auth.KindEnrollment, auth.Agent, -1, time.Time{})
	var hosts []*drillHost
	for _, h := range []struct{ name, env string }{{"stg-1", "staging"}, {"prod-1", "prod"}, {"prod-2", "prod"}, {"prod-3", "prod"}} {
		facts := factsOf(h.name, "m-"+h.name)
		facts.Labels = map[string]string{"env": h.env, "exposure": "internet"}
		e := a.enrollWithUpdates(enrollTok, viewer, facts, pkgs, []string{"openssl", "curl", "glibc"})
		k, _ := agent.JobKeyOf(e.JobKey)
		dir := t.TempDir()
		journal, err := job.OpenJournal(filepath.Join(dir, "journal.json"))
		if err != nil {
			t.Fatal(err)
		}
		drv := &countingDriver{inst: map[string]string{}}
		runner := &pkgmgr.Runner{Root: "/", Exec: func(context.Context, []string) (string, int, error) { return "", 0, nil }}
		hosts = append(hosts, &drillHost{name: h.name, id: e.HostID, cred: e.Credential, drv: drv, journal: filepath.Join(dir, "journal.json"),
			x: &agent.Executor{HostID: e.HostID, Key: k, Driver: drv, Runner: runner, Reboot: noReboot{}, Journal: journal,
				ResultDir: filepath.Join(dir, "results"), Now: now, Log: slog.New(slog.DiscardHandler)}})
	}
	// Hosts outside the rollout's groups that only check in: the load
	// during the backups.
	type loadHost struct {
		id, cred string
		body     []byte
	}
	var load []loadHost
	for i := 0; i < 6; i++ {
		facts := factsOf(fmt.Sprintf("dev-%d", i), fmt.Sprintf("m-dev-%d", i))
		facts.Labels = map[string]string{"env": "dev"}
		e := a.enroll(enrollTok, facts)
		if code, body := a.do("POST", api.Prefix+"/agent/checkin", e.Credential, report(facts, pkgs, true)); code != 200 {
			t.Fatalf("check-in %s: %d %s", facts.Hostname, code, body)
		}
		body, _ := json.Marshal(report(facts, pkgs, false))
		load = append(load, loadHost{id: e.HostID, cred: e.Credential, body: body})
	}
	p := a.createPlan("plan", alice, rollout.PlanSpec{Strategy: "standard", Selector: rollout.Selector{Types: []patch.Type{patch.Security}}})
	a.approveAndStart(p.ID, alice, bob)

	// poll is the agent's job poll: each job run by the real executor
	// (journal first) and its result reported.
	poll := func(f *fixture, h *drillHost) {
		t.Helper()
		code, body := f.do("GET", api.Prefix+"/agent/jobs?wait=0", h.cred, nil)
		if code != 200 {
			t.Fatalf("poll %s: %d %s (the agent's credential is refused)", h.name, code, body)
		}
		var r api.JobsResponse
		f.decode(body, &r)
		for _, s := range r.Jobs {
			res, ok := h.x.Run(ctx, s)
			if !ok {
				continue
			}
			if code, body := f.do("POST", api.Prefix+"/agent/jobs/result", h.cred, res); code != 200 && code != 409 {
				t.Fatalf("report %s: %d %s", h.name, code, body)
			}
		}
	}
	round := func(f *fixture) {
		t.Helper()
		for _, h := range hosts {
			poll(f, h)
		}
		if err := f.srv.FlushCheckins(ctx); err != nil {
			t.Fatal(err)
		}
		if err := f.srv.StepRollouts(ctx, rollout.Fence{}); err != nil {
			t.Fatal(err)
		}
	}
	status := func(f *fixture, token string) rolloutapi.PlanStatus {
		t.Helper()
		code, body := f.do("GET", api.Prefix+"/plans/"+p.ID+"?hosts=1", token, nil)
		if code != 200 {
			t.Fatalf("plan: %d %s", code, body)
		}
		var st rolloutapi.PlanStatus
		f.decode(body, &st)
		return st
	}
	outcome := func(st rolloutapi.PlanStatus, name string) (job.Outcome, int) {
		for _, h := range st.Hosts {
			if h.Hostname == name {
				return h.Outcome, h.Attempt
			}
		}
		t.Fatalf("no host %s in the plan", name)
		return "", 0
	}

	// Staging runs and bakes; prod-1 runs; prod-2 is dispatched.
	for i := 0; i < 3; i++ {
		round(a)
	}
	set(now().Add(61 * time.Minute))
	for i := 0; i < 8; i++ {
		round(a)
		st := status(a, viewer)
		o1, _ := outcome(st, "prod-1")
		o2, at2 := outcome(st, "prod-2")
		if o1 != "" && o2 == "" && at2 == 1 {
			break
		}
	}
	st := status(a, viewer)
	if o, at := outcome(st, "prod-2"); st.Rollout == nil || st.Rollout.Ring != 1 || o != "" || at != 1 {
		t.Fatalf("before the backup: want ring prod with prod-2 dispatched, got %+v, prod-2 %q/%d", st.Rollout, o, at)
	}

	// The backup of A, as the CLI writes it: A's data dir holds the keys.
	dataA := t.TempDir()
	os.WriteFile(filepath.Join(dataA, "audit-signing.key"), a.key.Seed(), 0o600)
	os.WriteFile(filepath.Join(dataA, "job-signing.key"), testJobKey.Seed(), 0o600)
	optsA := backup.Options{DB: a.db, DataDir: dataA, IncludeKeysPlaintext: true, Now: now}
	if backend == "postgres" {
		optsA.DSN = a.dsn
	}
	// Check-ins flow the whole time the backups run: every load host
	// checks in again as soon as it is answered; the slowest is measured.
	stopLoad := make(chan struct{})
	var loadWG sync.WaitGroup
	var checkins, failed atomic.Int64
	var slowest atomic.Int64
	var loadErr atomic.Value
	for _, h := range load {
		loadWG.Add(1)
		go func() {
			defer loadWG.Done()
			for {
				select {
				case <-stopLoad:
					return
				default:
				}
				req, _ := http.NewRequest("POST", a.url+api.Prefix+"/agent/checkin", bytes.NewReader(h.body))
				req.Header.Set("Authorization", "Bearer "+h.cred)
				req.Header.Set("Content-Type", "application/json")
				start := time.Now()
				resp, err := http.DefaultClient.Do(req)
				if d := int64(time.Since(start)); d > slowest.Load() {
					slowest.Store(d)
				}
				checkins.Add(1)
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
				}
				if err != nil {
					failed.Add(1)
					loadErr.CompareAndSwap(nil, fmt.Sprintf("check-in of %s: %v", h.id, err))
				}
			}
		}()
	}
	var arch bytes.Buffer
	if _, err := backup.Create(ctx, &arch, optsA); err != nil {
		t.Fatal(err)
	}
	// The rollout goes on on A while backups are taken back to back:
	// prod-2 reports, prod-3 is dispatched and reports.
	stopBackups := make(chan struct{})
	backupsDone := make(chan error, 1)
	var during int
	go func() {
		for {
			select {
			case <-stopBackups:
				backupsDone <- nil
				return
			default:
			}
			if _, err := backup.Create(ctx, io.Discard, optsA); err != nil {
				backupsDone <- err
				return
			}
			during++
		}
	}()
	for i := 0; i < 8; i++ {
		round(a)
		if o, _ := outcome(status(a, viewer), "prod-3"); o != "" {
			break
		}
	}
	close(stopBackups)
	if err := <-backupsDone; err != nil {
		t.Fatalf("a backup during the rollout: %v", err)
	}
	close(stopLoad)
	loadWG.Wait()
	t.Logf("%d check-ins during %d backups (one before the rollout went on, %d while it did), the slowest %s", checkins.Load(), during+1, during, time.Duration(slowest.Load()))
	if failed.Load() != 0 || checkins.Load() == 0 {
		t.Fatalf("%d of %d check-ins failed during the backups (%v)", failed.Load(), checkins.Load(), loadErr.Load())
	}
	if d := time.Duration(slowest.Load()); d > time.Second {
		t.Errorf("a check-in waited %s during the backups, want at most 1s", d)
	}
	if during == 0 {
		t.Error("no backup ran while the rollout went on")
	}
	st = status(a, viewer)
	if o, _ := outcome(st, "prod-3"); o == "" {
		t.Fatalf("after the backup, on A: prod-3 did not run: %+v", st.Hosts)
	}
	// What the restore must serve again: the hosts, the load hosts'
	// findings (their first-seen history included) and the audit chain
	// up to the head the archive recorded.
	hostsA := hostIDs(a, viewer)
	findingsA := map[string][]fleet.FindingRow{}
	for _, h := range load {
		findingsA[h.id] = a.findings(viewer, url.Values{"host": {h.id}, "status": {"all"}})
	}
	auditA, err := a.db.Audit.Entries(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// A is destroyed.
	a.db.Close()

	// B, restored from the backup.
	dataB := filepath.Join(t.TempDir(), "data")
	c, err := backup.Check(ctx, bytes.NewReader(arch.Bytes()), t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ropts, dsnB := backup.RestoreOptions{DataDir: dataB, Now: now}, filepath.Join(dataB, "patchbay.db")
	if backend == "postgres" {
		dsnB = pgtest.Fresh(t)
		ropts.DSN = dsnB
	}
	res, err := backup.Restore(ctx, c, ropts)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Paused) != 1 || res.Paused[0] != p.ID {
		t.Fatalf("paused %v, want %s", res.Paused, p.ID)
	}
	bdb, err := store.Open(ctx, dsnB)
	if err != nil {
		t.Fatal(err)
	}
	defer bdb.Close()
	seed, _ := os.ReadFile(filepath.Join(dataB, "job-signing.key"))
	aseed, _ := os.ReadFile(filepath.Join(dataB, "audit-signing.key"))
	bsrv, err := server.New(server.Config{DB: bdb, Kinds: kinds.All(), ReplicaID: "b", AuditKey: ed25519.NewKeyFromSeed(aseed), JobKey: ed25519.NewKeyFromSeed(seed),
		CheckpointDir: t.TempDir(), MaxBody: 4 << 20, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(bsrv.Handler())
	defer ts.Close()
	b := &fixture{t: t, db: bdb, srv: bsrv, url: ts.URL, key: ed25519.NewKeyFromSeed(aseed)}

	// The same hosts, findings and audit history as A.
	if hostsB := hostIDs(b, viewer); !slices.Equal(hostsA, hostsB) {
		t.Errorf("restored hosts %v, want %v", hostsB, hostsA)
	}
	for _, h := range load {
		if got := b.findings(viewer, url.Values{"host": {h.id}, "status": {"all"}}); len(got) == 0 || !reflect.DeepEqual(got, findingsA[h.id]) {
			t.Errorf("host %s: %d findings restored, want the %d of A as they were", h.id, len(got), len(findingsA[h.id]))
		}
	}
	auditB, err := bdb.Audit.Entries(ctx)
	if err != nil {
		t.Fatal(err)
	}
	head := res.Manifest.AuditHead
	if int(head.Seq) > len(auditA) || int(head.Seq) > len(auditB) || auditA[head.Seq-1].Hash != head.Hash || auditB[head.Seq-1].Hash != head.Hash {
		t.Fatalf("audit head %d %s not the same entry on A and the restore", head.Seq, head.Hash)
	}
	for i := range auditB[:head.Seq] {
		if auditB[i].Hash != auditA[i].Hash {
			t.Fatalf("audit entry %d differs after the restore", auditB[i].Seq)
		}
	}

	// Paused, and never resumed by itself.
	for i := 0; i < 3; i++ {
		round(b)
	}
	st = status(b, viewer)
	if st.Rollout.State != rollout.Paused {
		t.Fatalf("after the restore: %s, want paused", st.Rollout.State)
	}
	// prod-2's job, dispatched in the backup, came back from its agent.
	if o, _ := outcome(st, "prod-2"); o != job.Succeeded {
		t.Errorf("prod-2 not reconciled while paused: %q", o)
	}
	if o, _ := outcome(st, "prod-3"); o != "" {
		t.Errorf("prod-3 settled while paused: %q", o)
	}
	if code, body := b.do("POST", api.Prefix+"/plans/"+p.ID+"/resume", admin, nil); code != 200 {
		t.Fatalf("resume: %d %s", code, body)
	}
	for i := 0; i < 4; i++ {
		round(b)
	}
	st = status(b, viewer)
	if st.Rollout.State != rollout.Completed {
		t.Fatalf("after the resume: %s, want completed (%+v)", st.Rollout.State, st.Hosts)
	}
	for _, h := range hosts {
		if h.drv.installs != 1 {
			t.Errorf("%s installed %d times", h.name, h.drv.installs)
		}
		var ran map[string]int
		bj, _ := os.ReadFile(h.journal)
		if err := json.Unmarshal(bj, &ran); err != nil || len(ran) != 1 || ran[job.ID(p.ID, h.id)] != 1 {
			t.Errorf("%s journal: %s", h.name, bj)
		}
		if o, _ := outcome(st, h.name); o != job.Succeeded {
			t.Errorf("%s: %q", h.name, o)
		}
	}
	entries, err := bdb.Audit.Entries(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := audit.Verify(entries, nil); err != nil {
		t.Fatal(err)
	}
	var pausedBy, restored, enrolled int
	for _, e := range entries {
		switch {
		case e.Action == "rollout.pause" && e.Actor == "backup":
			pausedBy++
		case e.Action == "backup.restore":
			restored++
		case strings.Contains(e.Action, "enroll") && e.Seq > res.Manifest.AuditHead.Seq:
			enrolled++
		}
	}
	if pausedBy != 1 || restored != 1 || enrolled != 0 {
		t.Errorf("audit: %d pauses by the restore, %d restores, %d enrollments after the backup", pausedBy, restored, enrolled)
	}
}

// hostIDs lists the ids of the hosts f serves, sorted.
func hostIDs(f *fixture, token string) []string {
	f.t.Helper()
	code, body := f.do("GET", api.Prefix+"/hosts", token, nil)
	if code != 200 {
		f.t.Fatalf("hosts: %d %s", code, body)
	}
	var hl api.HostList
	f.decode(body, &hl)
	var ids []string
	for _, h := range hl.Hosts {
		ids = append(ids, h.ID)
	}
	slices.Sort(ids)
	return ids
}
