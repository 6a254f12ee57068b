// Package rollout holds what patch rollouts are planned with: maintenance
// windows, approval rules and rollout strategies — policy documents of the
// same machinery (parsing, validation, apply, versions, audit) — and the
// decisions they make: when a job may run, whether a patch is approved on
// its own, how a target is split into rings.
package rollout

import (
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/patchbay/patchbay/duration"
	"github.com/patchbay/patchbay/job"
	"github.com/patchbay/patchbay/patch"
	"github.com/patchbay/patchbay/policy"
	"github.com/patchbay/patchbay/risk"
)

// The kinds of this package.
const (
	KindMaintenanceWindow = "MaintenanceWindow"
	KindApprovalRule      = "ApprovalRule"
	KindRolloutStrategy   = "RolloutStrategy"
)

// Kinds are this package's document kinds: the three rollout policy kinds,
// PatchPlan, the document `plan create -f` reads, and PatchSchedule.
func Kinds() []policy.Kind {
	return []policy.Kind{
		{Name: KindMaintenanceWindow, NewSpec: func() policy.Spec { return &WindowSpec{} }},
		{Name: KindApprovalRule, NewSpec: func() policy.Spec { return &ApprovalRuleSpec{} }},
		{Name: KindRolloutStrategy, NewSpec: func() policy.Spec { return &StrategySpec{} }},
		{Name: KindPatchPlan, NewSpec: func() policy.Spec { return &PlanSpec{} }},
		{Name: KindPatchSchedule, NewSpec: func() policy.Spec { return &ScheduleSpec{} }},
	}
}

func hostGroupRefs(groups []string, field string) []policy.Reference {
	refs := make([]policy.Reference, len(groups))
	for i, g := range groups {
		refs[i] = policy.Reference{Kind: policy.KindHostGroup, Name: g, Path: fmt.Sprintf("%s[%d]", field, i)}
	}
	return refs
}

// WindowSpec is a recurring maintenance window: it opens at every time
// Schedule names (cron, in TimeZone) and stays open for Duration, except
// on blackout days; it covers the hosts of HostGroups.
type WindowSpec struct {
	Description string `yaml:"description,omitempty" json:"description,omitempty"`
	// Schedule is a five-field cron expression (minute hour day-of-month
	// month day-of-week); the day of week may name its occurrence in the
	// month, "TUE#2" for the second Tuesday.
	Schedule   string            `yaml:"schedule" json:"schedule" policy:"required"`
	Duration   duration.Duration `yaml:"duration" json:"duration" policy:"required"`
	TimeZone   string            `yaml:"timeZone" json:"timeZone" policy:"required"`
	Blackouts  []policy.Date     `yaml:"blackouts,omitempty" json:"blackouts,omitempty"`
	HostGroups []string          `yaml:"hostGroups" json:"hostGroups" policy:"required"`
}

// Check validates the window.
func (s *WindowSpec) Check(c *policy.Checker) {
	if _, err := s.schedule(); err != nil {
		c.Errorf("spec.schedule", "%v", err)
	}
	if _, err := time.LoadLocation(s.TimeZone); err != nil || s.TimeZone == "" {
		c.Errorf("spec.timeZone", "%q: want an IANA time zone (Europe/Paris, UTC)", s.TimeZone)
	}
	switch d := time.Duration(s.Duration); {
	case d < 15*time.Minute:
		c.Errorf("spec.duration", "%s: want at least 15m", s.Duration)
	case d > 7*24*time.Hour:
		c.Errorf("spec.duration", "%s: want at most 7d", s.Duration)
	}
	if len(s.HostGroups) == 0 {
		c.Errorf("spec.hostGroups", "empty: name the host groups the window covers")
	}
}

// References are the window's host groups.
func (s *WindowSpec) References() []policy.Reference {
	return hostGroupRefs(s.HostGroups, "spec.hostGroups")
}

// schedule is a parsed Schedule.
type schedule struct {
	cron cron.Schedule
	nth  int // the weekday's occurrence in the month, 0 for any
}

