package rollout

import (
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"slices"
	"time"

	"github.com/patchbay/patchbay/fleet"
	"github.com/patchbay/patchbay/inventory"
	"github.com/patchbay/patchbay/job"
	"github.com/patchbay/patchbay/match"
	"github.com/patchbay/patchbay/patch"
	"github.com/patchbay/patchbay/policy"
	"github.com/patchbay/patchbay/risk"
)

// KindPatchPlan is the document a plan can be created from. It is not
// policy: `patchbay plan create -f` reads it, `apply` refuses it.
const KindPatchPlan = "PatchPlan"

// Selector says which available updates a plan takes: those of the given
// priorities (the update closes an open finding of one of them), cycles,
// patch types, services, host groups, hosts and packages (glob patterns on
// the binary or source package). Empty lists do not filter.
type Selector struct {
	Priorities []risk.Priority `yaml:"priorities,omitempty" json:"priorities,omitempty"`
	Cycles     []patch.Cycle   `yaml:"cycles,omitempty" json:"cycles,omitempty"`
	Types      []patch.Type    `yaml:"types,omitempty" json:"types,omitempty"`
	Services   []string        `yaml:"services,omitempty" json:"services,omitempty"`
	HostGroups []string        `yaml:"hostGroups,omitempty" json:"hostGroups,omitempty"`
	Hosts      []string        `yaml:"hosts,omitempty" json:"hosts,omitempty"`
	Packages   []string        `yaml:"packages,omitempty" json:"packages,omitempty"`
}

// PlanSpec is a PatchPlan: what to patch and with which strategy. An
// emergency plan takes only updates that close findings the policy sent
// to the emergency lane; it may run outside maintenance windows after one
// approval.
type PlanSpec struct {
	Description string   `yaml:"description,omitempty" json:"description,omitempty"`
	Selector    Selector `yaml:"selector" json:"selector"`
	Strategy    string   `yaml:"strategy" json:"strategy" policy:"required"`
	Emergency   bool     `yaml:"emergency,omitempty" json:"emergency,omitempty"`
}

// Check validates the plan document.
func (s *PlanSpec) Check(c *policy.Checker) { s.Selector.check(c, "spec.selector") }

// References: the strategy, services and host groups.
func (s *PlanSpec) References() []policy.Reference {
	refs := []policy.Reference{{Kind: KindRolloutStrategy, Name: s.Strategy, Path: "spec.strategy"}}
	refs = append(refs, hostGroupRefs(s.Selector.HostGroups, "spec.selector.hostGroups")...)
	for i, sv := range s.Selector.Services {
		refs = append(refs, policy.Reference{Kind: policy.KindService, Name: sv, Path: fmt.Sprintf("spec.selector.services[%d]", i)})
	}
	return refs
}

// Validate checks a selector given outside a document (the API).
func (s Selector) Validate() error {
	var errs []error
	s.each(func(path, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{path}, args...)...))
	}, "selector")
	return errors.Join(errs...)
}

func (s Selector) check(c *policy.Checker, at string) { s.each(c.Errorf, at) }

func (s Selector) each(errorf func(path, format string, args ...any), at string) {
	for i, cy := range s.Cycles {
		if !cy.Valid() {
			errorf(fmt.Sprintf("%s.cycles[%d]", at, i), "%q: want system or application", cy)
		}
	}
	for i, t := range s.Types {
		if !slices.Contains(patch.Types, t) {
			errorf(fmt.Sprintf("%s.types[%d]", at, i), "%q: want one of %s", t, patch.TypeNames())
		}
	}
	for i, p := range s.Packages {
		if _, err := path.Match(p, ""); err != nil || p == "" {
			errorf(fmt.Sprintf("%s.packages[%d]", at, i), "%q: not a glob pattern", p)
		}
	}
}

// PlanState is where a plan is in its approval.
type PlanState string

// Plan states. A started plan is a rollout: its Machine says the rest.
const (
	AwaitingApproval PlanState = "awaiting_approval"
	Approved         PlanState = "approved"
	Rejected         PlanState = "rejected"
	Started          PlanState = "started"
)

// Approval is one person's approval or rejection.
type Approval struct {
	By      string    `json:"by"`
	At      time.Time `json:"at"`
	Comment string    `json:"comment,omitempty"`
}

