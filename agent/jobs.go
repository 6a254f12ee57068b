package agent

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/patchbay/patchbay/api"
	"github.com/patchbay/patchbay/job"
	"github.com/patchbay/patchbay/pkgmgr"
)

// RebootChecker says whether the host needs a reboot and which processes
// still use replaced libraries (pkgmgr.Reboot).
type RebootChecker interface {
	Status(ctx context.Context) (pkgmgr.RebootStatus, error)
}

// Executor runs the server's signed jobs on this host: it verifies each
// (signature, target host, not-after), runs each (job id, attempt) at most
// once (the journal), and acts only through structured operations — the
// package manager driver at exact versions, health checks, service
// restarts, the reboot policy — never a free shell.
type Executor struct {
	HostID string
	// Key is the server's job-signing public key, learnt at enrollment.
	Key     ed25519.PublicKey
	Driver  pkgmgr.Driver
	Runner  *pkgmgr.Runner // systemctl and allowed check commands, in the root
	Reboot  RebootChecker
	Journal *job.Journal
	// ResultDir keeps each job's result, to send again when a job is
	// delivered twice (the first report was lost).
	ResultDir string
	// AllowCommands lets health checks run commands (the agent's own
	// configuration; the server cannot turn it on).
	AllowCommands bool
	// RebootCommand reboots the host; reboots happen only when the root is
	// the host's own ("/").
	RebootCommand []string
	Now           func() time.Time
	Log           interface {
		Info(msg string, args ...any)
		Warn(msg string, args ...any)
	}
}

func (x *Executor) now() time.Time {
	if x.Now != nil {
		return x.Now()
	}
	return time.Now()
}

func (x *Executor) resultPath(id string, attempt int) string {
	sum := sha256.Sum256([]byte(id))
	return filepath.Join(x.ResultDir, fmt.Sprintf("%s-%d.json", hex.EncodeToString(sum[:12]), attempt))
}

// claimed reads the job id and attempt a manifest claims, for reporting a
// job that does not verify (nothing else of it is trusted).
func claimed(s job.Signed) (string, int) {
	var m struct {
		JobID   string `json:"job_id"`
		Attempt int    `json:"attempt"`
	}
	_ = json.Unmarshal(s.Manifest, &m)
	return m.JobID, m.Attempt
}

// Run verifies and runs one job and returns its result; ok is false when
// there is nothing to report (a repeated delivery without a kept result).
// JobAttrs are the log attributes of a job (its id "PLAN/HOST"): job_id,
// plan_id and rollout_id (a rollout is a started plan, under the plan's
// id), and host (the host id, the job's own when host is "") — the ids
// every log line about a job carries, so a log tool can join the
// server's and the agents' lines.
func JobAttrs(jobID, host string) []any {
	plan, h := jobID, ""
	if i := strings.LastIndexByte(jobID, '/'); i >= 0 {
		plan, h = jobID[:i], jobID[i+1:]
	}
	if host == "" {
		host = h
	}
	return []any{"job_id", jobID, "plan_id", plan, "rollout_id", plan, "host", host}
}

func (x *Executor) Run(ctx context.Context, s job.Signed) (job.Result, bool) {
	now := x.now().UTC()
	m, err := job.Verify(s, x.Key, x.HostID, now)
	if err != nil {
		id, attempt := claimed(s)
		res := job.Result{JobID: id, Attempt: attempt, Outcome: job.Failed, Refused: true, Reason: "refused: " + err.Error(), Started: now, Finished: now}
		if errors.Is(err, job.ErrExpired) {
			res.Outcome, res.Refused, res.Reason = job.Skipped, false, "not started: "+err.Error()+"; its window closed before it could start"
		}
		x.Log.Warn("job refused", append(JobAttrs(id, x.HostID), "attempt", attempt, "err", err)...)
		return res, true
	}
	if err := x.Journal.Begin(m); err != nil && !errors.Is(err, job.ErrStale) {
		// Without a journal entry the job must not run (it could run twice).
		return job.Result{JobID: m.JobID, Attempt: m.Attempt, Outcome: job.Failed, Reason: "not started: " + err.Error(), Started: now, Finished: now}, true
	} else if err != nil {
		// Run before: send what it did again, if kept.
		b, rerr := os.ReadFile(x.resultPath(m.JobID, m.Attempt))
		var res job.Result
		if rerr != nil || json.Unmarshal(b, &res) != nil {
			x.Log.Warn("job delivered again; it was started before and has no kept result (the server times it out)", append(JobAttrs(m.JobID, x.HostID), "attempt", m.Attempt)...)
			return res, false
		}
		return res, true
	}
	x.Log.Info("job started", append(JobAttrs(m.JobID, x.HostID), "attempt", m.Attempt, "packages", len(m.Install))...)
	res := x.execute(ctx, m)
	if m.Revert != "" && (res.Outcome == job.Succeeded || res.Outcome == job.SucceededReboot || res.Outcome == job.NoChange) {
		res.Outcome, res.Reason = job.RolledBack, strings.TrimPrefix(res.Reason+"; ", "; ")+"reverted to the previous versions: "+m.Revert
	}
	res.Finished = x.now().UTC()
	if b, err := json.Marshal(res); err == nil {
		if err := os.MkdirAll(x.ResultDir, 0o700); err == nil {
			_ = writeFileAtomic(x.resultPath(m.JobID, m.Attempt), b, 0o600)
		}
	}
	x.Log.Info("job finished", append(JobAttrs(m.JobID, x.HostID), "attempt", m.Attempt, "outcome", res.Outcome, "reason", res.Reason)...)
	return res, true
}

