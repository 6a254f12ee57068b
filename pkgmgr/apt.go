package pkgmgr

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/patchbay/patchbay/match"
)

// Apt drives apt and dpkg (Debian, Ubuntu) for a root.
type Apt struct {
	R *Runner
	// LockTimeout is how long to wait for the dpkg lock; 0 means 5 minutes.
	LockTimeout time.Duration
	// Changelogs reads the CVEs an update fixes; nil leaves Update.CVEs
	// empty.
	Changelogs *Changelogs
}

func (a *Apt) root() string {
	if a.R.chrooted() {
		return a.R.Root
	}
	return "/"
}

// Installed lists installed packages (every package dpkg knows that is not
// purged), with source package and hold state.
func (a *Apt) Installed(ctx context.Context) ([]Installed, error) {
	c, err := a.R.Run(ctx, "dpkg-query", "-W", "-f", `${Package}\t${Architecture}\t${Version}\t${source:Package}\t${source:Version}\t${db:Status-Abbrev}\n`)
	if err != nil {
		return nil, err
	}
	var out []Installed
	for _, line := range strings.Split(c.Output, "\n") {
		if line == "" {
			continue
		}
		f := strings.Split(line, "\t")
		if len(f) != 6 {
			return nil, &ParseError{Cmd: c.String(), Line: line, Why: "want 6 tab-separated fields"}
		}
		st := strings.TrimSpace(f[5])
		if len(st) < 2 || st[1] == 'n' || st[1] == 'c' { // not installed, config-files only
			continue
		}
		out = append(out, Installed{Name: f[0], Arch: f[1], Version: f[2], SourceName: f[3], SourceVersion: f[4], Status: st, Held: st[0] == 'h'})
	}
	return out, nil
}

var (
	instRE = regexp.MustCompile(`^Inst (\S+) (?:\[(\S+)\] )?\((\S+) (.*) \[(\S+)\]\)`)
	remvRE = regexp.MustCompile(`^Remv (\S+)(?: \[(\S+)\])?`)
)

// parseSimulation reads the Inst/Remv lines of `apt-get -s`.
func parseSimulation(c Command) ([]Change, error) {
	var out []Change
	for _, line := range strings.Split(c.Output, "\n") {
		switch {
		case strings.HasPrefix(line, "Inst "):
			m := instRE.FindStringSubmatch(line)
			if m == nil {
				return nil, &ParseError{Cmd: c.String(), Line: line, Why: "unexpected Inst line"}
			}
			ch := Change{Name: m[1], From: m[2], To: m[3], Action: ActionInstall}
			if ch.From != "" {
				cmp, err := match.Compare("Debian", ch.From, ch.To)
				if err != nil {
					return nil, &ParseError{Cmd: c.String(), Line: line, Why: err.Error()}
				}
				switch {
				case cmp < 0:
					ch.Action = ActionUpgrade
				case cmp > 0:
					ch.Action = ActionDowngrade
				default:
					ch.Action = ActionReinstall
				}
			}
			out = append(out, ch)
		case strings.HasPrefix(line, "Remv "):
			m := remvRE.FindStringSubmatch(line)
			if m == nil {
				return nil, &ParseError{Cmd: c.String(), Line: line, Why: "unexpected Remv line"}
			}
			out = append(out, Change{Action: ActionRemove, Name: m[1], From: m[2]})
		}
	}
	return out, nil
}

// policy is what `apt-cache policy` says of one package.
type policy struct {
	installed, candidate string
	// origins maps each version to the archives ("bookworm-security/main")
	// that offer it.
	origins map[string][]string
}

var (
	policyVersionRE = regexp.MustCompile(`^ (?:\*\*\*| {3}) (\S+) (-?\d+)$`)
	policySourceRE  = regexp.MustCompile(`^\s+(-?\d+) (\S+)(?: (\S+))?(?: (\S+))?(?: Packages)?$`)
)