// Target is one package a host brings to an exact version.
type Target struct {
	Name      string       `json:"name"`
	Source    string       `json:"source,omitempty"`
	From      string       `json:"from"`
	To        string       `json:"to"`
	Types     []patch.Type `json:"types"`
	Pocket    string       `json:"pocket,omitempty"`
	Approval  string       `json:"approval"` // the approval rule that decided, or DefaultRule
	Approvers int          `json:"approvers"`
}

// Closing is a finding a host's job closes.
type Closing struct {
	ID            int64         `json:"id"`
	Vulnerability string        `json:"vulnerability"`
	Package       string        `json:"package"`
	Priority      risk.Priority `json:"priority"`
	Emergency     bool          `json:"emergency,omitempty"`
}

// PlanHost is one host of a plan.
type PlanHost struct {
	ID       string    `json:"id"`
	Hostname string    `json:"hostname"`
	Ring     int       `json:"ring"`
	Targets  []Target  `json:"targets"`
	Closes   []Closing `json:"closes"`
	// Window is the maintenance window the host runs in ("" when none
	// covers it: any time), with its next opening at planning time.
	Window      string    `json:"window,omitempty"`
	WindowStart time.Time `json:"window_start,omitzero"`
	WindowEnd   time.Time `json:"window_end,omitzero"`
}

// RingPreview is what one ring will do.
type RingPreview struct {
	Name  string `json:"name"`
	Hosts int    `json:"hosts"`
	// Windows are the windows its hosts run in, with their next opening
	// ("any time" hosts under the name "").
	Windows []WindowPreview `json:"windows"`
	// Closes counts the findings the ring closes, by priority: the risk
	// it removes.
	Closes   map[string]int `json:"closes"`
	Packages int            `json:"packages"` // host × package installs
}

// WindowPreview is a window's next opening and how many hosts of a ring
// run in it.
type WindowPreview struct {
	Name  string    `json:"name"`
	Start time.Time `json:"start,omitzero"`
	End   time.Time `json:"end,omitzero"`
	Hosts int       `json:"hosts"`
}

// Plan is a resolved patch plan: which hosts get which packages at which
// exact versions, in which ring, and who approved it.
type Plan struct {
	ID          string        `json:"id"`
	Description string        `json:"description,omitempty"`
	Selector    Selector      `json:"selector"`
	Strategy    string        `json:"strategy"`
	Emergency   bool          `json:"emergency,omitempty"`
	State       PlanState     `json:"state"`
	Required    int           `json:"required_approvers"`
	AutoRules   []string      `json:"auto_approved_by,omitempty"`
	Approvals   []Approval    `json:"approvals"`
	Rejection   *Approval     `json:"rejection,omitempty"`
	CreatedBy   string        `json:"created_by"`
	CreatedAt   time.Time     `json:"created_at"`
	Rings       []RingPreview `json:"rings"`
	Hosts       []PlanHost    `json:"hosts,omitempty"`
	// StrategySpec is the strategy as it was when the rollout started.
	StrategySpec *StrategySpec `json:"strategy_spec,omitempty"`
	StartedAt    time.Time     `json:"started_at,omitzero"`
	StartedBy    string        `json:"started_by,omitempty"`
	// Skipped counts what the selector took but the plan cannot patch:
	// held packages, application findings (patched by the service's own
	// build), findings with no update available yet.
	Skipped map[string]int `json:"skipped,omitempty"`
	// Schedule is the PatchSchedule that made the plan, Opening the
	// window opening it was made at ("" for an emergency plan).
	Schedule string `json:"schedule,omitempty"`
	Opening  string `json:"opening,omitempty"`
}

// HostStatus is one host's job in a rollout.
type HostStatus struct {
	PlanHost
	Attempt    int             `json:"attempt"`
	Started    time.Time       `json:"started,omitzero"`
	Outcome    job.Outcome     `json:"outcome,omitempty"`
	Result     json.RawMessage `json:"result,omitempty"`
	ReportedAt time.Time       `json:"reported_at,omitzero"`
}