func (x *Executor) execute(ctx context.Context, m job.Manifest) (res job.Result) {
	res = job.Result{JobID: m.JobID, Attempt: m.Attempt, Started: x.now().UTC()}
	if m.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, m.Timeout)
		defer cancel()
	}
	logStart := len(x.Runner.Log())
	defer func() { res.Commands = x.Runner.Log()[logStart:] }()
	if !x.checks(ctx, job.PhasePre, m.PreChecks, &res) {
		res.Outcome, res.Reason = job.Failed, "a pre-check failed: nothing was changed"
		return res
	}
	targets := make([]pkgmgr.Target, len(m.Install))
	for i, p := range m.Install {
		targets[i] = pkgmgr.Target{Name: p.Name, Version: p.Version}
	}
	before, err := x.Driver.Installed(ctx)
	if err != nil {
		res.Outcome, res.Reason = job.Failed, "list installed packages: "+err.Error()
		return res
	}
	res.Before = versionsOf(before, m.Install)
	ir, err := x.Driver.Install(ctx, targets, pkgmgr.InstallOptions{})
	res.Changes, res.Skipped = ir.Changes, ir.Skipped
	if err != nil {
		res.Outcome, res.Reason = job.Failed, "install: "+err.Error()
		if len(ir.Changes) > 0 {
			res.Reason += "; " + x.rollback(ctx, ir.Changes, m, &res)
		}
		res.After = x.after(ctx, m)
		return res
	}
	switch {
	case len(ir.Changes) == 0 && len(ir.Skipped) == 0:
		res.Outcome, res.After = job.NoChange, res.Before
		return res
	case len(ir.Changes) == 0:
		res.Outcome, res.Reason, res.After = job.Skipped, skipReasons(ir.Skipped), res.Before
		return res
	}
	if m.RestartServices {
		x.restart(ctx, &res)
	}
	if !x.checks(ctx, job.PhasePost, m.PostChecks, &res) {
		res.Outcome = job.RolledBack
		res.Reason = "a post-check failed; " + x.rollback(ctx, ir.Changes, m, &res)
		x.checks(ctx, job.PhasePostRollback, m.PostChecks, &res)
		res.After = x.after(ctx, m)
		return res
	}
	res.After = x.after(ctx, m)
	res.Outcome = job.Succeeded
	if len(ir.Skipped) > 0 {
		res.Outcome, res.Reason = job.Skipped, "partly: "+skipReasons(ir.Skipped)
	}
	x.reboot(ctx, m, &res)
	return res
}

func skipReasons(sk []pkgmgr.Skip) string {
	parts := make([]string, len(sk))
	for i, s := range sk {
		parts[i] = s.Target.Name + " " + s.Reason
	}
	return "not installed: " + strings.Join(parts, "; ")
}

func versionsOf(inst []pkgmgr.Installed, want []job.Package) []job.Package {
	out := make([]job.Package, 0, len(want))
	for _, w := range want {
		v := ""
		if i := slices.IndexFunc(inst, func(p pkgmgr.Installed) bool { return p.Name == w.Name }); i >= 0 {
			v = inst[i].Version
		}
		out = append(out, job.Package{Name: w.Name, Version: v})
	}
	return out
}

