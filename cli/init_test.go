package cli

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/patchbay/patchbay/scaffold"
)

// initSets are the parameter values every template is generated with
// besides its defaults.
var initSets = [][]string{
	nil,
	{"--set", "teams=alpha,beta,gamma", "--set", "services=api,worker", "--set", "environments=dev,staging,prod",
		"--set", "window=30 3 * * SAT", "--set", "timeZone=Europe/Paris", "--set", "tier=1", "--set", "failOn=P3", "--set", "patchbayVersion=v1.2.3",
		"--set", "initiativeStart=2031-11-30"},
}

// initTemplateSets are values of one template's own parameters, added to
// the second set.
var initTemplateSets = map[string][]string{
	"web-fleet":  {"--set", "securityMinAge=2d", "--set", "bugfixMinAge=2w", "--set", "initiativeLevel=gold"},
	"regulated":  {"--set", "securityMinAge=36h", "--set", "initiativeLevel=assured", "--set", "approvers=3"},
	"small-team": {"--set", "autoApproveAfter=5d", "--set", "initiativeLevel=bronze"},
}

// TestInitValidByConstruction: every built-in template, with its defaults
// and with other values, generates a repository that `patchbay apply
// --dry-run -f DIR` accepts on a real server (every document would be
// created); its pipelines parse as YAML and their patchbay command lines
// parse with this CLI.
func TestInitValidByConstruction(t *testing.T) {
	r, _ := startInDir(t, t.TempDir())
	t.Setenv(envServer, r.url)
	t.Setenv(envPin, r.fingerprint)
	t.Setenv(envToken, r.adminToken)
	for _, tm := range scaffold.Builtins() {
		for i, set := range initSets {
			if p := tm.Param("teams"); p.Max != nil && *p.Max == 1 {
				// A one-team template: one team.
				set = slices.Clone(set)
				for j := range set {
					if strings.HasPrefix(set[j], "teams=") {
						set[j] = "teams=alpha"
					}
				}
			}
			if i > 0 {
				set = append(slices.Clone(set), initTemplateSets[tm.Name]...)
			}
			dir := filepath.Join(t.TempDir(), "repo")
			code, stdout, stderr := run(t, t.TempDir(), append([]string{"init", dir, "--template", tm.Name}, set...)...)
			if code != 0 || !strings.Contains(stdout, filepath.Join(dir, "policy.yaml")) {
				t.Fatalf("%s %d: init: %d\n%s\n%s", tm.Name, i, code, stdout, stderr)
			}
			code, stdout, stderr = run(t, t.TempDir(), "apply", "--dry-run", "-f", dir)
			if code != 0 || !regexp.MustCompile(`^\d+ would be created, 0 would change, 0 unchanged, 0 would be deleted \(nothing applied\)`).MatchString(stderr) ||
				!strings.Contains(stdout, "RolloutStrategy/") || !strings.Contains(stdout, "MaintenanceWindow/") || !strings.Contains(stdout, "ApprovalRule/") ||
				!strings.Contains(stdout, "PatchSchedule/") || !strings.Contains(stdout, "Scorecard/") || !strings.Contains(stdout, "Initiative/") {
				t.Fatalf("%s %d: apply --dry-run: %d\n%s\n%s", tm.Name, i, code, stdout, stderr)
			}
			checkPipelines(t, dir)
		}
	}
}

