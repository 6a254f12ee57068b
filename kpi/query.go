package kpi

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// Dimension is what figures are cut by.
type Dimension string

// Dimensions. A label dimension is "label:KEY".
const (
	ByNone     Dimension = ""
	ByPriority Dimension = "priority"
	ByCycle    Dimension = "cycle"
	ByType     Dimension = "type"
	ByTeam     Dimension = "team"
	ByService  Dimension = "service"
	ByGroup    Dimension = "group"
	ByStrategy Dimension = "strategy" // jobs only
	ByRollout  Dimension = "rollout"  // jobs only: the plan
	ByPackage  Dimension = "package"  // jobs only: each package a job upgrades
)

// Dimensions lists the dimensions by name (label:KEY besides).
var Dimensions = []Dimension{ByPriority, ByCycle, ByType, ByTeam, ByService, ByGroup, ByStrategy, ByRollout, ByPackage}

// ParseDimension parses a --by value.
func ParseDimension(s string) (Dimension, error) {
	d := Dimension(s)
	if d == ByNone || slices.Contains(Dimensions, d) {
		return d, nil
	}
	if k, ok := strings.CutPrefix(s, "label:"); ok && k != "" {
		return d, nil
	}
	names := make([]string, len(Dimensions))
	for i, d := range Dimensions {
		names[i] = string(d)
	}
	return "", badQuery("by %q: want one of %s or label:KEY", s, strings.Join(names, ", "))
}

// Label is the label key of a label dimension ("" for others).
func (d Dimension) Label() string {
	k, _ := strings.CutPrefix(string(d), "label:")
	if k == string(d) {
		return ""
	}
	return k
}

// assetDim says whether the dimension is a property of the asset (so it
// cuts uptime, coverage and jobs as well as exposure).
func (d Dimension) assetDim() bool {
	return d == ByTeam || d == ByService || d == ByGroup || d.Label() != ""
}

// None is the group of what has no value for the dimension.
const None = "(none)"

// All is the one group of an uncut report.
const All = "all"

// Filter keeps what matches all of its non-empty fields.
type Filter struct {
	Team, Service, Group string
	Labels               map[string]string
	Priority, Cycle      string
}

func (f Filter) asset(a *Asset) bool {
	// (none) keeps the assets without a team.
	if f.Team != "" && (a == nil || orNone(a.Team) != f.Team) {
		return false
	}
	if f.Service != "" && (a == nil || !slices.Contains(a.Services, f.Service)) {
		return false
	}
	if f.Group != "" && (a == nil || !slices.Contains(a.Groups, f.Group)) {
		return false
	}
	for k, v := range f.Labels {
		if a == nil || a.Labels[k] != v {
			return false
		}
	}
	return true
}

func (f Filter) interval(iv *Interval, a *Asset) bool {
	if f.Priority != "" && iv.Priority != f.Priority {
		return false
	}
	if f.Cycle != "" && iv.Cycle != f.Cycle {
		return false
	}
	return f.asset(a)
}

// Query asks for the figures of a period.
type Query struct {
	// From and To bound the period (From, To]; To is the date the fleet
	// is seen as of (what happened after it is unknown).
	From, To time.Time
	By       Dimension
	// WithinDays is N of "patched within N days of the fix's release";
	// 0 takes each interval's SLA (its due date less its open time).
	WithinDays int
	// Stale: a host whose check-ins pause this long is down and not
	// reporting (at least 15 minutes, the ledger's resolution).
	Stale time.Duration
	// ServiceFresh: a service's inventory younger than this covers it.
	ServiceFresh time.Duration
	Filter       Filter
}

// Defaults of a Query.
const (
	DefaultStale        = 15 * time.Minute
	DefaultServiceFresh = 7 * 24 * time.Hour
	// ReopenWindow: a remediated interval followed by another of the same
	// key within this long counts as reopened.
	ReopenWindow = 30 * 24 * time.Hour
	day          = 24 * time.Hour
)

// normalize fills the defaults and checks the query.
func (q *Query) normalize() error {
	if q.To.IsZero() {
		return badQuery("no as-of date")
	}
	if q.From.IsZero() {
		q.From = q.To.Add(-90 * day)
	}
	if !q.From.Before(q.To) {
		return badQuery("period from %s to %s: from must be before to", q.From.Format(time.RFC3339), q.To.Format(time.RFC3339))
	}
	if q.WithinDays < 0 {
		return badQuery("within %d days: want 0 (the SLA) or more", q.WithinDays)
	}
	if q.Stale == 0 {
		q.Stale = DefaultStale
	}
	if q.Stale < DefaultStale {
		return badQuery("stale after %s: want at least %s (check-in gaps are kept from 15 minutes)", q.Stale, DefaultStale)
	}
	if q.ServiceFresh <= 0 {
		q.ServiceFresh = DefaultServiceFresh
	}
	if _, err := ParseDimension(string(q.By)); err != nil {
		return err
	}
	return nil
}

// keys are the groups an interval falls in.
func (d Dimension) intervalKeys(iv *Interval, a *Asset) []string {
	switch d {
	case ByNone:
		return []string{All}
	case ByPriority:
		return []string{orNone(iv.Priority)}
	case ByCycle:
		return []string{orNone(iv.Cycle)}
	case ByType:
		// An exposure is closed by a security update, by definition.
		return []string{"security"}
	case ByStrategy, ByRollout, ByPackage:
		return nil
	}
	return d.assetKeys(a)
}

func (d Dimension) assetKeys(a *Asset) []string {
	if a == nil {
		return []string{None}
	}
	switch d {
	case ByNone:
		return []string{All}
	case ByTeam:
		return []string{orNone(a.Team)}
	case ByService:
		return orNoneList(a.Services)
	case ByGroup:
		return orNoneList(a.Groups)
	}
	if k := d.Label(); k != "" {
		return []string{orNone(a.Labels[k])}
	}
	return nil
}

func (d Dimension) jobKeys(j *Job, a *Asset) []string {
	switch d {
	case ByStrategy:
		return []string{orNone(j.Strategy)}
	case ByRollout:
		return []string{orNone(j.Plan)}
	case ByPackage:
		return orNoneList(j.Packages)
	case ByType:
		return orNoneList(j.Types)
	case ByPriority, ByCycle:
		return nil
	}
	return d.assetKeys(a)
}

func orNone(s string) string {
	if s == "" {
		return None
	}
	return s
}

func orNoneList(l []string) []string {
	if len(l) == 0 {
		return []string{None}
	}
	return l
}

// ParseSince parses a period length: "90d", "12w", "6m" (30-day months)
// or a Go duration ("36h").
func ParseSince(s string) (time.Duration, error) {
	if s == "" {
		return 0, badQuery("empty period")
	}
	unit := map[byte]time.Duration{'d': day, 'w': 7 * day, 'm': 30 * day}
	if u, ok := unit[s[len(s)-1]]; ok {
		var n int
		if _, err := fmt.Sscanf(s[:len(s)-1], "%d", &n); err == nil && n > 0 && fmt.Sprint(n) == s[:len(s)-1] {
			return time.Duration(n) * u, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, badQuery("period %q: want a number of days (90d), weeks (12w), months (6m) or a duration (36h)", s)
	}
	return d, nil
}

// ParseDate parses a date (2026-01-31, the end of that day in UTC: the
// fleet as it was when the day was over) or an RFC 3339 time.
func ParseDate(s string) (time.Time, error) {
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t.Add(day), nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	return time.Time{}, badQuery("date %q: want YYYY-MM-DD or an RFC 3339 time", s)
}

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}