func (x *Executor) after(ctx context.Context, m job.Manifest) []job.Package {
	inst, err := x.Driver.Installed(context.WithoutCancel(ctx))
	if err != nil {
		return nil
	}
	return versionsOf(inst, m.Install)
}

// rollback brings what an install changed back to the recorded previous
// versions (new dependencies stay: removing packages is never automatic).
func (x *Executor) rollback(ctx context.Context, changes []pkgmgr.Change, m job.Manifest, res *job.Result) string {
	var back []pkgmgr.Target
	for _, c := range changes {
		if c.From != "" && (c.Action == pkgmgr.ActionUpgrade || c.Action == pkgmgr.ActionDowngrade) {
			back = append(back, pkgmgr.Target{Name: c.Name, Version: c.From})
		}
	}
	if len(back) == 0 {
		return "nothing to roll back"
	}
	// The job's deadline may have passed: the rollback still runs.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Minute)
	defer cancel()
	r, err := x.Driver.Install(rctx, back, pkgmgr.InstallOptions{})
	if err != nil {
		res.Outcome = job.Failed
		return fmt.Sprintf("rollback to the previous versions failed: %v", err)
	}
	res.Changes = append(res.Changes, r.Changes...)
	if len(back) == 1 {
		return "rolled back 1 package to its previous version"
	}
	return fmt.Sprintf("rolled back %d packages to their previous versions", len(back))
}

// checks runs health checks in a phase and records them; it says whether
// all passed.
func (x *Executor) checks(ctx context.Context, phase job.Phase, cs []job.HealthCheck, res *job.Result) bool {
	ok := true
	for _, c := range cs {
		start := time.Now()
		err := x.check(ctx, c)
		cr := job.CheckResult{Phase: phase, Check: c, OK: err == nil, Duration: time.Since(start)}
		if err != nil {
			cr.Detail, ok = err.Error(), false
		}
		res.Checks = append(res.Checks, cr)
	}
	return ok
}

func (x *Executor) check(ctx context.Context, c job.HealthCheck) error {
	timeout := time.Duration(c.Timeout)
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	switch {
	case c.HTTP != "":
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.HTTP, nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return fmt.Errorf("GET %s: %w", c.HTTP, err)
		}
		resp.Body.Close()
		want := c.Status
		if want == 0 {
			want = http.StatusOK
		}
		if resp.StatusCode != want {
			return fmt.Errorf("GET %s: status %d, want %d", c.HTTP, resp.StatusCode, want)
		}
		return nil
	case c.TCP != "":
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", c.TCP)
		if err != nil {
			return fmt.Errorf("connect %s: %w", c.TCP, err)
		}
		return conn.Close()
	case c.Systemd != "":
		if _, err := x.Runner.Run(ctx, "systemctl", "is-active", "--quiet", c.Systemd); err != nil {
			return fmt.Errorf("systemd unit %s is not active: %w", c.Systemd, err)
		}
		return nil
	case len(c.Command) > 0:
		if !x.AllowCommands {
			return fmt.Errorf("command checks are not allowed by this agent's configuration (start it with --allow-check-commands)")
		}
		if _, err := x.Runner.Run(ctx, c.Command...); err != nil {
			return err
		}
		return nil
	}
	return fmt.Errorf("empty health check")
}

// restart restarts the systemd units of processes that still map replaced
// libraries.
func (x *Executor) restart(ctx context.Context, res *job.Result) {
	st, err := x.Reboot.Status(ctx)
	if err != nil {
		return
	}
	var units []string
	for _, p := range st.Stale {
		if p.Unit != "" && !slices.Contains(units, p.Unit) {
			units = append(units, p.Unit)
		}
	}
	slices.Sort(units)
	for _, u := range units {
		if _, err := x.Runner.Run(ctx, "systemctl", "restart", u); err == nil {
			res.Restarted = append(res.Restarted, u)
		}
	}
}

