package policy

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Duration is a span written in days or weeks as well as Go's units:
// "7d", "2w", "36h", "90m".
type Duration time.Duration

// ParseDuration parses a Duration.
func ParseDuration(s string) (Duration, error) {
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
	v, err := ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// Date is a day ("2026-12-31": until the end of that day, UTC) or an
// instant (RFC 3339).
type Date struct {
	t       time.Time
	dayOnly bool
}

// ParseDate parses a Date.
func ParseDate(s string) (Date, error) {
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return Date{t: t, dayOnly: true}, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return Date{}, fmt.Errorf("date %q: want YYYY-MM-DD or an RFC 3339 time", s)
	}
	return Date{t: t}, nil
}

// DateOf is the instant t.
func DateOf(t time.Time) Date { return Date{t: t} }

// End is the instant the date is over: the next midnight UTC for a day.
func (d Date) End() time.Time {
	if d.dayOnly {
		return d.t.AddDate(0, 0, 1)
	}
	return d.t
}

// IsZero reports an absent date.
func (d Date) IsZero() bool { return d.t.IsZero() }

func (d Date) String() string {
	if d.dayOnly {
		return d.t.Format(time.DateOnly)
	}
	return d.t.Format(time.RFC3339)
}

// MarshalText renders the date as it was written.
func (d Date) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText parses a Date.
func (d *Date) UnmarshalText(b []byte) error {
	v, err := ParseDate(string(b))
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// Exploitation levels, least to most.
var exploitationLevels = []string{"none", "likely", "active"}

// Impact levels, least to most.
var impactLevels = []string{"partial", "total"}

// Exposure levels, least to most exposed.
var exposureLevels = []string{"isolated", "internal", "internet"}

// Cycles are the two patch cycles.
var cycles = []string{"system", "application"}

func levelOf(levels []string, v string) int {
	for i, l := range levels {
		if l == v {
			return i
		}
	}
	return -1
}

func oneOf(levels []string) string {
	return strings.Join(levels[:len(levels)-1], ", ") + " or " + levels[len(levels)-1]
}
