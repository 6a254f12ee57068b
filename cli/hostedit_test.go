package cli

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/patchbay/patchbay/api"
	"github.com/patchbay/patchbay/fleet"
	"github.com/patchbay/patchbay/inventory"
	"github.com/patchbay/patchbay/patch"
)

// TestHostLabelAndRevoke: `hosts label` sets and removes the server's
// labels of a host named by its hostname, keeps the others, refuses to
// remove the agent's own; `hosts revoke` makes its next check-in refused.
func TestHostLabelAndRevoke(t *testing.T) {
	r, _ := startInDir(t, t.TempDir())
	t.Setenv(envServer, r.url)
	t.Setenv(envPin, r.fingerprint)
	t.Setenv(envToken, r.adminToken)
	facts := fleet.Facts{Hostname: "web-1", MachineID: "m-web-1", OSID: "debian", OSVersion: "12", Ecosystem: "Debian:12", Labels: map[string]string{"dc": "fra"}}
	enrolled, agent := enrollHost(t, r, facts)

	code, out, errb := run(t, t.TempDir(), "hosts", "label", "web-1", "env=prod", "role=web")
	if code != ExitOK || out != "host web-1 ("+enrolled.HostID+") labels: dc=fra,env=prod,role=web\n" {
		t.Fatalf("label: %d %q %s", code, out, errb)
	}
	code, out, errb = run(t, t.TempDir(), "hosts", "label", "web-1", "role-", "tier=1")
	if code != ExitOK || out != "host web-1 ("+enrolled.HostID+") labels: dc=fra,env=prod,tier=1\n" {
		t.Errorf("label role-: %d %q %s", code, out, errb)
	}
	if code, _, errb := run(t, t.TempDir(), "hosts", "label", "web-1", "dc-"); code != ExitError || !strings.Contains(errb, "comes from its agent") {
		t.Errorf("removing the agent's label: %d %s", code, errb)
	}
	if code, _, errb := run(t, t.TempDir(), "hosts", "label", "web-1", "bogus"); code != ExitError || !strings.Contains(errb, `"bogus": want KEY=VALUE`) {
		t.Errorf("a bad argument: %d %s", code, errb)
	}
	if code, _, errb := run(t, t.TempDir(), "hosts", "label", "web-1"); code != ExitError || !strings.Contains(errb, "nothing to change") {
		t.Errorf("nothing to change: %d %s", code, errb)
	}
	code, out, _ = run(t, t.TempDir(), "hosts", "label", "web-1", "--clear")
	if code != ExitOK || !strings.HasSuffix(out, "labels: dc=fra\n") {
		t.Errorf("--clear: %d %q", code, out)
	}

	code, out, errb = run(t, t.TempDir(), "hosts", "revoke", "web-1")
	if code != ExitOK || !strings.HasPrefix(out, "host "+enrolled.HostID+": revoked ") {
		t.Fatalf("revoke: %d %q %s", code, out, errb)
	}
	pkgs := []inventory.Package{}
	ups := []patch.Update{}
	rep := api.Report{CollectedAt: time.Now().UTC(), Facts: facts, InventoryHash: fleet.InventoryHash(pkgs), UpdatesHash: fleet.UpdatesHash(ups), Inventory: &pkgs, Updates: &ups}
	if err := agent.Do(context.Background(), "POST", api.Prefix+"/agent/checkin", rep, nil); !api.IsStatus(err, 401) {
		t.Errorf("check-in after revoke: %v, want 401", err)
	}
	if code, out, _ := run(t, t.TempDir(), "hosts", "revoke", "web-1"); code != ExitOK || !strings.Contains(out, "no active credential") {
		t.Errorf("revoke twice: %d %q", code, out)
	}
}
