package policy

import (
	"fmt"
	"strings"
	"time"
)

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
