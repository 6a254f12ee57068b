package cli

import (
	"log/slog"
	"os"
	"time"
)

// envTestClock names a file holding an RFC 3339 time that the server's and
// the agents' clocks read, so that tests drive time across processes. Only
// binaries built with -tags patchbaytest read it (testclock_patchbaytest.go);
// the shipped binary warns that it is ignored.
const envTestClock = "PATCHBAY_TEST_CLOCK"

// testClockHook is set only in builds with -tags patchbaytest: it returns
// the clock read from the file at path.
var testClockHook func(path string) func() time.Time

// testClock returns the clock of the server or the agent (who), or nil for
// time.Now: always nil in the shipped binary.
func testClock(log *slog.Logger, who string) func() time.Time {
	path := os.Getenv(envTestClock)
	if path == "" {
		return nil
	}
	if testClockHook == nil {
		log.Warn(envTestClock+" is ignored: only binaries built with -tags patchbaytest (for tests) read it", "file", path)
		return nil
	}
	log.Warn("the "+who+"'s clock is read from a file ("+envTestClock+"): for tests only", "file", path)
	return testClockHook(path)
}
