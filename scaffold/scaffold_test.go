package scaffold

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
)

// TestBuiltinsRender: every built-in template renders with its defaults
// and with other values into a repository whose documents parse and
// check as a set (Render refuses otherwise), with the kinds the issue
// names.
func TestBuiltinsRender(t *testing.T) {
	names := map[string]bool{}
	for _, tm := range Builtins() {
		names[tm.Name] = true
		for _, set := range []map[string]string{
			nil,
			{"teams": "alpha", "services": "api,worker,cache", "environments": "dev,staging,prod", "window": "30 3 * * SAT", "timeZone": "Europe/Paris", "tier": "1"},
		} {
			files, err := tm.Render(set)
			if err != nil {
				t.Fatalf("%s %v: %v", tm.Name, set, err)
			}
			all := ""
			for _, f := range files {
				all += string(f.Data)
			}
			for _, kind := range []string{"Team", "Service", "HostGroup", "Policy", "MaintenanceWindow", "RolloutStrategy", "ApprovalRule"} {
				if !strings.Contains(all, "kind: "+kind+"\n") {
					t.Errorf("%s %v: no %s", tm.Name, set, kind)
				}
			}
			if set != nil && !strings.Contains(all, "hostGroup: dev, maxConcurrency: 2") {
				t.Errorf("%s: the first environment is not the first ring", tm.Name)
			}
		}
	}
	for _, want := range []string{"web-fleet", "regulated", "small-team"} {
		if !names[want] {
			t.Errorf("no built-in template %s", want)
		}
	}
}

// TestBadValueNamesKey: a value a parameter refuses, or a parameter the
// template lacks, is an error naming the parameter.
func TestBadValueNamesKey(t *testing.T) {
	tm, err := Builtin("regulated")
	if err != nil {
		t.Fatal(err)
	}
	for set, want := range map[string]string{
		"window=every tuesday":   `window=every tuesday: "every tuesday": want five fields`,
		"approvers=1":            "approvers=1: 1: want at least 2",
		"slaProfile=standard":    `slaProfile=standard: "standard": want one of pci-dss, strict`,
		"teams=Payments":         `teams=Payments: "Payments": does not match`,
		"environments=prod":      `environments=prod: "prod": want at least 2 item(s)`,
		"timeZone=Mars/Olympus":  `timeZone=Mars/Olympus: "Mars/Olympus": not an IANA time zone`,
		"colour=blue":            "colour=blue: template regulated has no such parameter",
		"auditCheckpoints=false": `auditCheckpoints=false: "false": want one of true`,
		"bake=soon":              "bake=soon: ",
	} {
		k, v, _ := strings.Cut(set, "=")
		_, err := tm.Render(map[string]string{k: v})
		var pe *ParamError
		if !errors.As(err, &pe) || pe.Name != k || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("--set %s: %v, want %q…", set, err, want)
		}
	}
}

