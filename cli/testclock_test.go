//go:build !patchbaytest

package cli

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestTestClockIgnoredInShippedBuild: without -tags patchbaytest the clock
// file is not read, and saying so is a warning.
func TestTestClockIgnoredInShippedBuild(t *testing.T) {
	path := filepath.Join(t.TempDir(), "clock")
	if err := os.WriteFile(path, []byte("2030-01-01T00:00:00Z\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	t.Setenv(envTestClock, "")
	if c := testClock(log, "server"); c != nil || logs.Len() != 0 {
		t.Errorf("unset: clock %v, logged %q", c != nil, logs.String())
	}
	t.Setenv(envTestClock, path)
	if c := testClock(log, "server"); c != nil {
		t.Errorf("the shipped build reads the clock file: now %v", c())
	}
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "PATCHBAY_TEST_CLOCK is ignored") {
		t.Errorf("no warning that the variable is ignored: %q", logs.String())
	}
}