// Errors of approvals.
var (
	ErrNotAwaiting = errors.New("the plan is not awaiting approval")
	ErrSameActor   = errors.New("already approved by this actor")
)

// Approve records an approval; the plan is approved once Required
// distinct people have approved it.
func (p *Plan) Approve(a Approval) error {
	if p.State != AwaitingApproval {
		return fmt.Errorf("%w (it is %s)", ErrNotAwaiting, p.State)
	}
	if slices.ContainsFunc(p.Approvals, func(x Approval) bool { return x.By == a.By }) {
		return fmt.Errorf("%w: %s approved plan %s already; the next approval must come from someone else", ErrSameActor, a.By, p.ID)
	}
	p.Approvals = append(p.Approvals, a)
	if len(p.Approvals) >= p.Required {
		p.State = Approved
	}
	return nil
}

// Reject ends the plan.
func (p *Plan) Reject(a Approval) error {
	if p.State != AwaitingApproval && p.State != Approved {
		return fmt.Errorf("reject: the plan is %s", p.State)
	}
	p.State, p.Rejection = Rejected, &a
	return nil
}

// Policy is what plans are resolved with: the applied documents of the
// rollout kinds, prepared.
type Policy struct {
	Strategies map[string]*StrategySpec
	Rules      []NamedRule
	Windows    []NamedWindow
}

// NamedRule is an approval rule with its name.
type NamedRule struct {
	Name string
	Spec *ApprovalRuleSpec
}

// NamedWindow is a window with the host groups it covers.
type NamedWindow struct {
	*Window
	HostGroups []string
}

// PolicyOf prepares the rollout documents of an applied policy.
func PolicyOf(set *policy.Set) (*Policy, error) {
	p := &Policy{Strategies: map[string]*StrategySpec{}}
	for _, d := range set.Documents() {
		switch s := d.Spec.(type) {
		case *StrategySpec:
			p.Strategies[d.Metadata.Name] = s
		case *ApprovalRuleSpec:
			p.Rules = append(p.Rules, NamedRule{d.Metadata.Name, s})
		case *WindowSpec:
			w, err := NewWindow(d.Metadata.Name, s)
			if err != nil {
				return nil, err
			}
			p.Windows = append(p.Windows, NamedWindow{w, s.HostGroups})
		}
	}
	return p, nil
}

// WindowsOf are the windows that cover a host of these groups.
func (p *Policy) WindowsOf(groups []string) []NamedWindow {
	var out []NamedWindow
	for _, w := range p.Windows {
		if slices.ContainsFunc(w.HostGroups, func(g string) bool { return slices.Contains(groups, g) }) {
			out = append(out, w)
		}
	}
	return out
}

// Opening is when a host of these groups may start a job of length d at
// or after t: the earliest allowing window's next opening (zero times and
// "" when no window covers it: any time). ok is false when windows cover
// the host but none opens.
func (p *Policy) Opening(groups []string, t time.Time, d time.Duration) (name string, start, end time.Time, ok bool) {
	ws := p.WindowsOf(groups)
	if len(ws) == 0 {
		return "", time.Time{}, time.Time{}, true
	}
	for _, w := range ws {
		if s, e, open := w.OpenAt(t); open && !t.Add(d).After(e) {
			if !ok || s.Before(start) {
				name, start, end, ok = w.Name, s, e, true
			}
			continue
		}
		if s, e, next := w.Next(t); next {
			if !ok || s.Before(start) {
				name, start, end, ok = w.Name, s, e, true
			}
		}
	}
	return name, start, end, ok
}

// DefaultRule is the approval of an update no approval rule matches: one
// person approves it.
const DefaultRule = "default"

// Approval decides how an update on a host is approved: automatically
// when every matching rule approves automatically (and one matches),
// else by as many people as the strictest matching manual rule asks (one
// when no rule matches).
func (p *Policy) Approval(c Candidate, now time.Time) (rule string, approvers int) {
	rule, approvers = DefaultRule, 1
	auto := ""
	for _, r := range p.Rules {
		if !r.Spec.Matches(c, now) {
			continue
		}
		n := r.Spec.RequiredApprovers()
		if n == 0 {
			if auto == "" {
				auto = r.Name
			}
			continue
		}
		if rule == DefaultRule || n > approvers {
			rule, approvers = r.Name, n
		}
	}
	if rule == DefaultRule && auto != "" {
		return auto, 0
	}
	return rule, approvers
}