func (s *WindowSpec) schedule() (schedule, error) {
	fields := strings.Fields(s.Schedule)
	if len(fields) != 5 {
		return schedule{}, fmt.Errorf("%q: want five fields: minute hour day-of-month month day-of-week", s.Schedule)
	}
	var sc schedule
	if day, nth, ok := strings.Cut(fields[4], "#"); ok {
		n, err := strconv.Atoi(nth)
		if err != nil || n < 1 || n > 5 || strings.ContainsAny(day, ",-/*") {
			return schedule{}, fmt.Errorf("%q: want one day and its occurrence 1 to 5 in the month (TUE#2)", fields[4])
		}
		if fields[2] != "*" {
			return schedule{}, fmt.Errorf("%q: a day of month and a weekday occurrence do not combine", s.Schedule)
		}
		fields[4], sc.nth = day, n
	}
	cs, err := cron.ParseStandard(strings.Join(fields, " "))
	if err != nil {
		return schedule{}, fmt.Errorf("%q: %v", s.Schedule, err)
	}
	sc.cron = cs
	return sc, nil
}

// Window is a validated maintenance window.
type Window struct {
	Name string
	spec *WindowSpec
	sch  schedule
	loc  *time.Location
}

// NewWindow prepares a window for decisions.
func NewWindow(name string, s *WindowSpec) (*Window, error) {
	sc, err := s.schedule()
	if err != nil {
		return nil, fmt.Errorf("MaintenanceWindow/%s: %w", name, err)
	}
	loc, err := time.LoadLocation(s.TimeZone)
	if err != nil {
		return nil, fmt.Errorf("MaintenanceWindow/%s: %w", name, err)
	}
	return &Window{Name: name, spec: s, sch: sc, loc: loc}, nil
}

func (w *Window) blackedOut(t time.Time) bool {
	day := t.In(w.loc).Format(time.DateOnly)
	return slices.ContainsFunc(w.spec.Blackouts, func(d policy.Date) bool { return d.String() == day })
}

// Next returns the first opening of the window at or after t (not on a
// blackout day): its start and end.
func (w *Window) Next(t time.Time) (start, end time.Time, ok bool) {
	at := t.In(w.loc).Add(-time.Second)
	for range 5000 { // ~a century of monthly windows
		at = w.sch.cron.Next(at)
		if at.IsZero() {
			return time.Time{}, time.Time{}, false
		}
		if w.sch.nth != 0 && (at.Day()-1)/7+1 != w.sch.nth {
			continue
		}
		if w.blackedOut(at) {
			continue
		}
		return at, at.Add(time.Duration(w.spec.Duration)), true
	}
	return time.Time{}, time.Time{}, false
}

// OpenAt returns the opening of the window that t falls in, if any.
func (w *Window) OpenAt(t time.Time) (start, end time.Time, ok bool) {
	start, end, ok = w.Next(t.Add(-time.Duration(w.spec.Duration)))
	if ok && !start.After(t) && t.Before(end) {
		return start, end, true
	}
	return time.Time{}, time.Time{}, false
}

// Allows says whether a job of length d may start at t: the window is open
// and stays open until the job is done.
func (w *Window) Allows(t time.Time, d time.Duration) bool {
	_, end, ok := w.OpenAt(t)
	return ok && !t.Add(d).After(end)
}

// ApprovalMode is whether an approval rule approves patches on its own.
type ApprovalMode string

// Approval modes.
const (
	// ApproveAutomatic approves on its own.
	ApproveAutomatic ApprovalMode = "automatic"
	// ApproveManual takes the approvals of distinct people.
	ApproveManual ApprovalMode = "manual"
)