// reboot applies the reboot policy: always, or if required; only before
// the window closes and only for the host's own root. A reboot not made
// is reported as required.
func (x *Executor) reboot(ctx context.Context, m job.Manifest, res *job.Result) {
	st, err := x.Reboot.Status(ctx)
	required := err == nil && st.Required
	want := m.Reboot == job.RebootAlways || (m.Reboot == job.RebootIfRequired && required)
	canNow := !m.RebootBefore.IsZero() && x.now().Before(m.RebootBefore) && (x.Runner.Root == "" || x.Runner.Root == "/") && len(x.RebootCommand) > 0
	switch {
	case want && canNow:
		if _, err := x.Runner.Run(ctx, x.RebootCommand...); err == nil {
			res.Reboot = job.RebootScheduled
			return
		}
		fallthrough
	case required || want:
		res.Reboot, res.Outcome = job.RebootRequired, job.SucceededReboot
	}
}

// DriverFor picks the package manager driver of a root.
func DriverFor(r *pkgmgr.Runner) (pkgmgr.Driver, error) {
	root := r.Root
	if root == "" {
		root = "/"
	}
	switch {
	case exists(filepath.Join(root, "usr/bin/apt-get")):
		return &pkgmgr.Apt{R: r, LockTimeout: 5 * time.Minute}, nil
	case exists(filepath.Join(root, "usr/bin/dnf")):
		return &pkgmgr.Dnf{R: r}, nil
	case exists(filepath.Join(root, "sbin/apk")):
		return &pkgmgr.Apk{R: r}, nil
	}
	return nil, fmt.Errorf("no supported package manager (apt, dnf, apk) under %s", root)
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// JobKeyOf decodes the key an enrollment returned.
func JobKeyOf(b64 string) (ed25519.PublicKey, error) {
	b, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("server job key %q: not a base64 Ed25519 public key", b64)
	}
	return ed25519.PublicKey(b), nil
}

// RunJobs polls the server for jobs (a long poll of wait) and runs them
// one at a time, reporting each result, until ctx ends.
func (a *Agent) RunJobs(ctx context.Context, x *Executor, wait time.Duration) error {
	failures := 0
	for ctx.Err() == nil {
		cred, err := LoadCredential(a.StateDir)
		if err == nil && cred == nil {
			err = errors.New("not enrolled yet")
		}
		if err == nil {
			err = a.pollOnce(ctx, cred, x, wait)
		}
		if err == nil {
			failures = 0
			continue
		}
		if ctx.Err() != nil {
			return nil
		}
		failures++
		d := backoff(failures, time.Minute)
		a.log().Warn("job poll", "err", err, "retry_in", d.Round(time.Millisecond))
		if err := a.sleep(ctx, d); err != nil {
			return nil
		}
	}
	return nil
}

func (a *Agent) pollOnce(ctx context.Context, cred *Credential, x *Executor, wait time.Duration) error {
	if x.Key == nil {
		if cred.JobKey == "" {
			return errors.New("the credential holds no server job key (enrolled before rollouts existed): enroll again to run jobs")
		}
		k, err := JobKeyOf(cred.JobKey)
		if err != nil {
			return err
		}
		x.Key = k
	}
	x.HostID = cred.HostID
	cl := *a.Client
	cl.Token = cred.Secret
	var resp api.JobsResponse
	pctx, cancel := context.WithTimeout(ctx, wait+30*time.Second)
	err := cl.Do(pctx, http.MethodGet, fmt.Sprintf("%s/agent/jobs?wait=%d", api.Prefix, int(wait/time.Second)), nil, &resp)
	cancel()
	if err != nil {
		return err
	}
	for _, s := range resp.Jobs {
		res, ok := x.Run(ctx, s)
		if !ok {
			continue
		}
		if err := a.report(ctx, &cl, res); err != nil {
			return err
		}
	}
	return nil
}

// report sends a result until the server has it; a stale report (the
// server settled the job already, or it is not the current attempt) is
// dropped.
func (a *Agent) report(ctx context.Context, cl *api.Client, res job.Result) error {
	for n := 1; ; n++ {
		err := cl.Do(ctx, http.MethodPost, api.Prefix+"/agent/jobs/result", res, nil)
		switch {
		case err == nil:
			return nil
		case api.CodeOf(err) == api.CodeStale:
			a.log().Warn("the server refused a stale job report", append(JobAttrs(res.JobID, ""), "attempt", res.Attempt, "err", err)...)
			return nil
		case api.IsStatus(err, http.StatusBadRequest):
			return fmt.Errorf("the server rejected the report of %s: %w", res.JobID, err)
		}
		if err := a.sleep(ctx, backoff(n, time.Minute)); err != nil {
			return err
		}
	}
}
