package agent_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/patchbay/patchbay/agent"
	"github.com/patchbay/patchbay/internal/debroot"
	"github.com/patchbay/patchbay/job"
	"github.com/patchbay/patchbay/pkgmgr"
)

type jobRig struct {
	root string
	x    *agent.Executor
	key  ed25519.PrivateKey
	ups  []pkgmgr.Update
}

func newJobRig(t *testing.T) *jobRig {
	root := debroot.Bookworm(t)
	r := &pkgmgr.Runner{Root: root}
	apt := &pkgmgr.Apt{R: r, LockTimeout: time.Minute}
	ups, err := apt.Updates(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(ups) < 2 {
		t.Fatalf("the bookworm root has %d security updates; the test needs some", len(ups))
	}
	pub, key, _ := ed25519.GenerateKey(nil)
	state := t.TempDir()
	journal, err := job.OpenJournal(filepath.Join(state, "journal.json"))
	if err != nil {
		t.Fatal(err)
	}
	x := &agent.Executor{HostID: "host-1", Key: pub, Driver: apt, Runner: r, Reboot: &pkgmgr.Reboot{R: r}, Journal: journal,
		ResultDir: filepath.Join(state, "results"), RebootCommand: []string{"false"}, Log: slog.New(slog.DiscardHandler)}
	return &jobRig{root: root, x: x, key: key, ups: ups}
}

func (g *jobRig) sign(t *testing.T, m job.Manifest) job.Signed {
	t.Helper()
	now := time.Now()
	if m.HostID == "" {
		m.HostID = "host-1"
	}
	m.Rollout, m.Ring, m.Reboot, m.Timeout, m.IssuedAt, m.NotAfter = "plan-1", "staging", job.RebootIfRequired, 20*time.Minute, now, now.Add(time.Hour)
	if m.Attempt == 0 {
		m.Attempt = 1
	}
	s, err := job.Sign(m, g.key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (g *jobRig) targets() (to, from []job.Package) {
	for _, u := range g.ups {
		to = append(to, job.Package{Name: u.Name, Version: u.Candidate})
		from = append(from, job.Package{Name: u.Name, Version: u.Installed})
	}
	return to, from
}

// TestExecutorOnDebianRoot runs signed jobs on a real bookworm root:
// the security updates at their exact versions (checked with dpkg-query),
// a repeated delivery that does not run again, a job already satisfied,
// and refusals of a tampered manifest and of another host's job.
func TestExecutorOnDebianRoot(t *testing.T) {
	g := newJobRig(t)
	ctx := context.Background()
	to, from := g.targets()
	ok := g.sign(t, job.Manifest{JobID: "plan-1/host-1", Install: to, PostChecks: []job.HealthCheck{{Command: []string{"true"}}}})

	// Commands are not allowed by this agent: the post-check fails, and
	// the packages are rolled back.
	res, sent := g.x.Run(ctx, ok)
	if !sent || res.Outcome != job.RolledBack || !strings.Contains(res.Reason, "rolled back") {
		t.Fatalf("command check without permission: %+v", res)
	}
	if len(res.Checks) != 2 || res.Checks[0].Phase != job.PhasePost || res.Checks[0].OK || !strings.Contains(res.Checks[0].Detail, "--allow-check-commands") {
		t.Errorf("checks: %+v", res.Checks)
	}
	for _, p := range from {
		if v := debroot.Query(t, g.root, p.Name); v != p.Version {
			t.Errorf("after the rollback %s is %s, want %s", p.Name, v, p.Version)
		}
	}
	// Delivered again: not run again; the kept result is sent again.
	again, sent := g.x.Run(ctx, ok)
	if !sent || again.Outcome != job.RolledBack || !again.Started.Equal(res.Started) {
		t.Errorf("repeated delivery: %+v", again)
	}

	// The next attempt, with commands allowed: installed, verified.
	g.x.AllowCommands = true
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	second := g.sign(t, job.Manifest{JobID: "plan-1/host-1", Attempt: 2, Install: to,
		PreChecks: []job.HealthCheck{{TCP: ln.Addr().String()}}, PostChecks: []job.HealthCheck{{Command: []string{"dpkg", "--audit"}}, {TCP: ln.Addr().String()}}})
	res, _ = g.x.Run(ctx, second)
	if res.Outcome != job.Succeeded || res.Reboot != job.RebootNotNeeded {
		t.Fatalf("install: %+v", res)
	}
	for _, p := range to {
		if v := debroot.Query(t, g.root, p.Name); v != p.Version {
			t.Errorf("after the job %s is %s, want %s", p.Name, v, p.Version)
		}
	}
	if !slices.Equal(res.Before, from) || !slices.Equal(res.After, to) {
		t.Errorf("before %v after %v", res.Before, res.After)
	}
	if !slices.ContainsFunc(res.Commands, func(c pkgmgr.Command) bool { return slices.Contains(c.Args, "install") && c.Exit == 0 }) {
		t.Errorf("no apt-get install among the commands: %+v", res.Commands)
	}
	// An older attempt delivered late: refused by the journal, not run;
	// what it did the first time is sent again.
	if late, _ := g.x.Run(ctx, g.sign(t, job.Manifest{JobID: "plan-1/host-1", Attempt: 1, Install: from})); late.Attempt != 1 || late.Outcome != job.RolledBack {
		t.Errorf("a late attempt 1: %+v", late)
	}
	if v := debroot.Query(t, g.root, to[0].Name); v != to[0].Version {
		t.Errorf("the stale attempt changed %s to %s", to[0].Name, v)
	}

	// A host already at the versions: no change needed, nothing run.
	res, _ = g.x.Run(ctx, g.sign(t, job.Manifest{JobID: "plan-2/host-1", Install: to}))
	if res.Outcome != job.NoChange || slices.ContainsFunc(res.Commands, func(c pkgmgr.Command) bool { return slices.Contains(c.Args, "install") }) {
		t.Errorf("idempotent job: %+v", res)
	}

	// A tampered manifest (a package added after signing) and a job for
	// another host are refused without acting.
	bad := g.sign(t, job.Manifest{JobID: "plan-3/host-1", Install: from})
	var m map[string]any
	json.Unmarshal(bad.Manifest, &m)
	m["install"] = append(m["install"].([]any), map[string]any{"name": "netcat-traditional", "version": "1.10-47"})
	bad.Manifest, _ = json.Marshal(m)
	res, sent = g.x.Run(ctx, bad)
	if !sent || !res.Refused || res.Outcome != job.Failed || res.JobID != "plan-3/host-1" || !strings.Contains(res.Reason, "signature does not verify") {
		t.Errorf("tampered: %+v", res)
	}
	res, _ = g.x.Run(ctx, g.sign(t, job.Manifest{JobID: "plan-3/host-2", HostID: "host-2", Install: from}))
	if !res.Refused || !strings.Contains(res.Reason, "another host") {
		t.Errorf("another host's job: %+v", res)
	}
	if v := debroot.Query(t, g.root, to[0].Name); v != to[0].Version {
		t.Errorf("a refused job changed %s to %s", to[0].Name, v)
	}
}

// fakeDriver installs by bookkeeping: for the executor's decisions
// (reboots, restarts, failed installs) on the host's own root, where a
// real install would touch this machine.
type fakeDriver struct {
	inst    map[string]string
	failing string // installing this package fails half-way
}

func (d *fakeDriver) Installed(context.Context) ([]pkgmgr.Installed, error) {
	var out []pkgmgr.Installed
	for n, v := range d.inst {
		out = append(out, pkgmgr.Installed{Name: n, Version: v})
	}
	slices.SortFunc(out, func(a, b pkgmgr.Installed) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}
func (d *fakeDriver) Updates(context.Context) ([]pkgmgr.Update, error) { return nil, nil }
func (d *fakeDriver) Simulate(context.Context, []pkgmgr.Target) ([]pkgmgr.Change, error) {
	return nil, nil
}
func (d *fakeDriver) Install(_ context.Context, ts []pkgmgr.Target, _ pkgmgr.InstallOptions) (pkgmgr.Result, error) {
	var res pkgmgr.Result
	for _, t := range ts {
		if t.Name == d.failing {
			return res, errors.New("dpkg: error processing package " + t.Name)
		}
		if d.inst[t.Name] == t.Version {
			res.Unchanged = append(res.Unchanged, t)
			continue
		}
		res.Changes = append(res.Changes, pkgmgr.Change{Action: pkgmgr.ActionUpgrade, Name: t.Name, From: d.inst[t.Name], To: t.Version})
		d.inst[t.Name] = t.Version
	}
	return res, nil
}

type fakeReboot struct {
	st pkgmgr.RebootStatus
}

func (f *fakeReboot) Status(context.Context) (pkgmgr.RebootStatus, error) { return f.st, nil }

// TestExecutorRebootsRestartsAndFailures: the reboot policy (only inside
// the window, only when asked or required), restarts of units with stale
// libraries, and an install failing half-way rolled back.
func TestExecutorRebootsRestartsAndFailures(t *testing.T) {
	var ran [][]string
	runner := &pkgmgr.Runner{Root: "/", Exec: func(_ context.Context, args []string) (string, int, error) {
		ran = append(ran, args)
		return "", 0, nil
	}}
	pub, key, _ := ed25519.GenerateKey(nil)
	jdir := filepath.Join(t.TempDir(), "jobs")
	journal, _ := job.OpenJournal(filepath.Join(jdir, "journal.json"))
	drv := &fakeDriver{inst: map[string]string{"openssl": "3.0.15-1", "libssl3": "3.0.15-1", "nginx": "1.22.1-9"}}
	rb := &fakeReboot{}
	now := time.Date(2026, 11, 24, 22, 30, 0, 0, time.UTC)
	x := &agent.Executor{HostID: "h", Key: pub, Driver: drv, Runner: runner, Reboot: rb, Journal: journal, ResultDir: t.TempDir(),
		RebootCommand: []string{"systemctl", "reboot"}, Now: func() time.Time { return now }, Log: slog.New(slog.DiscardHandler)}
	n := 0
	sign := func(reboot job.Reboot, rebootBefore time.Time, restart bool, pkgs ...job.Package) job.Signed {
		n++
		s, err := job.Sign(job.Manifest{JobID: fmt.Sprintf("p%d/h", n), Attempt: 1, HostID: "h", Rollout: "p", Ring: "r", Install: pkgs, Reboot: reboot,
			RestartServices: restart, Timeout: time.Minute, IssuedAt: now, NotAfter: now.Add(time.Hour), RebootBefore: rebootBefore}, key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	ctx := context.Background()
	// Required, inside the window: rebooted (the command is run).
	rb.st = pkgmgr.RebootStatus{Required: true, Reasons: []string{"/run/reboot-required exists"}}
	res, _ := x.Run(ctx, sign(job.RebootIfRequired, now.Add(time.Hour), false, job.Package{Name: "openssl", Version: "3.0.17-1"}))
	if res.Outcome != job.Succeeded || res.Reboot != job.RebootScheduled || !slices.ContainsFunc(ran, func(a []string) bool { return slices.Equal(a, []string{"systemctl", "reboot"}) }) {
		t.Errorf("reboot inside the window: %+v %v", res, ran)
	}
	// Required, but the window is over (or none: the emergency lane): not
	// rebooted, reported as required.
	ran = nil
	res, _ = x.Run(ctx, sign(job.RebootIfRequired, time.Time{}, false, job.Package{Name: "libssl3", Version: "3.0.17-1"}))
	if res.Outcome != job.SucceededReboot || res.Reboot != job.RebootRequired || len(ran) != 0 {
		t.Errorf("reboot outside a window: %+v %v", res, ran)
	}
	// Never: a required reboot is still reported.
	res, _ = x.Run(ctx, sign(job.RebootNever, now.Add(time.Hour), false, job.Package{Name: "nginx", Version: "1.22.1-9+deb12u1"}))
	if res.Outcome != job.SucceededReboot || len(ran) != 0 {
		t.Errorf("reboot never: %+v %v", res, ran)
	}
	// Always, not required, inside the window: rebooted. And units
	// mapping replaced libraries are restarted.
	rb.st = pkgmgr.RebootStatus{Stale: []pkgmgr.StaleProcess{{PID: 10, Unit: "nginx.service"}, {PID: 11, Unit: "nginx.service"}, {PID: 12}}}
	res, _ = x.Run(ctx, sign(job.RebootAlways, now.Add(time.Hour), true, job.Package{Name: "openssl", Version: "3.0.17-2"}))
	if res.Outcome != job.Succeeded || res.Reboot != job.RebootScheduled || !slices.Equal(res.Restarted, []string{"nginx.service"}) ||
		!slices.ContainsFunc(ran, func(a []string) bool { return slices.Equal(a, []string{"systemctl", "restart", "nginx.service"}) }) {
		t.Errorf("always with restarts: %+v %v", res, ran)
	}
	// An install failing half-way: what changed is rolled back, failed.
	drv.failing = "nginx"
	rb.st = pkgmgr.RebootStatus{}
	res, _ = x.Run(ctx, sign(job.RebootNever, now.Add(time.Hour), false, job.Package{Name: "libssl3", Version: "3.0.17-2"}, job.Package{Name: "nginx", Version: "1.22.1-9+deb12u2"}))
	if res.Outcome != job.Failed || !strings.Contains(res.Reason, "install: dpkg: error processing package nginx; rolled back 1 package to its previous version") || drv.inst["libssl3"] != "3.0.17-1" {
		t.Errorf("failed install: %+v", res)
	}
	// The journal cannot be written (its directory is gone, a file in its
	// place): the job is reported failed and not run.
	os.RemoveAll(jdir)
	os.WriteFile(jdir, nil, 0o600)
	res, _ = x.Run(ctx, sign(job.RebootNever, now.Add(time.Hour), false, job.Package{Name: "nginx", Version: "1.22.1-9+deb12u3"}))
	if res.Outcome != job.Failed || !strings.Contains(res.Reason, "not started: job journal") || drv.inst["nginx"] == "1.22.1-9+deb12u3" {
		t.Errorf("no journal: %+v", res)
	}
	// The job's window closed before it could start: skipped, not run.
	late := sign(job.RebootNever, time.Time{}, false, job.Package{Name: "libssl3", Version: "3.0.18-1"})
	now = now.Add(2 * time.Hour)
	res, _ = x.Run(ctx, late)
	if res.Outcome != job.Skipped || res.Refused || drv.inst["libssl3"] == "3.0.18-1" || !strings.Contains(res.Reason, "window closed") {
		t.Errorf("expired job: %+v", res)
	}
}
