//go:build patchbaytest

package cli

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestTestClockReadsFile: built for tests, the clock is the file's time,
// follows the file, and keeps the last good time when the file is
// unreadable.
func TestTestClockReadsFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "clock")
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("2030-01-01T22:00:00Z\n")
	var logs bytes.Buffer
	t.Setenv(envTestClock, path)
	c := testClock(slog.New(slog.NewTextHandler(&logs, nil)), "agent")
	if c == nil {
		t.Fatal("no clock with -tags patchbaytest")
	}
	if !strings.Contains(logs.String(), "the agent's clock is read from a file") {
		t.Errorf("log %q", logs.String())
	}
	want := time.Date(2030, 1, 1, 22, 0, 0, 0, time.UTC)
	if got := c(); !got.Equal(want) {
		t.Errorf("now %v, want %v", got, want)
	}
	write("2030-01-02T08:30:00.5+01:00")
	want = time.Date(2030, 1, 2, 7, 30, 0, 5e8, time.UTC)
	if got := c(); !got.Equal(want) {
		t.Errorf("after the file changed: now %v, want %v", got, want)
	}
	write("not a time")
	if got := c(); !got.Equal(want) {
		t.Errorf("unparsable file: now %v, want the last good %v", got, want)
	}
	os.Remove(path)
	if got := c(); !got.Equal(want) {
		t.Errorf("missing file: now %v, want the last good %v", got, want)
	}
}
