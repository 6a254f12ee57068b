package pkgmgr

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/patchbay/patchbay/match"
)

// Dnf drives dnf (Fedora, RHEL, AlmaLinux, Rocky) for a root. dnf runs on
// the host with --installroot for a root other than "/", so the Runner's
// own Root stays "/".
type Dnf struct {
	R *Runner
	// InstallRoot is the root to manage; "" or "/" for this host.
	InstallRoot string
	// Options are extra global dnf options (repositories for an
	// air-gapped site, --setopt=…), placed before the command.
	Options []string
	// LockTimeout is how long to wait for the rpm database lock; 0 means 5
	// minutes.
	LockTimeout time.Duration
}

// WaitLock waits until no other process holds the rpm database lock
// (<root><%_dbpath>/.rpm.lock), then says who holds it.
func (d *Dnf) WaitLock(ctx context.Context) error {
	c, err := d.R.Run(ctx, "rpm", "--eval", "%{_dbpath}")
	if err != nil {
		return err
	}
	root := d.InstallRoot
	if root == "" {
		root = "/"
	}
	timeout := d.LockTimeout
	if timeout <= 0 {
		timeout = 5 * time.Minute
	}
	return waitLock(ctx, timeout, filepath.Join(root, strings.TrimSpace(c.Output), ".rpm.lock"))
}

func (d *Dnf) cmd(args ...string) []string {
	return d.cmdWith([]string{"-y", "-q"}, args...)
}

func (d *Dnf) cmdWith(flags []string, args ...string) []string {
	out := append([]string{"dnf"}, flags...)
	if d.InstallRoot != "" && d.InstallRoot != "/" {
		out = append(out, "--installroot="+d.InstallRoot)
	}
	out = append(out, d.Options...)
	return append(out, args...)
}