// TestInitBadSet: a value a parameter refuses is named by its key, and
// nothing is written.
func TestInitBadSet(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "repo")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--template", "web-fleet", "--set", "window=someday"}, `--set window=someday: "someday": want five fields`},
		{[]string{"--template", "regulated", "--set", "approvers=1"}, "--set approvers=1: 1: want at least 2"},
		{[]string{"--template", "small-team", "--set", "teams=a,b"}, `--set teams=a,b: "a,b": want at most 1 item(s)`},
		{[]string{"--template", "small-team", "--set", "initiativeStart=2027-02-30"}, `--set initiativeStart=2027-02-30: "2027-02-30": want a date YYYY-MM-DD`},
		{[]string{"--template", "web-fleet", "--set", "bugfixMinAge=week"}, `--set bugfixMinAge=week: duration "week": want a number of days`},
		{[]string{"--template", "regulated", "--set", "initiativeLevel=gold"}, `--set initiativeLevel=gold: "gold": want one of baseline, compliant, assured`},
		{[]string{"--template", "web-fleet", "--set", "colour=red"}, "--set colour=red: template web-fleet has no such parameter (it has teams, services"},
		{[]string{"--template", "web-fleet", "--set", "teams"}, `--set "teams": want key=value`},
		{[]string{"--template", "nope"}, `no template "nope" (built-in: regulated, small-team, web-fleet`},
		{nil, "--template: name a template"},
	} {
		code, _, stderr := run(t, t.TempDir(), append([]string{"init", dir}, c.args...)...)
		if code != ExitError || !strings.Contains(stderr, c.want) {
			t.Errorf("init %v: %d %s, want %q", c.args, code, stderr, c.want)
		}
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("a refused init wrote %s (%v)", dir, err)
	}
}

// TestInitList: a line per built-in template; with --template, its
// parameters.
func TestInitList(t *testing.T) {
	t.Parallel()
	code, stdout, _ := run(t, t.TempDir(), "init", "--list")
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if code != 0 || len(lines) != 1+len(scaffold.Builtins()) || !strings.HasPrefix(lines[0], "TEMPLATE") || !strings.Contains(stdout, "\nweb-fleet ") {
		t.Errorf("init --list: %d\n%s", code, stdout)
	}
	code, stdout, _ = run(t, t.TempDir(), "init", "--list", "--template", "small-team")
	if code != 0 || !regexp.MustCompile(`(?m)^autoApproveAfter\s+duration\s+3d\s`).MatchString(stdout) {
		t.Errorf("init --list --template small-team: %d\n%s", code, stdout)
	}
}

// TestInitInteractive drives the questions with answers: a wrong answer
// is refused naming the parameter and asked again, Enter keeps the
// default, --set answers are not asked.
func TestInitInteractive(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "repo")
	answers := strings.Join([]string{
		"1",              // template: regulated
		"payments, risk", // teams
		"",               // services: default
		"",               // exposure
		"",               // tier
		"prod",           // environments: too few
		"stg,prod",       // environments
		"every sunday",   // window: refused
		"0 3 * * SUN",    // window
		"", "",           // windowDuration, timeZone
		"standard", "strict", // slaProfile: refused, then strict
		// approvers given with --set
		"", "", // bake, securityMinAge
		"2027-13-01", "2027-04-01", // initiativeStart: refused, then the second quarter
		"", "", "", "", // initiativeLevel, failOn, auditCheckpoints, patchbayVersion
	}, "\n") + "\n"
	var out, errb bytes.Buffer
	root := newRoot(&env{stdout: &out, stderr: &errb})
	root.SetIn(strings.NewReader(answers))
	root.SetOut(&out)
	root.SetErr(&errb)
	root.SetArgs([]string{"--data-dir", t.TempDir(), "init", dir, "-i", "--set", "approvers=3"})
	if err := root.ExecuteContext(context.Background()); err != nil {
		t.Fatalf("%v\n%s", err, errb.String())
	}
	for _, want := range []string{
		"Template (a name, a number or a directory) [regulated]: ",
		"Teams that own the services (comma-separated) [payments,platform]: ",
		`  environments: "prod": want at least 2 item(s), comma-separated`,
		`  window: "every sunday": want five fields`,
		`  slaProfile: "standard": want one of pci-dss, strict`,
		`  initiativeStart: "2027-13-01": want a date YYYY-MM-DD`,
	} {
		if !strings.Contains(errb.String(), want) {
			t.Errorf("the questions do not say %q:\n%s", want, errb.String())
		}
	}
	if strings.Contains(errb.String(), "Distinct people who approve") {
		t.Error("asked for a parameter given with --set")
	}
	b, _ := os.ReadFile(filepath.Join(dir, "approvals.yaml"))
	w, _ := os.ReadFile(filepath.Join(dir, "windows.yaml"))
	p, _ := os.ReadFile(filepath.Join(dir, "policy.yaml"))
	sc, _ := os.ReadFile(filepath.Join(dir, "scorecards.yaml"))
	if !strings.Contains(string(b), "hostGroups: [prod]\n  approve: manual\n  approvers: 3") || !strings.Contains(string(w), `schedule: "0 3 * * SUN"`) ||
		!strings.Contains(string(p), "system: {P1: 3d, P2: 14d") || !strings.Contains(string(sc), "start: 2027-04-01\n  target: 2027-06-30\n") {
		t.Errorf("the answers are not in the repository:\n%s\n%s\n%s\n%s", b, w, p, sc)
	}
	// Answers that end early write nothing.
	dir2 := filepath.Join(t.TempDir(), "repo")
	root = newRoot(&env{stdout: &out, stderr: &errb})
	root.SetIn(strings.NewReader("web-fleet\nops\n"))
	root.SetArgs([]string{"--data-dir", t.TempDir(), "init", dir2, "-i"})
	if err := root.ExecuteContext(context.Background()); err == nil || !strings.Contains(err.Error(), "end of input") {
		t.Errorf("answers ending early: %v", err)
	}
	if _, err := os.Stat(dir2); !os.IsNotExist(err) {
		t.Errorf("an interrupted init wrote %s", dir2)
	}
}

