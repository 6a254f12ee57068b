//go:build patchbaytest

package cli

import (
	"os"
	"strings"
	"sync"
	"time"
)

// This file is compiled only with -tags patchbaytest (the e2e tests build
// the binary so): it lets PATCHBAY_TEST_CLOCK drive the server's and the
// agents' time.
func init() { testClockHook = fileClock }

// fileClock is a clock read from a file holding an RFC 3339 time (for
// tests that drive time across processes); an unreadable file reads as
// the last good time.
func fileClock(path string) func() time.Time {
	var mu sync.Mutex
	last := time.Now()
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		b, err := os.ReadFile(path)
		if err != nil {
			return last
		}
		t, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(string(b)))
		if err != nil {
			return last
		}
		last = t
		return t
	}
}
