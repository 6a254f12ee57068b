package cli

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

var update = flag.Bool("update", false, "rewrite the golden files of testdata/help")

// TestHelpGolden keeps the --help of every command in testdata/help, so
// the CLI's face changes only on purpose: `go test ./cli -run
// TestHelpGolden -update` rewrites them, and the diff is reviewed.
func TestHelpGolden(t *testing.T) {
	// Defaults that come from the environment would leak into the help.
	for _, v := range []string{envServer, envCA, envPin, envToken, "PATCHBAY_DATA_DIR", "PATCHBAY_DB"} {
		t.Setenv(v, "")
	}
	var paths [][]string
	var walk func(c *cobra.Command, path []string)
	walk = func(c *cobra.Command, path []string) {
		paths = append(paths, path)
		for _, sub := range c.Commands() {
			if sub.IsAvailableCommand() {
				walk(sub, append(append([]string(nil), path...), sub.Name()))
			}
		}
	}
	walk(newRoot(&env{}), nil)
	dir := filepath.Join("testdata", "help")
	want := map[string]bool{}
	for _, p := range paths {
		name := strings.Join(append([]string{"patchbay"}, p...), "_") + ".txt"
		want[name] = true
		code, out, errb := run(t, "/nonexistent-data-dir", append(append([]string(nil), p...), "--help")...)
		if code != ExitOK || errb != "" {
			t.Errorf("%v --help: exit %d, %s", p, code, errb)
			continue
		}
		golden := filepath.Join(dir, name)
		if *update {
			os.MkdirAll(dir, 0o755)
			if err := os.WriteFile(golden, []byte(out), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		b, err := os.ReadFile(golden)
		if err != nil {
			t.Errorf("%v: no golden file %s (go test ./cli -run TestHelpGolden -update)", p, golden)
			continue
		}
		if string(b) != out {
			t.Errorf("patchbay %s --help changed (go test ./cli -run TestHelpGolden -update, then review the diff):\n%s", strings.Join(p, " "), lineDiff(string(b), out))
		}
	}
	// No golden file of a command that is gone.
	files, _ := filepath.Glob(filepath.Join(dir, "*.txt"))
	for _, f := range files {
		if !want[filepath.Base(f)] {
			if *update {
				os.Remove(f)
			} else {
				t.Errorf("%s: no such command any more", f)
			}
		}
	}
}

// lineDiff shows the first lines where two texts differ.
func lineDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	var out []string
	for i := 0; i < len(al) || i < len(bl); i++ {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y {
			out = append(out, "- "+x, "+ "+y)
			if len(out) >= 20 {
				break
			}
		}
	}
	return strings.Join(out, "\n")
}
