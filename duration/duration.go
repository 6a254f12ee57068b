// Package duration holds Duration, the span policy documents and job
// manifests write in days or weeks as well as Go's units. A leaf: it
// imports only the standard library.
package duration

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Duration is a span written in days or weeks as well as Go's units:
// "7d", "2w", "36h", "90m".
type Duration time.Duration

// Parse parses a Duration.
func Parse(s string) (Duration, error) {
	s = strings.TrimSpace(s)
	for suffix, unit := range map[string]time.Duration{"d": 24 * time.Hour, "w": 7 * 24 * time.Hour} {
		if n, ok := strings.CutSuffix(s, suffix); ok {
			v, err := strconv.Atoi(n)
			if err != nil || v < 0 {
				return 0, fmt.Errorf("duration %q: want a number of days (7d), weeks (2w) or hours (36h)", s)
			}
			return Duration(time.Duration(v) * unit), nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("duration %q: want a number of days (7d), weeks (2w) or hours (36h)", s)
	}
	return Duration(d), nil
}

func (d Duration) String() string {
	day := 24 * time.Hour
	if td := time.Duration(d); td != 0 && td%day == 0 {
		return strconv.FormatInt(int64(td/day), 10) + "d"
	}
	return time.Duration(d).String()
}

// IsZero reports an absent duration (for omitempty).
func (d Duration) IsZero() bool { return d == 0 }

// MarshalText renders "7d" or "36h0m0s".
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText parses a Duration.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := Parse(string(b))
	if err != nil {
		return err
	}
	*d = v
	return nil
}