// ApprovalRuleSpec approves patches on their own, or says how many people
// must: patches of the given cycles, types and priorities, released at
// least MinAge ago, on hosts of HostGroups (all hosts when empty), except
// packages matching Exclude.
type ApprovalRuleSpec struct {
	Description string            `yaml:"description,omitempty" json:"description,omitempty"`
	Cycles      []patch.Cycle     `yaml:"cycles,omitempty" json:"cycles,omitempty"`
	Types       []patch.Type      `yaml:"types,omitempty" json:"types,omitempty"`
	Priorities  []risk.Priority   `yaml:"priorities,omitempty" json:"priorities,omitempty"`
	MinAge      duration.Duration `yaml:"minAge,omitempty" json:"minAge,omitempty"`
	HostGroups  []string          `yaml:"hostGroups,omitempty" json:"hostGroups,omitempty"`
	Exclude     []string          `yaml:"exclude,omitempty" json:"exclude,omitempty"`
	// Approve is automatic or manual; Approvers is how many distinct people
	// a manual approval takes (1 by default).
	Approve   ApprovalMode `yaml:"approve" json:"approve" policy:"required"`
	Approvers int          `yaml:"approvers,omitempty" json:"approvers,omitempty"`
}

// Check validates the rule.
func (s *ApprovalRuleSpec) Check(c *policy.Checker) {
	for i, cy := range s.Cycles {
		if !cy.Valid() {
			c.Errorf(fmt.Sprintf("spec.cycles[%d]", i), "%q: want system or application", cy)
		}
	}
	for i, t := range s.Types {
		if !slices.Contains(patch.Types, t) {
			c.Errorf(fmt.Sprintf("spec.types[%d]", i), "%q: want one of %s", t, patch.TypeNames())
		}
	}
	for i, p := range s.Exclude {
		if _, err := path.Match(p, ""); err != nil || p == "" {
			c.Errorf(fmt.Sprintf("spec.exclude[%d]", i), "%q: not a glob pattern", p)
		}
	}
	switch s.Approve {
	case ApproveAutomatic:
		if s.Approvers != 0 {
			c.Errorf("spec.approvers", "%d: an automatic approval takes no approvers", s.Approvers)
		}
	case ApproveManual:
		if s.Approvers < 0 || s.Approvers > 5 {
			c.Errorf("spec.approvers", "%d: want 1 to 5 distinct approvers", s.Approvers)
		}
	default:
		c.Errorf("spec.approve", "%q: want automatic or manual", s.Approve)
	}
}

// References are the rule's host groups.
func (s *ApprovalRuleSpec) References() []policy.Reference {
	return hostGroupRefs(s.HostGroups, "spec.hostGroups")
}

// Candidate is a patch for a host, as approval rules see it.
type Candidate struct {
	Package    string
	Cycle      patch.Cycle
	Types      []patch.Type
	Priority   risk.Priority
	ReleasedAt time.Time
	// HostGroups are the host's groups.
	HostGroups []string
}

// Matches says whether the rule covers the candidate at now.
func (s *ApprovalRuleSpec) Matches(c Candidate, now time.Time) bool {
	if len(s.Cycles) > 0 && !slices.Contains(s.Cycles, c.Cycle) {
		return false
	}
	if len(s.Types) > 0 && !slices.ContainsFunc(c.Types, func(t patch.Type) bool { return slices.Contains(s.Types, t) }) {
		return false
	}
	if len(s.Priorities) > 0 && !slices.Contains(s.Priorities, c.Priority) {
		return false
	}
	if s.MinAge > 0 && (c.ReleasedAt.IsZero() || now.Sub(c.ReleasedAt) < time.Duration(s.MinAge)) {
		return false
	}
	if len(s.HostGroups) > 0 && !slices.ContainsFunc(c.HostGroups, func(g string) bool { return slices.Contains(s.HostGroups, g) }) {
		return false
	}
	for _, p := range s.Exclude {
		if m, _ := path.Match(p, c.Package); m {
			return false
		}
	}
	return true
}

// RequiredApprovers is how many distinct people the rule needs: 0 when it
// approves on its own.
func (s *ApprovalRuleSpec) RequiredApprovers() int {
	if s.Approve == ApproveAutomatic {
		return 0
	}
	return max(s.Approvers, 1)
}

// Amount is a count ("5") or a share of the whole ("20%").
type Amount struct {
	N       int
	Percent bool
}

