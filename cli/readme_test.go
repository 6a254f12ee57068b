package cli

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/patchbay/patchbay/api"
	"github.com/patchbay/patchbay/fleet"
	"github.com/patchbay/patchbay/inventory"
	"github.com/patchbay/patchbay/patch"
)

// readmeLine returns the README's shell line that contains marker, as
// the commands it holds: `;`-separated, the first of ` | ` alternatives,
// optional [parts] and # comments dropped, without the leading "patchbay".
func readmeLine(t *testing.T, marker string) [][]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.Contains(line, marker) {
			continue
		}
		line = regexp.MustCompile(`\s+#.*$`).ReplaceAllString(line, "")
		line = regexp.MustCompile(`\[[^\]]*\]`).ReplaceAllString(line, "")
		var out [][]string
		for _, c := range strings.Split(line, "; ") {
			c, _, _ = strings.Cut(c, " | ")
			w := strings.Fields(c)
			if len(w) == 0 || w[0] != "patchbay" {
				t.Fatalf("README line %q: %q is not a patchbay command", line, c)
			}
			out = append(out, w[1:])
		}
		return out
	}
	t.Fatalf("README has no line with %q", marker)
	return nil
}

// TestReadmeRolloutAsWritten runs the README's rollout commands as they
// are written there — plan create with the strategy the example policy
// ships, plan show, approve, rollout start and status — against a real
// server holding the example policy and a host with a security update.
func TestReadmeRolloutAsWritten(t *testing.T) {
	dir := t.TempDir()
	r, _ := startInDir(t, dir)
	t.Setenv(envServer, r.url)
	t.Setenv(envPin, r.fingerprint)
	t.Setenv(envToken, r.adminToken)
	if code, _, errb := run(t, t.TempDir(), "apply", "-f", filepath.Join("..", "docs", "policy-example")); code != ExitOK {
		t.Fatalf("apply the example: %d %s", code, errb)
	}

	facts := fleet.Facts{Hostname: "web-1", MachineID: "m-web-1", OSID: "debian", OSVersion: "12", Ecosystem: "Debian:12", AgentVersion: "test"}
	_, agent := enrollHost(t, r, facts)
	pkgs := []inventory.Package{{Ecosystem: "Debian:12", Name: "openssl", Version: "3.0.15-1~deb12u1", SourceName: "openssl", SourceVersion: "3.0.15-1~deb12u1"}}
	ups := []patch.Update{{Ecosystem: "Debian:12", Name: "openssl", SourceName: "openssl", SourceVersion: "3.0.15-1~deb12u1", Installed: "3.0.15-1~deb12u1",
		Candidate: "3.0.17-1~deb12u2", Origin: "bookworm-security", Pocket: "security", CVEs: []string{"CVE-2025-9230"}, Types: []patch.Type{patch.Security}, Cycle: "system"}}
	rep := api.Report{CollectedAt: time.Now().UTC(), Facts: facts, InventoryHash: fleet.InventoryHash(pkgs), UpdatesHash: fleet.UpdatesHash(ups), Inventory: &pkgs, Updates: &ups}
	if err := agent.Do(context.Background(), "POST", api.Prefix+"/agent/checkin", rep, nil); err != nil {
		t.Fatal(err)
	}

	create := readmeLine(t, "plan create --strategy standard")
	if len(create) != 1 {
		t.Fatalf("plan create line: %v", create)
	}
	code, out, errb := run(t, t.TempDir(), create[0]...)
	if code != ExitOK {
		t.Fatalf("README's %v: exit %d\n%s\n%s", create[0], code, out, errb)
	}
	plan := regexp.MustCompile(`plan-\d{8}-\d{6}-[0-9a-f]+`).FindString(out + errb)
	if plan == "" {
		t.Fatalf("no plan id in the output of %v:\n%s\n%s", create[0], out, errb)
	}
	for _, marker := range []string{"patchbay plan show PLAN", "patchbay rollout status|"} {
		for _, c := range readmeLine(t, marker) {
			args := make([]string, len(c))
			for i, w := range c {
				args[i] = strings.ReplaceAll(w, "PLAN", plan)
				if i == 1 && strings.Contains(w, "|") {
					args[i] = strings.Split(w, "|")[0] // rollout status|watch|…: the first
				}
			}
			code, out, errb := run(t, t.TempDir(), args...)
			t.Logf("$ patchbay %s\n%s%s", strings.Join(args, " "), out, errb)
			if code != ExitOK {
				t.Errorf("README's %v: exit %d\n%s\n%s", args, code, out, errb)
			}
			if args[0] == "rollout" && args[1] == "status" && !strings.Contains(out, "fleet") {
				t.Errorf("rollout status names no ring of the standard strategy:\n%s", out)
			}
		}
	}
}