// HostInput is what the planner knows of one host.
type HostInput struct {
	ID       string
	Hostname string
	Groups   []string
	Services []string
	Updates  []patch.Update
	Open     []fleet.Finding
	// Released says when an update (name, version) was first seen in the
	// fleet: its release age for approval rules.
	Released func(name, version string) time.Time
}

// Planner resolves plans.
type Planner struct {
	Policy *Policy
	Now    time.Time
}

// ErrEmpty is a plan that patches nothing.
var ErrEmpty = errors.New("the plan patches nothing")

// Resolve makes the plan of a spec over the hosts (a plan that patches
// nothing comes back with ErrEmpty, for what it skipped): per host the updates
// the selector takes at their exact candidate versions and the findings
// they close; the rings of the strategy with their windows; the approvals
// the plan needs.
func (pl *Planner) Resolve(id string, spec PlanSpec, hosts []HostInput) (*Plan, error) {
	strat, ok := pl.Policy.Strategies[spec.Strategy]
	if !ok {
		return nil, fmt.Errorf("strategy %q: no such RolloutStrategy", spec.Strategy)
	}
	sel := spec.Selector
	p := &Plan{ID: id, Description: spec.Description, Selector: sel, Strategy: spec.Strategy, Emergency: spec.Emergency,
		State: AwaitingApproval, Approvals: []Approval{}, Skipped: map[string]int{}}
	autoRules := map[string]bool{}
	groupsOf := map[string][]string{}
	var order []string
	for _, h := range hosts {
		if !sel.TakesHost(h) {
			continue
		}
		ph := PlanHost{ID: h.ID, Hostname: h.Hostname}
		for _, f := range h.Open {
			if f.Cycle == patch.CycleApplication && (len(sel.Cycles) == 0 || slices.Contains(sel.Cycles, patch.CycleApplication)) && wants(sel, spec.Emergency, f) {
				p.Skipped["application findings (patched by their service's build)"]++
			}
		}
		closed := map[int64]bool{}
		for _, u := range h.Updates {
			if u.Cycle == patch.CycleApplication || (len(sel.Cycles) > 0 && !slices.Contains(sel.Cycles, u.Cycle)) {
				continue
			}
			if len(sel.Types) > 0 && !slices.ContainsFunc(u.Types, func(t patch.Type) bool { return slices.Contains(sel.Types, t) }) {
				continue
			}
			if len(sel.Packages) > 0 && !slices.ContainsFunc(sel.Packages, func(g string) bool { return globMatch(g, u.Name) || globMatch(g, u.SourceOf()) }) {
				continue
			}
			var closes []Closing
			best := risk.Priority(0)
			for _, f := range h.Open {
				if f.Package != u.SourceOf() || f.Cycle == patch.CycleApplication || !fixedBy(f, u) {
					continue
				}
				if !wants(sel, spec.Emergency, f) {
					continue
				}
				closes = append(closes, Closing{ID: f.ID, Vulnerability: f.Vulnerability, Package: f.Package, Priority: f.Priority, Emergency: f.Lane == fleet.LaneEmergency})
				if f.Priority != 0 && (best == 0 || f.Priority < best) {
					best = f.Priority
				}
			}
			if (len(sel.Priorities) > 0 || spec.Emergency) && len(closes) == 0 {
				continue
			}
			if u.Held {
				p.Skipped["held packages"]++
				continue
			}
			var released time.Time
			if h.Released != nil {
				released = h.Released(u.Name, u.Candidate)
			}
			rule, n := pl.Policy.Approval(Candidate{Package: u.Name, Cycle: u.Cycle, Types: u.Types, Priority: best, ReleasedAt: released, HostGroups: h.Groups}, pl.Now)
			if n == 0 {
				autoRules[rule] = true
			}
			p.Required = max(p.Required, n)
			ph.Targets = append(ph.Targets, Target{Name: u.Name, Source: u.SourceName, From: u.Installed, To: u.Candidate, Types: u.Types, Pocket: u.Pocket, Approval: rule, Approvers: n})
			for _, c := range closes {
				if !closed[c.ID] {
					closed[c.ID] = true
					ph.Closes = append(ph.Closes, c)
				}
			}
		}
		if len(ph.Targets) == 0 {
			continue
		}
		p.Hosts = append(p.Hosts, ph)
		groupsOf[h.ID] = h.Groups
		order = append(order, h.ID)
	}
	if len(p.Hosts) == 0 {
		// The plan comes back for what it skipped.
		return p, fmt.Errorf("%w: no host has an update the selector takes", ErrEmpty)
	}
	if spec.Emergency && p.Required > 1 {
		p.Required = 1 // the emergency lane: one approval
	}
	if p.Required == 0 {
		p.State = Approved
		for r := range autoRules {
			p.AutoRules = append(p.AutoRules, r)
		}
		slices.Sort(p.AutoRules)
	}
	// Rings, and each host's window.
	ringOf := map[string]int{}
	for i, ids := range strat.Split(order, func(h string) []string { return groupsOf[h] }) {
		for _, id := range ids {
			ringOf[id] = i
		}
	}
	p.Rings = make([]RingPreview, len(strat.Rings))
	for i, r := range strat.Rings {
		p.Rings[i] = RingPreview{Name: r.Name, Closes: map[string]int{}, Windows: []WindowPreview{}}
	}
	jt := strat.Timeout()
	for i := range p.Hosts {
		h := &p.Hosts[i]
		h.Ring = ringOf[h.ID]
		rp := &p.Rings[h.Ring]
		rp.Hosts++
		rp.Packages += len(h.Targets)
		for _, c := range h.Closes {
			rp.Closes[c.Priority.String()]++
		}
		if spec.Emergency {
			continue
		}
		name, start, end, ok := pl.Policy.Opening(groupsOf[h.ID], pl.Now, jt)
		if !ok {
			return nil, fmt.Errorf("host %s (%s): its maintenance windows never open for a job of %s", h.Hostname, h.ID, jt)
		}
		h.Window, h.WindowStart, h.WindowEnd = name, start, end
		at := slices.IndexFunc(rp.Windows, func(w WindowPreview) bool { return w.Name == name && w.Start.Equal(start) })
		if at < 0 {
			rp.Windows = append(rp.Windows, WindowPreview{Name: name, Start: start, End: end})
			at = len(rp.Windows) - 1
		}
		rp.Windows[at].Hosts++
	}
	return p, nil
}

