package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/patchbay/patchbay/buildinfo"
)

// groups returns the command path of every command that only groups
// subcommands (audit, admin token, plan …).
func groups(t *testing.T) [][]string {
	t.Helper()
	var out [][]string
	var walk func(c *cobra.Command, path []string)
	walk = func(c *cobra.Command, path []string) {
		for _, sub := range c.Commands() {
			if !sub.IsAvailableCommand() {
				continue
			}
			p := append(append([]string(nil), path...), sub.Name())
			if sub.HasSubCommands() {
				out = append(out, p)
			}
			walk(sub, p)
		}
	}
	walk(newRoot(&env{}), nil)
	if len(out) < 10 {
		t.Fatalf("found only %d command groups: %v", len(out), out)
	}
	return out
}

// TestMistypedSubcommandFails: at every level a word that is not a
// subcommand exits 2 naming it, with a suggestion when one is close, and
// never runs anything (no data dir is made).
func TestMistypedSubcommandFails(t *testing.T) {
	for _, g := range groups(t) {
		data := t.TempDir() + "/never"
		args := append(append([]string(nil), g...), "bogus", "X")
		code, out, errb := run(t, data, args...)
		if code != ExitError || !strings.Contains(errb, `unknown command "bogus" for "patchbay `+strings.Join(g, " ")+`"`) {
			t.Errorf("%v: exit %d, stderr %q", args, code, errb)
		}
		if out != "" {
			t.Errorf("%v printed on stdout: %q", args, out)
		}
		if _, err := os.Stat(data); err == nil {
			t.Errorf("%v made the data dir %s", args, data)
		}
	}
	for _, c := range []struct{ args, suggest string }{
		{"audit verfy", "verify"}, {"policy valdate", "validate"}, {"feeds stats", "status"},
		{"hosts lst", "list"}, {"plan shw X", "show"}, {"rollout stat X", "status"}, {"admin tokn", "token"},
	} {
		code, _, errb := run(t, t.TempDir(), strings.Fields(c.args)...)
		if code != ExitError || !strings.Contains(errb, "Did you mean this?\n") || !strings.Contains(errb, "\t"+c.suggest+"\n") {
			t.Errorf("%s: exit %d, stderr %q; want the suggestion %s", c.args, code, errb, c.suggest)
		}
	}
	// A group alone prints its help and succeeds; so does --help.
	for _, args := range [][]string{{"audit"}, {"audit", "--help"}, {"admin", "token"}} {
		code, out, _ := run(t, t.TempDir(), args...)
		if code != ExitOK || !strings.Contains(out, "Available Commands:") {
			t.Errorf("%v: exit %d, stdout %q", args, code, out)
		}
	}
}

func TestVersion(t *testing.T) {
	b := buildinfo.Get()
	code, out, _ := run(t, t.TempDir(), "version")
	if code != ExitOK || out != "patchbay "+b.String()+"\n" {
		t.Errorf("version: exit %d, %q", code, out)
	}
	code, out2, _ := run(t, t.TempDir(), "--version")
	if code != ExitOK || out2 != out {
		t.Errorf("--version: exit %d, %q; want %q", code, out2, out)
	}
	code, js, _ := run(t, t.TempDir(), "version", "-o", "json")
	var got buildinfo.Info
	if err := json.Unmarshal([]byte(js), &got); code != ExitOK || err != nil || got != b {
		t.Errorf("version -o json: exit %d, %v, %q", code, err, js)
	}
	var errb bytes.Buffer
	if code := Run(context.Background(), []string{"version", "-o", "xml"}, &bytes.Buffer{}, &errb); code != ExitError || !strings.Contains(errb.String(), "want text or json") {
		t.Errorf("version -o xml: exit %d, %q", code, errb.String())
	}
}