func (a *Apt) policies(ctx context.Context, names []string) (map[string]*policy, error) {
	out := map[string]*policy{}
	if len(names) == 0 {
		return out, nil
	}
	c, err := a.R.Run(ctx, append([]string{"apt-cache", "policy"}, names...)...)
	if err != nil {
		return nil, err
	}
	var cur *policy
	var ver string
	for _, line := range strings.Split(c.Output, "\n") {
		switch {
		case line == "":
		case !strings.HasPrefix(line, " "):
			name := strings.TrimSuffix(line, ":")
			cur = &policy{origins: map[string][]string{}}
			out[name] = cur
			if i := strings.IndexByte(name, ':'); i >= 0 { // name:arch
				out[name[:i]] = cur
			}
		case cur == nil:
			return nil, &ParseError{Cmd: c.String(), Line: line, Why: "line before any package"}
		case strings.HasPrefix(line, "  Installed: "):
			cur.installed = strings.TrimPrefix(line, "  Installed: ")
		case strings.HasPrefix(line, "  Candidate: "):
			cur.candidate = strings.TrimPrefix(line, "  Candidate: ")
		case strings.HasPrefix(line, "  Version table:"):
		default:
			if m := policyVersionRE.FindStringSubmatch(line); m != nil {
				ver = m[1]
				continue
			}
			if m := policySourceRE.FindStringSubmatch(line); m != nil && ver != "" {
				if m[3] != "" { // "500 http://… bookworm-security/main amd64 Packages"
					cur.origins[ver] = append(cur.origins[ver], m[3])
				}
				continue
			}
			if strings.HasPrefix(strings.TrimSpace(line), "release ") || strings.HasPrefix(strings.TrimSpace(line), "origin ") {
				continue
			}
			return nil, &ParseError{Cmd: c.String(), Line: line, Why: "unexpected line"}
		}
	}
	return out, nil
}

// pocketOf names the pocket of an archive: "bookworm-security/main" →
// security.
func pocketOf(archive string) string {
	suite, _, _ := strings.Cut(archive, "/")
	switch {
	case strings.HasSuffix(suite, "-security"):
		return "security"
	case strings.HasSuffix(suite, "-updates"), strings.HasSuffix(suite, "-proposed-updates"):
		return "updates"
	case strings.HasSuffix(suite, "-backports"):
		return "backports"
	}
	return "release"
}

// bestOrigin picks the archive to report: a security pocket wins, then
// updates, then the release.
func bestOrigin(origins []string) string {
	rank := map[string]int{"security": 0, "updates": 1, "release": 2, "backports": 3}
	best := ""
	for _, o := range origins {
		if best == "" || rank[pocketOf(o)] < rank[pocketOf(best)] {
			best = o
		}
	}
	suite, _, _ := strings.Cut(best, "/")
	return suite
}