// wants says whether the selector's priorities (and the emergency lane)
// take a finding.
func wants(sel Selector, emergency bool, f fleet.Finding) bool {
	if emergency && f.Lane != fleet.LaneEmergency {
		return false
	}
	if len(sel.Priorities) == 0 {
		return true
	}
	return slices.Contains(sel.Priorities, f.Priority)
}

// fixedBy says whether the update's candidate reaches the finding's fixed
// version (an unknown fixed version is taken as fixed by the update that
// the security pocket offers).
func fixedBy(f fleet.Finding, u patch.Update) bool {
	if f.Fixed == "" {
		return u.Pocket == "security"
	}
	c, err := match.Compare(inventory.BaseEcosystem(f.Ecosystem), f.Fixed, u.Candidate)
	return err == nil && c <= 0
}

// TakesHost says whether the selector's hosts, host groups and services
// take a host.
func (s Selector) TakesHost(h HostInput) bool {
	return (len(s.Hosts) == 0 || slices.Contains(s.Hosts, h.ID) || slices.Contains(s.Hosts, h.Hostname)) &&
		selects(s.HostGroups, h.Groups) && selects(s.Services, h.Services)
}

func selects(want, have []string) bool {
	return len(want) == 0 || slices.ContainsFunc(have, func(x string) bool { return slices.Contains(want, x) })
}

func globMatch(pattern, s string) bool {
	m, _ := path.Match(pattern, s)
	return m
}

// DefaultJobTimeout is a strategy's job timeout when it names none.
const DefaultJobTimeout = time.Hour

// Timeout is the strategy's job timeout.
func (s *StrategySpec) Timeout() time.Duration {
	if s.JobTimeout > 0 {
		return time.Duration(s.JobTimeout)
	}
	return DefaultJobTimeout
}