// TestInitCustomTemplate: --template ./dir renders a directory template;
// its manifest's problems are reported with their positions.
func TestInitCustomTemplate(t *testing.T) {
	t.Parallel()
	tdir := t.TempDir()
	os.WriteFile(filepath.Join(tdir, scaffold.ManifestFile), []byte("apiVersion: patchbay/v1\nkind: Template\nmetadata: {name: mine}\nspec:\n  description: one team\n  parameters:\n    - {name: team, type: string, prompt: Team, default: ops}\n"), 0o644)
	os.WriteFile(filepath.Join(tdir, "teams.yaml.tmpl"), []byte("apiVersion: patchbay/v1\nkind: Team\nmetadata: {name: {{.team}}}\nspec: {description: {{.Template.Name}}}\n"), 0o644)
	dir := filepath.Join(t.TempDir(), "repo")
	if code, _, stderr := run(t, t.TempDir(), "init", dir, "--template", tdir, "--set", "team=sre"); code != 0 {
		t.Fatalf("init --template DIR: %d %s", code, stderr)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "teams.yaml")); !strings.Contains(string(b), "name: sre}\nspec: {description: mine}") {
		t.Errorf("teams.yaml: %s", b)
	}
	os.WriteFile(filepath.Join(tdir, scaffold.ManifestFile), []byte("apiVersion: patchbay/v1\nkind: Template\nmetadata: {name: mine}\nspec:\n  description: one team\n  parameters:\n    - {name: team, type: text, prompt: Team}\n"), 0o644)
	code, _, stderr := run(t, t.TempDir(), "init", filepath.Join(t.TempDir(), "x"), "--template", tdir)
	if code != ExitError || !strings.Contains(stderr, filepath.Join(tdir, scaffold.ManifestFile)+`:7:26: spec.parameters[0].type: "text": want one of string, int`) {
		t.Errorf("bad manifest: %d %s", code, stderr)
	}
}