// TestManifestPositions: a manifest's problems are reported with
// file:line:column, every one.
func TestManifestPositions(t *testing.T) {
	fsys := fstest.MapFS{ManifestFile: {Data: []byte(`apiVersion: patchbay/v1
kind: Template
metadata:
  name: mine
spec:
  description: mine
  parameters:
    - name: teams
      type: lists
      prompt: Teams
    - name: window
      type: schedule
      prompt: Window
      default: sometimes
    - name: x
      type: string
      prompt: X
      pattern: "("
      colour: red
`)}}
	_, err := Load(fsys, "my-template")
	if err == nil {
		t.Fatal("loaded")
	}
	for _, want := range []string{
		`my-template/template.yaml:19:7: spec.parameters[2].colour: unknown field (want one of name, type, prompt, description, default, allowed, pattern, min, max)`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
	fsys[ManifestFile].Data = []byte(strings.Replace(string(fsys[ManifestFile].Data), "      colour: red\n", "", 1))
	_, err = Load(fsys, "my-template")
	for _, want := range []string{
		`my-template/template.yaml:9:13: spec.parameters[0].type: "lists": want one of string, int, bool, list, schedule, duration, timezone, date`,
		`my-template/template.yaml:14:16: spec.parameters[1].default: "sometimes": want five fields`,
		`my-template/template.yaml:18:16: spec.parameters[2].pattern: "(": error parsing regexp`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
}

// TestCustomTemplate: a directory template renders its .tmpl files,
// copies the others, and a rendering that is not valid policy is refused
// naming the file.
func TestCustomTemplate(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(ManifestFile, "apiVersion: patchbay/v1\nkind: Template\nmetadata: {name: mine}\nspec:\n  description: one team\n  parameters:\n    - {name: team, type: string, prompt: Team, pattern: '[a-z]+'}\n    - {name: tier, type: int, prompt: Tier, default: 3, min: 1, max: 4}\n")
	write("teams.yaml.tmpl", "apiVersion: patchbay/v1\nkind: Team\nmetadata: {name: {{.team}}}\nspec: {description: tier {{.tier}}}\n")
	write("notes/keep.txt", "{{not a template}}\n")
	tm, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tm.Render(nil); err == nil || err.Error() != "team: required: the template has no default for it" {
		t.Errorf("no value for a required parameter: %v", err)
	}
	files, err := tm.Render(map[string]string{"team": "ops"})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 2 || files[0].Path != "notes/keep.txt" || string(files[0].Data) != "{{not a template}}\n" ||
		files[1].Path != "teams.yaml" || !strings.Contains(string(files[1].Data), "name: ops}\nspec: {description: tier 3}") {
		t.Fatalf("files: %+v", files)
	}
	write("services.yaml.tmpl", "apiVersion: patchbay/v1\nkind: Service\nmetadata: {name: x}\nspec: {owner: nobody, tier: {{.tier}}, exposure: internal}\n")
	tm, _ = Open(dir)
	if _, err := tm.Render(map[string]string{"team": "ops"}); err == nil || !strings.Contains(err.Error(), `services.yaml:4:15: spec.owner: no Team named "nobody"`) {
		t.Errorf("an invalid rendering: %v", err)
	}
}

// TestWriteAllOrNothing: a new or empty directory gets every file; a
// directory with files is refused without force and left as it was;
// with force, files of the same names are replaced and others kept.
func TestWriteAllOrNothing(t *testing.T) { // not parallel: it changes directory
	files := []File{{Path: "a.yaml", Data: []byte("a\n"), Mode: 0o644}, {Path: ".github/workflows/x.yml", Data: []byte("x\n"), Mode: 0o644}}
	root := t.TempDir()
	dir := filepath.Join(root, "repo")
	if err := Write(dir, files, false); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, ".github/workflows/x.yml")); string(b) != "x\n" {
		t.Fatalf("x.yml: %q", b)
	}
	os.WriteFile(filepath.Join(dir, "mine.txt"), []byte("mine"), 0o644)
	os.WriteFile(filepath.Join(dir, "a.yaml"), []byte("changed"), 0o644)
	if err := Write(dir, files, false); !errors.Is(err, ErrNotEmpty) {
		t.Fatalf("non-empty dir: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "a.yaml")); string(b) != "changed" {
		t.Error("a refused write changed a file")
	}
	if err := Write(dir, files, true); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "a.yaml")); string(b) != "a\n" {
		t.Error("--force did not replace a.yaml")
	}
	if _, err := os.Stat(filepath.Join(dir, "mine.txt")); err != nil {
		t.Error("--force removed a file it did not write")
	}
	if ents, _ := os.ReadDir(root); len(ents) != 1 {
		t.Errorf("left behind: %v", ents)
	}
	// The current directory, empty.
	empty := filepath.Join(root, "empty")
	os.Mkdir(empty, 0o755)
	t.Chdir(empty)
	if err := Write(".", files, false); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir("."); len(ents) != 2 {
		t.Errorf("init into the current directory: %v", ents)
	}
}
