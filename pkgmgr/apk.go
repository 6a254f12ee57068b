package pkgmgr

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// Apk drives apk (Alpine, Wolfi) for a root, with apk's own --root option.
// The commands are built and their output parsed here; running them is
// not exercised in this project's tests (no Alpine system is at hand), which
// replay apk's documented output instead.
type Apk struct {
	R *Runner
	// Root is the root to manage; "" or "/" for this host.
	Root string
}

func (a *Apk) root() string {
	if a.Root == "" {
		return "/"
	}
	return a.Root
}

func (a *Apk) cmd(args ...string) []string {
	out := []string{"apk"}
	if a.root() != "/" {
		out = append(out, "--root", a.root())
	}
	return append(out, args...)
}

var (
	apkName    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]*$`)
	apkVersion = regexp.MustCompile(`^[0-9][0-9A-Za-z._]*(-r[0-9]+)?$`)
)

// ValidateAPK refuses names and versions that are not valid for apk.
func ValidateAPK(ts []Target) error {
	return validate(ts, "apk", apkName, apkVersion, "apk version")
}

// Installed reads the installed database (lib/apk/db/installed) of the root.
func (a *Apk) Installed(ctx context.Context) ([]Installed, error) {
	path := filepath.Join(a.root(), "lib/apk/db/installed")
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("apk database: %w", err)
	}
	defer f.Close()
	return ParseAPKInstalled(f, path)
}

// ParseAPKInstalled parses apk's installed database: blank-line separated
// records of "X:value" lines (P name, V version, A arch, o origin).
func ParseAPKInstalled(r interface{ Read([]byte) (int, error) }, name string) ([]Installed, error) {
	var out []Installed
	var cur Installed
	flush := func() {
		if cur.Name != "" {
			if cur.SourceName == "" {
				cur.SourceName = cur.Name
			}
			cur.SourceVersion, cur.Status = cur.Version, "installed"
			out = append(out, cur)
		}
		cur = Installed{}
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if line == "" {
			flush()
			continue
		}
		if len(line) < 2 || line[1] != ':' {
			return nil, fmt.Errorf("%s:%d: %q is not a KEY:value line", name, n, line)
		}
		v := line[2:]
		switch line[0] {
		case 'P':
			cur.Name = v
		case 'V':
			cur.Version = v
		case 'A':
			cur.Arch = v
		case 'o':
			cur.SourceName = v
		}
	}
	flush()
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

var apkVersionLine = regexp.MustCompile(`^(\S+)-([0-9]\S*-r[0-9]+)\s+<\s+(\S+)$`)

// Updates lists packages with a newer version in the repositories
// (`apk version -l <`), with the repository that offers each
// (`apk policy`).
func (a *Apk) Updates(ctx context.Context) ([]Update, error) {
	inst, err := a.Installed(ctx)
	if err != nil {
		return nil, err
	}
	origin := map[string]string{}
	for _, p := range inst {
		origin[p.Name] = p.SourceName
	}
	c, err := a.R.Run(ctx, a.cmd("version", "-l", "<")...)
	if err != nil {
		return nil, err
	}
	var out []Update
	var names []string
	for _, line := range strings.Split(c.Output, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "Installed:") || strings.HasPrefix(line, "WARNING") {
			continue
		}
		m := apkVersionLine.FindStringSubmatch(line)
		if m == nil {
			return nil, &ParseError{Cmd: c.String(), Line: line, Why: "want NAME-VERSION < CANDIDATE"}
		}
		out = append(out, Update{Name: m[1], SourceName: origin[m[1]], Installed: m[2], Candidate: m[3], Pocket: "updates", CVEs: []string{}})
		names = append(names, m[1])
	}
	if len(names) == 0 {
		return out, nil
	}
	c, err = a.R.Run(ctx, a.cmd(append([]string{"policy"}, names...)...)...)
	if err != nil {
		return nil, err
	}
	repos := parseAPKPolicy(c.Output)
	for i := range out {
		out[i].Origin = repos[out[i].Name][out[i].Candidate]
	}
	return out, nil
}

// parseAPKPolicy maps package → version → the first repository offering it.
func parseAPKPolicy(text string) map[string]map[string]string {
	out := map[string]map[string]string{}
	var pkg, ver string
	for _, line := range strings.Split(text, "\n") {
		switch {
		case strings.HasSuffix(line, " policy:") && !strings.HasPrefix(line, " "):
			pkg = strings.TrimSuffix(line, " policy:")
			out[pkg] = map[string]string{}
		case strings.HasPrefix(line, "  ") && !strings.HasPrefix(line, "    ") && strings.HasSuffix(line, ":"):
			ver = strings.TrimSuffix(strings.TrimSpace(line), ":")
		case strings.HasPrefix(line, "    ") && pkg != "" && ver != "":
			if _, ok := out[pkg][ver]; !ok {
				out[pkg][ver] = strings.TrimSpace(line)
			}
		}
	}
	return out
}

var apkSimLine = regexp.MustCompile(`^\(\d+/\d+\) (Installing|Upgrading|Downgrading|Purging|Replacing) (\S+) \((\S+?)(?: -> (\S+))?\)`)

// Simulate reports what `apk add --simulate` would change.
func (a *Apk) Simulate(ctx context.Context, targets []Target) ([]Change, error) {
	if err := ValidateAPK(targets); err != nil {
		return nil, err
	}
	args := []string{"add", "--simulate"}
	for _, t := range targets {
		args = append(args, t.String())
	}
	c, err := a.R.Run(ctx, a.cmd(args...)...)
	if err != nil {
		return nil, err
	}
	var out []Change
	for _, line := range strings.Split(c.Output, "\n") {
		m := apkSimLine.FindStringSubmatch(strings.TrimSpace(line))
		if m == nil {
			continue
		}
		ch := Change{Name: m[2]}
		switch m[1] {
		case "Installing":
			ch.Action, ch.To = ActionInstall, m[3]
		case "Upgrading", "Replacing":
			ch.Action, ch.From, ch.To = ActionUpgrade, m[3], m[4]
		case "Downgrading":
			ch.Action, ch.From, ch.To = ActionDowngrade, m[3], m[4]
		case "Purging":
			ch.Action, ch.From = ActionRemove, m[3]
		}
		out = append(out, ch)
	}
	return out, nil
}

// InstallArgs is the command that brings the targets to their exact
// versions (apk add NAME=VERSION upgrades and downgrades alike).
func (a *Apk) InstallArgs(targets []Target) ([]string, error) {
	if err := ValidateAPK(targets); err != nil {
		return nil, err
	}
	args := []string{"add", "--no-interactive"}
	for _, t := range targets {
		args = append(args, t.String())
	}
	return a.cmd(args...), nil
}

// Install runs InstallArgs and reports the changes from the database. An
// install whose simulation removes packages is refused unless
// opts.AllowRemovals.
func (a *Apk) Install(ctx context.Context, targets []Target, opts InstallOptions) (Result, error) {
	var res Result
	args, err := a.InstallArgs(targets)
	if err != nil {
		return res, err
	}
	if !opts.AllowRemovals {
		sim, err := a.Simulate(ctx, targets)
		if err != nil {
			return res, err
		}
		if err := refuseRemovals(sim, targets); err != nil {
			return res, err
		}
	}
	before, err := a.Installed(ctx)
	if err != nil {
		return res, err
	}
	if _, err := a.R.Run(ctx, args...); err != nil {
		return res, err
	}
	after, err := a.Installed(ctx)
	if err != nil {
		return res, err
	}
	res.Changes = diff(before, after, "Alpine")
	return res, verifyTargets(after, targets)
}