var (
	rpmName    = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._+-]*$`)
	rpmVersion = regexp.MustCompile(`^([0-9]+:)?[A-Za-z0-9._+~^]+-[A-Za-z0-9._+~^]+$`)
)

// ValidateRPM refuses names and versions ("[epoch:]version-release") that
// are not valid for rpm, before any command runs.
func ValidateRPM(ts []Target) error {
	return validate(ts, "RPM", rpmName, rpmVersion, "RPM [epoch:]version-release")
}

// nevra renders name-[epoch:]version-release for dnf.
func nevra(t Target) string { return t.Name + "-" + t.Version }

// Installed lists the installed packages from the rpm database
// ("epoch:version-release" versions; epoch 0 omitted).
func (d *Dnf) Installed(ctx context.Context) ([]Installed, error) {
	args := []string{"rpm", "-qa", "--qf", `%{NAME}\t%{ARCH}\t%{EPOCHNUM}\t%{VERSION}-%{RELEASE}\t%{SOURCERPM}\n`}
	if d.InstallRoot != "" && d.InstallRoot != "/" {
		args = append(args, "--root", d.InstallRoot)
	}
	c, err := d.R.Run(ctx, args...)
	if err != nil {
		return nil, err
	}
	var out []Installed
	for _, line := range strings.Split(c.Output, "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		f := strings.Split(line, "\t")
		if len(f) != 5 {
			return nil, &ParseError{Cmd: c.String(), Line: line, Why: "want 5 tab-separated fields"}
		}
		v := f[3]
		if f[2] != "0" && f[2] != "" {
			v = f[2] + ":" + v
		}
		src := strings.TrimSuffix(f[4], ".src.rpm")
		out = append(out, Installed{Name: f[0], Arch: f[1], Version: v, SourceName: src, Status: "installed"})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

var checkUpdateRE = regexp.MustCompile(`^(\S+)\.(\S+)\s+(\S+)\s+(\S+)$`)

// Updates lists available updates with their repository and, where the
// repository publishes updateinfo, the advisory (id, type, severity, CVEs).
func (d *Dnf) Updates(ctx context.Context) ([]Update, error) {
	inst, err := d.Installed(ctx)
	if err != nil {
		return nil, err
	}
	installed := byName(inst)
	c, err := d.R.Run(ctx, d.cmd("check-update")...)
	var ee *ExitError
	if err != nil && !(errors.As(err, &ee) && ee.Cmd.Exit == 100) { // 100: updates available
		return nil, err
	}
	var out []Update
	for _, line := range strings.Split(c.Output, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "Obsoleting") || strings.HasPrefix(line, "Last metadata") || strings.HasPrefix(line, "Security:") {
			continue
		}
		m := checkUpdateRE.FindStringSubmatch(line)
		if m == nil {
			return nil, &ParseError{Cmd: c.String(), Line: line, Why: "want NAME.ARCH VERSION REPOSITORY"}
		}
		p, ok := installed[m[1]]
		if !ok {
			continue
		}
		out = append(out, Update{Name: m[1], Arch: m[2], SourceName: p.SourceName, Installed: p.Version, Candidate: m[3],
			Origin: m[4], Pocket: "updates", CVEs: []string{}})
	}
	advs, err := d.advisories(ctx)
	if err != nil {
		return nil, err
	}
	for i := range out {
		u := &out[i]
		if a, ok := advs[u.Name+"-"+stripEpoch(u.Candidate)]; ok {
			a := a
			u.Advisory = &a
			u.CVEs = append(u.CVEs, a.CVEs...)
			if a.Type == "security" {
				u.Pocket = "security"
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func stripEpoch(v string) string {
	if i := strings.IndexByte(v, ':'); i >= 0 {
		return v[i+1:]
	}
	return v
}

var updateinfoListRE = regexp.MustCompile(`^(\S+)\s+(\S+)\s+(\S+)$`)

// advisories maps "name-version-release" of each updatable package to its
// advisory.
func (d *Dnf) advisories(ctx context.Context) (map[string]Advisory, error) {
	c, err := d.R.Run(ctx, d.cmd("updateinfo", "list", "--updates")...)
	if err != nil {
		return nil, err
	}
	byID := map[string]*Advisory{}
	pkgOf := map[string]string{} // nevr → advisory id
	for _, line := range strings.Split(c.Output, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		m := updateinfoListRE.FindStringSubmatch(line)
		if m == nil {
			return nil, &ParseError{Cmd: c.String(), Line: line, Why: "want ID SEVERITY/TYPE NEVRA"}
		}
		id, kind, nevraArch := m[1], m[2], m[3]
		sev, typ, found := strings.Cut(kind, "/")
		if !found {
			typ, sev = kind, ""
		}
		a := byID[id]
		if a == nil {
			a = &Advisory{ID: id, Type: normalizeAdvisoryType(typ), Severity: sev}
			byID[id] = a
		}
		// NEVRA without the arch: "patchbay-demo-1.1-1.noarch" → "patchbay-demo-1.1-1".
		if i := strings.LastIndexByte(nevraArch, '.'); i > 0 {
			pkgOf[nevraArch[:i]] = id
		}
	}
	if len(byID) > 0 {
		c, err := d.R.Run(ctx, d.cmd("updateinfo", "info", "--updates")...)
		if err != nil {
			return nil, err
		}
		var cur *Advisory
		inCVEs := false
		for _, line := range strings.Split(c.Output, "\n") {
			k, v, ok := strings.Cut(line, ": ")
			key := strings.TrimSpace(k)
			switch {
			case ok && key == "Update ID":
				cur, inCVEs = byID[strings.TrimSpace(v)], false
			case ok && key == "CVEs" && cur != nil:
				cur.CVEs = append(cur.CVEs, strings.TrimSpace(v))
				inCVEs = true
			case ok && key == "Severity" && cur != nil:
				cur.Severity = strings.TrimSpace(v)
				inCVEs = false
			case ok && key == "Type" && cur != nil:
				cur.Type = normalizeAdvisoryType(strings.TrimSpace(v))
				inCVEs = false
			case ok && key == "" && inCVEs && cur != nil: // "           : CVE-…" continues the list
				cur.CVEs = append(cur.CVEs, strings.TrimSpace(v))
			case ok:
				inCVEs = false
			}
		}
	}
	out := map[string]Advisory{}
	for nevr, id := range pkgOf {
		out[nevr] = *byID[id]
	}
	return out, nil
}

func normalizeAdvisoryType(t string) string {
	switch strings.ToLower(strings.TrimSuffix(t, ".")) {
	case "sec", "security":
		return "security"
	case "bugfix":
		return "bugfix"
	case "enhancement":
		return "enhancement"
	case "newpackage":
		return "newpackage"
	}
	return strings.ToLower(t)
}

// split sorts targets into those to install or upgrade, those to
// downgrade and those already at their version.
func (d *Dnf) split(ctx context.Context, targets []Target) (up, down []string, same []Target, before []Installed, err error) {
	if err := ValidateRPM(targets); err != nil {
		return nil, nil, nil, nil, err
	}
	before, err = d.Installed(ctx)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	was := byName(before)
	for _, t := range targets {
		p, ok := was[t.Name]
		if !ok {
			up = append(up, nevra(t))
			continue
		}
		c, err := match.Compare("Red Hat", p.Version, t.Version)
		if err != nil {
			return nil, nil, nil, nil, err
		}
		switch {
		case c == 0:
			same = append(same, t)
		case c < 0:
			up = append(up, nevra(t))
		default:
			down = append(down, nevra(t))
		}
	}
	return up, down, same, before, nil
}

// versionLocks reads dnf's versionlock list in the root: package name →
// the lock entry. Entries are NEVRA globs ("name-epoch:version-release.*");
// "!" entries exclude versions and lock nothing.
func (d *Dnf) versionLocks() (map[string]string, error) {
	root := d.InstallRoot
	if root == "" {
		root = "/"
	}
	b, err := os.ReadFile(filepath.Join(root, "etc/dnf/plugins/versionlock.list"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("dnf versionlock list: %w", err)
	}
	out := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, "!") {
			continue
		}
		nevr := line
		if i := strings.LastIndexByte(nevr, '.'); i > 0 && !strings.ContainsAny(nevr[i:], "-:") {
			nevr = nevr[:i] // drop ".arch" or ".*"
		}
		parts := strings.Split(nevr, "-")
		if len(parts) < 3 {
			continue
		}
		out[strings.Join(parts[:len(parts)-2], "-")] = line
	}
	return out, nil
}

var dnfRowRE = regexp.MustCompile(`^ (\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+[\d.]+\s*[kMG]?$`)

// Simulate reports what installing the targets would change (dnf
// --assumeno), including dependencies and removals.
func (d *Dnf) Simulate(ctx context.Context, targets []Target) ([]Change, error) {
	up, down, _, _, err := d.split(ctx, targets)
	if err != nil {
		return nil, err
	}
	var out []Change
	for _, op := range []struct {
		verb string
		pkgs []string
	}{{"install", up}, {"downgrade", down}} {
		if len(op.pkgs) == 0 {
			continue
		}
		c, err := d.R.Run(ctx, d.cmdWith([]string{"--assumeno"}, append([]string{op.verb}, op.pkgs...)...)...)
		if err != nil && !(isExit(err) && strings.Contains(c.Output, "Operation aborted")) {
			return nil, err
		}
		var action Action
		for _, line := range strings.Split(c.Output, "\n") {
			switch {
			case strings.HasPrefix(line, "Installing"):
				action = ActionInstall
			case strings.HasPrefix(line, "Upgrading"):
				action = ActionUpgrade
			case strings.HasPrefix(line, "Downgrading"):
				action = ActionDowngrade
			case strings.HasPrefix(line, "Removing"):
				action = ActionRemove
			case strings.HasPrefix(line, "Reinstalling"):
				action = ActionReinstall
			case strings.HasPrefix(line, "Transaction Summary"):
				action = ""
			case action != "" && strings.HasPrefix(line, " "):
				m := dnfRowRE.FindStringSubmatch(line)
				if m == nil {
					return nil, &ParseError{Cmd: c.String(), Line: line, Why: "want NAME ARCH VERSION REPOSITORY SIZE"}
				}
				ch := Change{Action: action, Name: m[1]}
				if action == ActionRemove {
					ch.From = m[3]
				} else {
					ch.To = m[3]
				}
				out = append(out, ch)
			}
		}
	}
	return out, nil
}

// Install brings the targets to their exact versions: dnf install for new
// and newer versions, dnf downgrade for older ones. Targets at their version
// are left alone; an install whose simulation removes packages is refused
// unless opts.AllowRemovals; packages locked by dnf versionlock are skipped
// with the reason.
func (d *Dnf) Install(ctx context.Context, targets []Target, opts InstallOptions) (Result, error) {
	var res Result
	if err := ValidateRPM(targets); err != nil {
		return res, err
	}
	locked, err := d.versionLocks()
	if err != nil {
		return res, err
	}
	var free []Target
	for _, t := range targets {
		if lock, ok := locked[t.Name]; ok {
			res.Skipped = append(res.Skipped, Skip{Target: t, Reason: "locked by dnf versionlock (" + lock + ")"})
			continue
		}
		free = append(free, t)
	}
	targets = free
	up, down, same, before, err := d.split(ctx, targets)
	if err != nil {
		return res, err
	}
	res.Unchanged = same
	if len(up)+len(down) == 0 {
		return res, nil
	}
	if err := d.WaitLock(ctx); err != nil {
		return res, err
	}
	if !opts.AllowRemovals {
		sim, err := d.Simulate(ctx, targets)
		if err != nil {
			return res, err
		}
		if err := refuseRemovals(sim, targets); err != nil {
			return res, err
		}
	}
	if len(up) > 0 {
		if _, err := d.R.Run(ctx, d.cmd(append([]string{"install"}, up...)...)...); err != nil {
			return res, err
		}
	}
	if len(down) > 0 {
		if _, err := d.R.Run(ctx, d.cmd(append([]string{"downgrade"}, down...)...)...); err != nil {
			return res, err
		}
	}
	after, err := d.Installed(ctx)
	if err != nil {
		return res, err
	}
	res.Changes = diff(before, after, "Red Hat")
	return res, verifyTargets(after, targets)
}