// Updates lists the available updates: what a full upgrade would install,
// plus held packages with a newer candidate (reported as held). It reads
// the package lists as they are; call Refresh first for current ones.
func (a *Apt) Updates(ctx context.Context) ([]Update, error) {
	inst, err := a.Installed(ctx)
	if err != nil {
		return nil, err
	}
	installed := byName(inst)
	c, err := a.R.Run(ctx, "apt-get", "-s", "-q", "-o", "Debug::NoLocking=1", "dist-upgrade")
	if err != nil {
		return nil, err
	}
	sim, err := parseSimulation(c)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, ch := range sim {
		if ch.Action == ActionUpgrade {
			names = append(names, ch.Name)
		}
	}
	for _, p := range inst {
		if p.Held {
			names = append(names, p.Name)
		}
	}
	pol, err := a.policies(ctx, names)
	if err != nil {
		return nil, err
	}
	var out []Update
	seen := map[string]bool{}
	for _, n := range names {
		p, ok := pol[n]
		ip, isInstalled := installed[n]
		if !ok || !isInstalled || seen[n] || p.candidate == "" || p.candidate == "(none)" {
			continue
		}
		if cmp, err := match.Compare("Debian", ip.Version, p.candidate); err != nil || cmp >= 0 {
			continue
		}
		seen[n] = true
		origin := bestOrigin(p.origins[p.candidate])
		u := Update{Name: n, Arch: ip.Arch, SourceName: ip.SourceName, SourceVersion: ip.SourceVersion, Installed: ip.Version, Candidate: p.candidate,
			Origin: origin, Pocket: pocketOf(origin), Held: ip.Held, CVEs: []string{}}
		out = append(out, u)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	if a.Changelogs != nil {
		if err := a.Changelogs.fill(ctx, a, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Refresh updates the package lists (apt-get update).
func (a *Apt) Refresh(ctx context.Context) error {
	if err := a.WaitLock(ctx); err != nil {
		return err
	}
	_, err := a.R.Run(ctx, "apt-get", "update", "-q", "-o", "DPkg::Lock::Timeout="+a.lockSeconds())
	return err
}

// Simulate reports what installing the targets would change, including new
// dependencies and removals, without changing anything.
func (a *Apt) Simulate(ctx context.Context, targets []Target) ([]Change, error) {
	if err := ValidateDebian(targets); err != nil {
		return nil, err
	}
	args := []string{"apt-get", "-s", "-q", "-o", "Debug::NoLocking=1", "--no-install-recommends", "--allow-downgrades", "install"}
	for _, t := range targets {
		args = append(args, t.String())
	}
	c, err := a.R.Run(ctx, args...)
	if err != nil {
		return nil, err
	}
	return parseSimulation(c)
}

// Install brings every target to its exact version — upgrading or, for a
// rollback, downgrading — non-interactively and keeping existing
// configuration files. Targets already at their version are left alone;
// held packages are skipped with the reason; an install that would remove a
// package is refused unless opts.AllowRemovals. An interrupted earlier dpkg
// run is finished first, and the dpkg lock is waited for.
func (a *Apt) Install(ctx context.Context, targets []Target, opts InstallOptions) (Result, error) {
	var res Result
	if err := ValidateDebian(targets); err != nil {
		return res, err
	}
	if err := a.WaitLock(ctx); err != nil {
		return res, err
	}
	rec, err := a.Recover(ctx)
	if err != nil {
		return res, err
	}
	res.Recovered = rec
	before, err := a.Installed(ctx)
	if err != nil {
		return res, err
	}
	was := byName(before)
	var todo []Target
	for _, t := range targets {
		p, ok := was[t.Name]
		switch {
		case ok && p.Version == t.Version:
			res.Unchanged = append(res.Unchanged, t)
		case ok && p.Held:
			res.Skipped = append(res.Skipped, Skip{Target: t, Reason: fmt.Sprintf("held at %s (apt-mark hold)", p.Version)})
		default:
			todo = append(todo, t)
		}
	}
	if len(todo) == 0 {
		return res, nil
	}
	sim, err := a.Simulate(ctx, todo)
	if err != nil {
		return res, err
	}
	if !opts.AllowRemovals {
		if err := refuseRemovals(sim, todo); err != nil {
			return res, err
		}
	}
	if err := a.WaitLock(ctx); err != nil {
		return res, err
	}
	args := []string{"apt-get", "install", "-y", "-q", "--no-install-recommends", "--allow-downgrades",
		"-o", "Dpkg::Options::=--force-confold", "-o", "Dpkg::Options::=--force-confdef",
		"-o", "DPkg::Lock::Timeout=" + a.lockSeconds()}
	for _, t := range todo {
		args = append(args, t.String())
	}
	_, runErr := a.R.Run(ctx, args...)
	after, err := a.Installed(ctx)
	if err != nil {
		return res, err
	}
	res.Changes = diff(before, after, "Debian")
	if runErr != nil {
		return res, runErr
	}
	return res, verifyTargets(after, todo)
}

// diff lists what changed between two package lists.
func diff(before, after []Installed, ecosystem string) []Change {
	was := map[string]string{}
	for _, p := range before {
		was[p.Name] = p.Version
	}
	is := map[string]string{}
	var out []Change
	for _, p := range after {
		is[p.Name] = p.Version
		old, ok := was[p.Name]
		switch {
		case !ok:
			out = append(out, Change{Action: ActionInstall, Name: p.Name, To: p.Version})
		case old != p.Version:
			act := ActionUpgrade
			if c, err := match.Compare(ecosystem, old, p.Version); err == nil && c > 0 {
				act = ActionDowngrade
			}
			out = append(out, Change{Action: act, Name: p.Name, From: old, To: p.Version})
		}
	}
	for _, p := range before {
		if _, ok := is[p.Name]; !ok {
			out = append(out, Change{Action: ActionRemove, Name: p.Name, From: p.Version})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Recover finishes an interrupted dpkg run (packages left unpacked or
// half-configured) with `dpkg --configure -a`. It reports whether there was
// anything to recover.
func (a *Apt) Recover(ctx context.Context) (bool, error) {
	c, err := a.R.Run(ctx, "dpkg", "--audit")
	if err != nil && !isExit(err) {
		return false, err
	}
	pending, _ := os.ReadDir(filepath.Join(a.root(), "var/lib/dpkg/updates"))
	if strings.TrimSpace(c.Output) == "" && len(pending) == 0 {
		return false, nil
	}
	if err := a.WaitLock(ctx); err != nil {
		return false, err
	}
	if _, err := a.R.Run(ctx, "dpkg", "--configure", "-a", "--force-confold", "--force-confdef"); err != nil {
		return false, fmt.Errorf("recover interrupted dpkg run: %w", err)
	}
	return true, nil
}

func isExit(err error) bool {
	var ee *ExitError
	return errors.As(err, &ee)
}

func (a *Apt) lockTimeout() time.Duration {
	if a.LockTimeout > 0 {
		return a.LockTimeout
	}
	return 5 * time.Minute
}

func (a *Apt) lockSeconds() string {
	return strconv.Itoa(int(a.lockTimeout().Seconds()))
}

// LockError says who holds the package manager's lock after the timeout.
type LockError struct {
	Path   string
	PID    int
	Holder string // the holder's command line
	Waited time.Duration
}

func (e *LockError) Error() string {
	return fmt.Sprintf("lock %s is held by pid %d (%s); gave up after %s", e.Path, e.PID, e.Holder, e.Waited.Round(time.Second))
}

// WaitLock waits until no other process holds the dpkg locks, up to the
// lock timeout, and then says who holds them.
func (a *Apt) WaitLock(ctx context.Context) error {
	return waitLock(ctx, a.lockTimeout(), filepath.Join(a.root(), "var/lib/dpkg/lock-frontend"), filepath.Join(a.root(), "var/lib/dpkg/lock"))
}

// waitLock waits until no other process holds an fcntl lock on any of the
// files (as dpkg and rpm take them), up to timeout.
func waitLock(ctx context.Context, timeout time.Duration, paths ...string) error {
	start := time.Now()
	for {
		path, pid, err := lockHolder(paths)
		if err != nil {
			return err
		}
		if pid == 0 {
			return nil
		}
		if waited := time.Since(start); waited >= timeout {
			return &LockError{Path: path, PID: pid, Holder: cmdline(pid), Waited: waited}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// lockHolder returns the first lock file held by another process.
func lockHolder(paths []string) (string, int, error) {
	for _, path := range paths {
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return "", 0, fmt.Errorf("check lock: %w", err)
		}
		lk := syscall.Flock_t{Type: syscall.F_WRLCK, Whence: 0}
		err = syscall.FcntlFlock(f.Fd(), syscall.F_GETLK, &lk)
		f.Close()
		if err != nil {
			return "", 0, fmt.Errorf("check lock %s: %w", path, err)
		}
		if lk.Type != syscall.F_UNLCK {
			return path, int(lk.Pid), nil
		}
	}
	return "", 0, nil
}

func cmdline(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return "unknown process"
	}
	return strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))
}
