package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/patchbay/patchbay/internal/rollouttest"
)

// TestSchedulesCommands: list, show (the next five openings and what
// each would patch), pause (a reason required, audited) and resume,
// against a server.
func TestSchedulesCommands(t *testing.T) {
	serverEnv(t)
	file := filepath.Join(t.TempDir(), "p.yaml")
	doc := rollouttest.Policy + `---
apiVersion: patchbay/v1
kind: PatchSchedule
metadata: {name: nightly-security}
spec:
  description: every security patch, nightly
  selector: {types: [security]}
  strategy: standard
  windows: [nightly]
  minAge: {bugfix: 7d}
  kevBypassesMinAge: true
  emergency: true
`
	if err := os.WriteFile(file, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out, errb := runArgs(t, "apply", "-f", file); code != 0 {
		t.Fatalf("apply: %d %s %s", code, out, errb)
	}
	code, out, errb := runArgs(t, "schedules", "list")
	if code != 0 || !strings.Contains(out, "nightly-security") || !strings.Contains(out, "standard") || !strings.Contains(out, "active") {
		t.Fatalf("list: %d\n%s\n%s", code, out, errb)
	}
	code, out, errb = runArgs(t, "schedules", "show", "nightly-security")
	if code != 0 || strings.Count(out, "  nightly  ") != 5 || !strings.Contains(out, "release-age gate: bugfix 7d (KEV findings bypass it)") ||
		!strings.Contains(out, "emergency lane") || !strings.Contains(out, "hosts 0  packages 0  closes -") {
		t.Errorf("show: %d\n%s\n%s", code, out, errb)
	}
	if code, _, errb := runArgs(t, "schedules", "show", "nope"); code == 0 || !strings.Contains(errb, "no such PatchSchedule: nope") {
		t.Errorf("show nope: %d %s", code, errb)
	}
	if code, _, errb := runArgs(t, "schedules", "pause", "nightly-security"); code == 0 || !strings.Contains(errb, "--reason: missing") {
		t.Errorf("pause without a reason: %d %s", code, errb)
	}
	if code, out, errb := runArgs(t, "schedules", "pause", "nightly-security", "--reason", "change freeze"); code != 0 || !strings.Contains(out, "schedule nightly-security: paused by") || !strings.Contains(out, ": change freeze") {
		t.Errorf("pause: %d %s %s", code, out, errb)
	}
	if code, out, _ := runArgs(t, "schedules", "list"); code != 0 || !strings.Contains(out, "paused by") {
		t.Errorf("list paused: %d %s", code, out)
	}
	if code, out, errb := runArgs(t, "schedules", "resume", "nightly-security", "--reason", "over"); code != 0 || !strings.Contains(out, "schedule nightly-security: active") {
		t.Errorf("resume: %d %s %s", code, out, errb)
	}
	if code, _, errb := runArgs(t, "schedules", "resume", "nightly-security"); code == 0 || !strings.Contains(errb, "is not paused already") {
		t.Errorf("resume twice: %d %s", code, errb)
	}
	if code, out, _ := runArgs(t, "audit", "export"); code != 0 || !strings.Contains(out, `"action":"schedule.pause"`) || !strings.Contains(out, `"action":"schedule.resume"`) {
		t.Errorf("audit: %d %.300s", code, out)
	}
}
