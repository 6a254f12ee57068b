package kpi

import (
	"errors"
	"testing"
	"time"
)

func TestParsers(t *testing.T) {
	for _, c := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{{"90d", 90 * day, true}, {"12w", 84 * day, true}, {"6m", 180 * day, true}, {"36h", 36 * time.Hour, true},
		{"0d", 0, false}, {"-3d", 0, false}, {"ninety", 0, false}, {"", 0, false}, {"1.5d", 0, false}} {
		got, err := ParseSince(c.in)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("ParseSince(%q) = %s, %v", c.in, got, err)
		}
		if err != nil && !errors.Is(err, ErrBadQuery) {
			t.Errorf("ParseSince(%q): %v is not ErrBadQuery", c.in, err)
		}
	}
	if d, err := ParseDate("2026-03-31"); err != nil || !d.Equal(time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("a date is the end of its day: %s %v", d, err)
	}
	if d, err := ParseDate("2026-03-31T12:00:00Z"); err != nil || d.Hour() != 12 {
		t.Errorf("an RFC 3339 time is itself: %s %v", d, err)
	}
	if _, err := ParseDate("31/03/2026"); err == nil {
		t.Error("31/03/2026 parsed")
	}
	for _, ok := range []string{"", "priority", "team", "label:env", "strategy"} {
		if _, err := ParseDimension(ok); err != nil {
			t.Errorf("ParseDimension(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"colour", "label:", "Priority"} {
		if _, err := ParseDimension(bad); err == nil {
			t.Errorf("ParseDimension(%q) accepted", bad)
		}
	}
	if (Dimension("label:env")).Label() != "env" || ByTeam.Label() != "" {
		t.Error("Label")
	}
}

func TestStepFloors(t *testing.T) {
	thu := time.Date(2026, 1, 15, 13, 5, 0, 0, time.UTC) // a Thursday
	for _, c := range []struct {
		s          Step
		floor, nxt time.Time
	}{
		{Daily, time.Date(2026, 1, 15, 0, 0, 0, 0, time.UTC), time.Date(2026, 1, 16, 0, 0, 0, 0, time.UTC)},
		{Weekly, time.Date(2026, 1, 12, 0, 0, 0, 0, time.UTC), time.Date(2026, 1, 19, 0, 0, 0, 0, time.UTC)},
		{Monthly, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)},
	} {
		if f := c.s.floor(thu); !f.Equal(c.floor) || !c.s.next(f).Equal(c.nxt) {
			t.Errorf("%s: floor %s next %s", c.s, f, c.s.next(f))
		}
	}
}

func TestQueryChecks(t *testing.T) {
	to := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, q := range []Query{
		{},                             // no as-of date
		{From: to, To: to},             // empty period
		{To: to, WithinDays: -1},       // negative N
		{To: to, Stale: time.Minute},   // finer than the gaps
		{To: to, By: Dimension("sky")}, // no such cut
	} {
		if _, err := Compute(Data{}, q); !errors.Is(err, ErrBadQuery) {
			t.Errorf("%+v: %v", q, err)
		}
	}
	r, err := Compute(Data{}, Query{To: to})
	if err != nil || !r.From.Equal(to.Add(-90*day)) || r.Total.Group != All {
		t.Errorf("defaults: %+v %v", r, err)
	}
}

func TestNearestRank(t *testing.T) {
	s := []time.Duration{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	if NearestRank(s, 0.5) != 5 || NearestRank(s, 0.9) != 9 || NearestRank(s[:1], 0.9) != 1 || NearestRank(s[:3], 0.5) != 2 {
		t.Error("nearest rank")
	}
}