// ParseAmount parses an Amount.
func ParseAmount(s string) (Amount, error) {
	v, pct := strings.CutSuffix(strings.TrimSpace(s), "%")
	n, err := strconv.Atoi(v)
	switch {
	case err != nil || n < 0:
		return Amount{}, fmt.Errorf("%q: want a count (5) or a percentage (20%%)", s)
	case pct && n > 100:
		return Amount{}, fmt.Errorf("%q: want a percentage up to 100%%", s)
	}
	return Amount{N: n, Percent: pct}, nil
}

// Of is the amount of a whole of n: a percentage rounds up, so that a
// non-zero share of a non-empty whole is never zero.
func (a Amount) Of(n int) int {
	if !a.Percent {
		return min(a.N, n)
	}
	return (a.N*n + 99) / 100
}

func (a Amount) String() string {
	if a.Percent {
		return strconv.Itoa(a.N) + "%"
	}
	return strconv.Itoa(a.N)
}

// IsZero reports an absent amount.
func (a Amount) IsZero() bool { return a == Amount{} }

// MarshalText renders "5" or "20%".
func (a Amount) MarshalText() ([]byte, error) { return []byte(a.String()), nil }

// UnmarshalText parses an Amount.
func (a *Amount) UnmarshalText(b []byte) error {
	v, err := ParseAmount(string(b))
	if err != nil {
		return err
	}
	*a = v
	return nil
}

// Promotion is how a rollout strategy moves on to the next ring.
type Promotion string

// Promotions.
const (
	// PromoteAutomatic promotes once the ring's bake time has passed.
	PromoteAutomatic Promotion = "automatic"
	// PromoteManual waits for someone to promote the rollout.
	PromoteManual Promotion = "manual"
)

// Valid says whether p is one of the promotions.
func (p Promotion) Valid() bool { return p == PromoteAutomatic || p == PromoteManual }

// StrategySpec is how a rollout goes: rings in order (a host group, or a
// share of the target), how many hosts at a time and how many failures
// halt it, the bake time between rings, health checks, reboots and
// promotion.
type StrategySpec struct {
	Description string `yaml:"description,omitempty" json:"description,omitempty"`
	Rings       []Ring `yaml:"rings" json:"rings" policy:"required"`
	// Reboot is never, if-required or always (always inside the window).
	Reboot job.Reboot `yaml:"reboot" json:"reboot" policy:"required"`
	// Promote is automatic (after the bake time) or manual.
	Promote Promotion `yaml:"promote" json:"promote" policy:"required"`
	// RestartServices restarts services still using replaced libraries.
	RestartServices bool `yaml:"restartServices,omitempty" json:"restartServices,omitempty"`
	// JobTimeout: a host that does not report within it has failed.
	JobTimeout duration.Duration `yaml:"jobTimeout,omitempty" json:"jobTimeout,omitempty"`
	// RollbackOnHalt: when the rollout halts, the hosts it patched
	// (succeeded) get a job that puts them back at their previous
	// versions.
	RollbackOnHalt bool `yaml:"rollbackOnHalt,omitempty" json:"rollbackOnHalt,omitempty"`
	// Gates are the monitoring's checks the server makes of each ring
	// (gates.go).
	Gates *Gates `yaml:"gates,omitempty" json:"gates,omitempty"`
}

// Ring is one stage of a rollout.
type Ring struct {
	Name string `yaml:"name" json:"name" policy:"required"`
	// HostGroup or Share (of the target's remaining hosts) picks the ring.
	HostGroup      string            `yaml:"hostGroup,omitempty" json:"hostGroup,omitempty"`
	Share          Amount            `yaml:"share,omitempty" json:"share,omitzero"`
	MaxConcurrency Amount            `yaml:"maxConcurrency" json:"maxConcurrency" policy:"required"`
	ErrorThreshold Amount            `yaml:"errorThreshold" json:"errorThreshold" policy:"required"`
	Bake           duration.Duration `yaml:"bake,omitempty" json:"bake,omitempty"`
	HealthChecks   []job.HealthCheck `yaml:"healthChecks,omitempty" json:"healthChecks,omitempty"`
}

