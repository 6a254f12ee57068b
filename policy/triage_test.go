package policy

import (
	"fmt"
	"testing"
	"time"

	"github.com/patchbay/patchbay/fleet"
	"github.com/patchbay/patchbay/risk"
)

// TestTriageDecidesStoredFindings: the triage sets on stored findings what
// the set decides from their inputs in their asset's context.
func TestTriageDecidesStoredFindings(t *testing.T) {
	_, set, err := Diff(nil, exampleDocs(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	a := fleet.Asset{ID: "h", Labels: map[string]string{"env": "prod", "role": "db", "tier": "3", "exposure": "internal"}}
	var fs []fleet.Finding
	for _, v := range []string{"CVE-2026-116303", "CVE-2026-54872", "CVE-1"} {
		for _, e := range exploitationLevels {
			fs = append(fs, fleet.Finding{HostID: "h", Vulnerability: v, Ecosystem: "Debian:12", Package: "postgresql-15", Version: "1",
				Exploitation: risk.Exploitation(e), Impact: "partial", Cycle: "system", FirstSeen: now.Add(-48 * time.Hour), Priority: risk.P4, State: fleet.StateOpen})
		}
	}
	Triage{Set: set}.Decide(a, fs, now)
	c := set.Context(AssetOf(a))
	priorities := map[risk.Priority]int{}
	for _, f := range fs {
		d := set.Decide(InputsOf(f), c, now)
		got := fmt.Sprintln(f.Priority, f.SLA, f.DueCap, f.State, f.Exception, f.Lane, f.Reasons)
		want := fmt.Sprintln(d.Priority, d.SLA, d.DueCap, d.State, d.Exception, d.Lane, d.Reasons)
		if got != want {
			t.Errorf("%s %s:\n got %s\nwant %s", f.Vulnerability, f.Exploitation, got, want)
		}
		priorities[f.Priority]++
	}
	if len(priorities) < 2 {
		t.Errorf("every finding decided alike (%v): the triage did not see the context", priorities)
	}
}
