package agent_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/patchbay/patchbay/agent"
	"github.com/patchbay/patchbay/internal/debroot"
	"github.com/patchbay/patchbay/job"
	"github.com/patchbay/patchbay/pkgmgr"
	"github.com/patchbay/patchbay/rollout"
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
	m.Rollout, m.Ring, m.Reboot, m.Timeout, m.IssuedAt, m.NotAfter = "plan-1", "staging", "if-required", 20*time.Minute, now, now.Add(time.Hour)
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
	ok := g.sign(t, job.Manifest{JobID: "plan-1/host-1", Install: to, PostChecks: []rollout.HealthCheck{{Command: []string{"true"}}}})

	// Commands are not allowed by this agent: the post-check fails, and
	// the packages are rolled back.
	res, sent := g.x.Run(ctx, ok)
	if !sent || res.Outcome != rollout.RolledBack || !strings.Contains(res.Reason, "rolled back") {
		t.Fatalf("command check without permission: %+v", res)
	}
	if len(res.Checks) != 2 || res.Checks[0].Phase != "post" || res.Checks[0].OK || !strings.Contains(res.Checks[0].Detail, "--allow-check-commands") {
		t.Errorf("checks: %+v", res.Checks)
	}
	for _, p := range from {
		if v := debroot.Query(t, g.root, p.Name); v != p.Version {
			t.Errorf("after the rollback %s is %s, want %s", p.Name, v, p.Version)
		}
	}
	// Delivered again: not run again; the kept result is sent again.
	again, sent := g.x.Run(ctx, ok)
	if !sent || again.Outcome != rollout.RolledBack || !again.Started.Equal(res.Started) {
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
		PreChecks: []rollout.HealthCheck{{TCP: ln.Addr().String()}}, PostChecks: []rollout.HealthCheck{{Command: []string{"dpkg", "--audit"}}, {TCP: ln.Addr().String()}}})
	res, _ = g.x.Run(ctx, second)
	if res.Outcome != rollout.Succeeded && res.Outcome != rollout.SucceededReboot {
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
	if late, _ := g.x.Run(ctx, g.sign(t, job.Manifest{JobID: "plan-1/host-1", Attempt: 1, Install: from})); late.Attempt != 1 || late.Outcome != rollout.RolledBack {
		t.Errorf("a late attempt 1: %+v", late)
	}
	if v := debroot.Query(t, g.root, to[0].Name); v != to[0].Version {
		t.Errorf("the stale attempt changed %s to %s", to[0].Name, v)
	}

	// A host already at the versions: no change needed, nothing run.
	res, _ = g.x.Run(ctx, g.sign(t, job.Manifest{JobID: "plan-2/host-1", Install: to}))
	if res.Outcome != rollout.NoChange || slices.ContainsFunc(res.Commands, func(c pkgmgr.Command) bool { return slices.Contains(c.Args, "install") }) {
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
	if !sent || !res.Refused || res.Outcome != rollout.Failed || res.JobID != "plan-3/host-1" || !strings.Contains(res.Reason, "signature does not verify") {
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