// Check validates the strategy.
func (s *StrategySpec) Check(c *policy.Checker) {
	if len(s.Rings) == 0 {
		c.Errorf("spec.rings", "empty: a rollout has at least one ring")
	}
	names := map[string]bool{}
	for i, r := range s.Rings {
		at := fmt.Sprintf("spec.rings[%d]", i)
		if names[r.Name] {
			c.Errorf(at+".name", "%q: given twice", r.Name)
		}
		names[r.Name] = true
		switch {
		case r.HostGroup != "" && !r.Share.IsZero():
			c.Errorf(at, "both hostGroup and share: a ring is one or the other")
		case r.HostGroup == "" && r.Share.IsZero():
			c.Errorf(at, "neither hostGroup nor share: say which hosts the ring takes")
		case !r.Share.IsZero() && !r.Share.Percent:
			c.Errorf(at+".share", "%s: want a percentage of the target (25%%)", r.Share)
		}
		if r.MaxConcurrency.N == 0 {
			c.Errorf(at+".maxConcurrency", "0: at least one host at a time")
		}
		for j, h := range r.HealthChecks {
			hp := fmt.Sprintf("%s.healthChecks[%d]", at, j)
			n := 0
			for _, set := range []bool{h.HTTP != "", h.TCP != "", h.Systemd != "", len(h.Command) > 0} {
				if set {
					n++
				}
			}
			if n != 1 {
				c.Errorf(hp, "want exactly one of http, tcp, systemd, command")
			}
			if h.HTTP != "" && !strings.HasPrefix(h.HTTP, "http://") && !strings.HasPrefix(h.HTTP, "https://") {
				c.Errorf(hp+".http", "%q: want an http or https URL", h.HTTP)
			}
			if h.Status != 0 && (h.Status < 100 || h.Status > 599 || h.HTTP == "") {
				c.Errorf(hp+".status", "%d: an HTTP status (100–599) of an http check", h.Status)
			}
			if h.TCP != "" {
				if _, port, ok := strings.Cut(h.TCP, ":"); !ok || port == "" {
					c.Errorf(hp+".tcp", "%q: want host:port", h.TCP)
				}
			}
		}
	}
	if !s.Reboot.Valid() {
		c.Errorf("spec.reboot", "%q: want never, if-required or always", s.Reboot)
	}
	if !s.Promote.Valid() {
		c.Errorf("spec.promote", "%q: want automatic or manual", s.Promote)
	}
	if s.Gates != nil {
		s.Gates.check(c)
	}
}

// References are the rings' host groups.
func (s *StrategySpec) References() []policy.Reference {
	var refs []policy.Reference
	for i, r := range s.Rings {
		if r.HostGroup != "" {
			refs = append(refs, policy.Reference{Kind: policy.KindHostGroup, Name: r.HostGroup, Path: fmt.Sprintf("spec.rings[%d].hostGroup", i)})
		}
	}
	return refs
}

// Split assigns the target's hosts to the rings, in order: a host group
// ring takes the remaining hosts of its group, a share ring that share of
// what remains of the target (rounded up); hosts no ring takes go to the
// last ring. groupsOf says which host groups a host is in. Hosts keep the
// target's order inside a ring.
func (s *StrategySpec) Split(target []string, groupsOf func(host string) []string) [][]string {
	rings := make([][]string, len(s.Rings))
	left := slices.Clone(target)
	for i, r := range s.Rings {
		var take, keep []string
		if r.HostGroup != "" {
			for _, h := range left {
				if slices.Contains(groupsOf(h), r.HostGroup) {
					take = append(take, h)
				} else {
					keep = append(keep, h)
				}
			}
		} else {
			n := r.Share.Of(len(left))
			take, keep = left[:n], left[n:]
		}
		rings[i], left = take, keep
	}
	if len(rings) > 0 {
		rings[len(rings)-1] = append(rings[len(rings)-1], left...)
	}
	return rings
}