// checkPipelines parses the generated CI files as YAML, checks their
// shape, and parses every patchbay command line in them with this CLI.
func checkPipelines(t *testing.T, dir string) {
	t.Helper()
	var scripts []string
	for _, f := range []string{".github/workflows/patchbay-policy.yml", ".github/patchbay-service-scan.yml"} {
		var wf struct {
			On   map[string]any `yaml:"on"`
			Jobs map[string]struct {
				RunsOn string `yaml:"runs-on"`
				Steps  []struct {
					Uses string `yaml:"uses"`
					Run  string `yaml:"run"`
				} `yaml:"steps"`
			} `yaml:"jobs"`
		}
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := yaml.Unmarshal(b, &wf); err != nil {
			t.Fatalf("%s: %v\n%s", f, err, b)
		}
		if len(wf.On) == 0 || len(wf.Jobs) == 0 {
			t.Errorf("%s: no triggers or no jobs", f)
		}
		for name, j := range wf.Jobs {
			if j.RunsOn == "" || len(j.Steps) == 0 {
				t.Errorf("%s: job %s has no runs-on or steps", f, name)
			}
			for _, s := range j.Steps {
				scripts = append(scripts, s.Run)
			}
		}
	}
	for _, f := range []string{".gitlab-ci.yml", ".gitlab/patchbay-service-scan.yml"} {
		var jobs map[string]any
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := yaml.Unmarshal(b, &jobs); err != nil {
			t.Fatalf("%s: %v\n%s", f, err, b)
		}
		n := 0
		for name, v := range jobs {
			j, ok := v.(map[string]any)
			if !ok || name == "default" || name == "variables" {
				continue
			}
			lines, _ := j["script"].([]any)
			if len(lines) == 0 {
				t.Errorf("%s: job %s has no script", f, name)
			}
			for _, l := range lines {
				s, ok := l.(string)
				if !ok {
					t.Errorf("%s: job %s: a script line is not a string: %v", f, name, l)
				}
				scripts = append(scripts, s)
			}
			n++
		}
		if n == 0 {
			t.Errorf("%s: no jobs", f)
		}
	}
	// The README's shell blocks too: what it tells people to run.
	readme, err := os.ReadFile(filepath.Join(dir, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range fenceRE.FindAllStringSubmatch(string(readme), -1) {
		if m[1] == "sh" {
			scripts = append(scripts, m[2])
		}
	}
	cmds := patchbayLines(strings.Join(scripts, "\n"))
	want := []string{"diff -f .", "apply -f .", "scan --upload --service", "init agent", "plan create --strategy"}
	all := strings.Join(cmds, "\n")
	for _, w := range want {
		if !strings.Contains(all, w) {
			t.Errorf("no pipeline runs patchbay %s:\n%s", w, all)
		}
	}
	for _, c := range cmds {
		checkCommandLine(t, c)
	}
	if path := actionlint(); path != "" {
		out, err := exec.Command(path, "-no-color", filepath.Join(dir, ".github/workflows/patchbay-policy.yml"), filepath.Join(dir, ".github/patchbay-service-scan.yml")).CombinedOutput()
		if err != nil {
			t.Errorf("actionlint: %v\n%s", err, out)
		}
	}
}

var shellSep = regexp.MustCompile(`\s*(?:;|&&|\|\||\|)\s*`)

// patchbayLines are the patchbay commands of shell scripts (without the
// program name), each cut at a redirection.
func patchbayLines(script string) []string {
	var out []string
	for _, line := range strings.Split(script, "\n") {
		line = commentRE.ReplaceAllString(line, "")
		for _, part := range shellSep.Split(strings.TrimSpace(line), -1) {
			rest, ok := strings.CutPrefix(part, "patchbay ")
			if !ok {
				continue
			}
			if i := strings.IndexAny(rest, "<>"); i >= 0 {
				rest = rest[:i]
			}
			out = append(out, strings.TrimSpace(rest))
		}
	}
	return out
}

// checkCommandLine parses a patchbay command line (shell quotes and
// variables as words) with the CLI's commands: the command exists, its
// flags and arguments parse.
func checkCommandLine(t *testing.T, line string) {
	t.Helper()
	var words []string
	for _, w := range strings.Fields(line) {
		words = append(words, strings.Trim(w, `"'`))
	}
	root := newRoot(&env{})
	cmd, rest, err := root.Find(words)
	if err != nil || cmd == root {
		t.Errorf("patchbay %s: no such command (%v)", line, err)
		return
	}
	if err := cmd.ParseFlags(rest); err != nil {
		t.Errorf("patchbay %s: %v", line, err)
		return
	}
	if err := cmd.ValidateArgs(cmd.Flags().Args()); err != nil {
		t.Errorf("patchbay %s: %v", line, err)
	}
}

// actionlint is the actionlint binary, on the PATH or where go install
// puts it, or "".
func actionlint() string {
	if p, err := exec.LookPath("actionlint"); err == nil {
		return p
	}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		p := filepath.Join(strings.TrimSpace(string(out)), "bin", "actionlint")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}
