package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSystemdUnitsUseRealFlags: the ExecStart lines of the units in
// deploy/ parse with this CLI (a renamed flag would break deployments).
func TestSystemdUnitsUseRealFlags(t *testing.T) {
	units, err := filepath.Glob("../deploy/*.service")
	if err != nil || len(units) != 2 {
		t.Fatalf("units %v %v", units, err)
	}
	for _, u := range units {
		b, err := os.ReadFile(u)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, line := range strings.Split(string(b), "\n") {
			cmd, ok := strings.CutPrefix(line, "ExecStart=")
			if !ok {
				continue
			}
			found = true
			args := strings.Fields(cmd)
			if args[0] != "/usr/local/bin/patchbay" {
				t.Errorf("%s: ExecStart runs %s", u, args[0])
			}
			code, _, stderr := run(t, t.TempDir(), append(args[1:], "--help")...)
			if code != 0 || stderr != "" {
				t.Errorf("%s: %q does not parse: %d %s", u, cmd, code, stderr)
			}
			code, _, stderr = run(t, t.TempDir(), append(args[1:], "--no-such-flag", "--help")...)
			if code == 0 {
				t.Errorf("an unknown flag parses: the check above proves nothing (%s)", stderr)
			}
		}
		if !found {
			t.Errorf("%s has no ExecStart", u)
		}
	}
}
