package rollout

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"path"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/patchbay/patchbay/duration"
	"github.com/patchbay/patchbay/patch"
	"github.com/patchbay/patchbay/policy"
)

// KindPatchSchedule is the standing schedule the leader plans, approves
// and rolls out by itself at every opening of its windows.
const KindPatchSchedule = "PatchSchedule"

// ScheduleSpec is a PatchSchedule: at each opening of its windows (or of
// each host's own windows when Windows is empty) the leader plans what
// the selector takes less the exclusions and the release-age gate, has
// the approval rules decide, and starts the rollout under Strategy. With
// Emergency, new patches of findings the policy sends to the emergency
// lane (KEV, P1 internet-facing) are planned at once, outside windows.
type ScheduleSpec struct {
	Description string     `yaml:"description,omitempty" json:"description,omitempty"`
	Selector    Selector   `yaml:"selector" json:"selector"`
	Exclude     Exclusions `yaml:"exclude,omitempty" json:"exclude,omitzero"`
	Strategy    string     `yaml:"strategy" json:"strategy" policy:"required"`
	// Windows are MaintenanceWindow names; empty: every window, each
	// host running in the windows that cover it.
	Windows []string `yaml:"windows,omitempty" json:"windows,omitempty"`
	// MinAge is the release-age gate per patch type: an update is taken
	// once it has been seen in the fleet that long (an update of several
	// types waits for the shortest of their gates; a type not named has
	// none).
	MinAge map[string]duration.Duration `yaml:"minAge,omitempty" json:"minAge,omitempty"`
	// KEVBypassesMinAge takes an update that closes a finding in CISA's
	// KEV catalogue at once, whatever its age (audited).
	KEVBypassesMinAge bool `yaml:"kevBypassesMinAge,omitempty" json:"kevBypassesMinAge,omitempty"`
	// Emergency plans new emergency-lane patches at once.
	Emergency bool `yaml:"emergency,omitempty" json:"emergency,omitempty"`
}

// Exclusions are what a schedule never patches: hosts (by id or name),
// host groups, services and packages (glob patterns on the binary or
// source package).
type Exclusions struct {
	Hosts      []string `yaml:"hosts,omitempty" json:"hosts,omitempty"`
	HostGroups []string `yaml:"hostGroups,omitempty" json:"hostGroups,omitempty"`
	Services   []string `yaml:"services,omitempty" json:"services,omitempty"`
	Packages   []string `yaml:"packages,omitempty" json:"packages,omitempty"`
}

// maxMinAge bounds a release-age gate.
const maxMinAge = 365 * 24 * time.Hour

// Check validates the schedule.
func (s *ScheduleSpec) Check(c *policy.Checker) {
	s.Selector.check(c, "spec.selector")
	for i, p := range s.Exclude.Packages {
		if _, err := path.Match(p, ""); err != nil || p == "" {
			c.Errorf(fmt.Sprintf("spec.exclude.packages[%d]", i), "%q: not a glob pattern", p)
		}
	}
	seen := map[string]bool{}
	for i, w := range s.Windows {
		if seen[w] {
			c.Errorf(fmt.Sprintf("spec.windows[%d]", i), "%q: given twice", w)
		}
		seen[w] = true
	}
	types := make([]string, 0, len(s.MinAge))
	for t := range s.MinAge {
		types = append(types, t)
	}
	slices.Sort(types)
	for _, t := range types {
		d := time.Duration(s.MinAge[t])
		switch {
		case !slices.Contains(patch.Types, patch.Type(t)):
			c.Errorf("spec.minAge."+t, "%q: want one of %s", t, patch.TypeNames())
		case d < 0 || d > maxMinAge:
			c.Errorf("spec.minAge."+t, "%s: want 0d to 365d", s.MinAge[t])
		}
	}
}

// References: the strategy, the windows, the host groups and services
// of the selector and the exclusions.
func (s *ScheduleSpec) References() []policy.Reference {
	refs := []policy.Reference{{Kind: KindRolloutStrategy, Name: s.Strategy, Path: "spec.strategy"}}
	for i, w := range s.Windows {
		refs = append(refs, policy.Reference{Kind: KindMaintenanceWindow, Name: w, Path: fmt.Sprintf("spec.windows[%d]", i)})
	}
	refs = append(refs, hostGroupRefs(s.Selector.HostGroups, "spec.selector.hostGroups")...)
	refs = append(refs, hostGroupRefs(s.Exclude.HostGroups, "spec.exclude.hostGroups")...)
	for i, sv := range s.Selector.Services {
		refs = append(refs, policy.Reference{Kind: policy.KindService, Name: sv, Path: fmt.Sprintf("spec.selector.services[%d]", i)})
	}
	for i, sv := range s.Exclude.Services {
		refs = append(refs, policy.Reference{Kind: policy.KindService, Name: sv, Path: fmt.Sprintf("spec.exclude.services[%d]", i)})
	}
	return refs
}

// gate is the release age an update of these types waits for.
func (s *ScheduleSpec) gate(types []patch.Type) time.Duration {
	g, any := time.Duration(0), false
	for _, t := range types {
		d, ok := s.MinAge[string(t)]
		if !ok {
			return 0 // a type with no gate
		}
		if !any || time.Duration(d) < g {
			g, any = time.Duration(d), true
		}
	}
	return g
}

// NamedSchedule is a schedule with its name.
type NamedSchedule struct {
	Name string
	Spec *ScheduleSpec
}

// SchedulesOf are the PatchSchedule documents of an applied policy, by
// name.
func SchedulesOf(set *policy.Set) []NamedSchedule {
	var out []NamedSchedule
	for _, d := range set.Documents() {
		if s, ok := d.Spec.(*ScheduleSpec); ok {
			out = append(out, NamedSchedule{d.Metadata.Name, s})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Opening is one opening of a window a schedule runs in.
type Opening struct {
	Window string    `json:"window"`
	Start  time.Time `json:"start"`
	End    time.Time `json:"end"`
}

// Key names the opening in the store: a schedule runs once per key.
func (o Opening) Key() string { return o.Window + "@" + o.Start.UTC().Format(time.RFC3339) }

// windows are the windows the schedule runs in: those it names (that
// exist), or all of them.
func (s *ScheduleSpec) windows(p *Policy) []NamedWindow {
	if len(s.Windows) == 0 {
		return p.Windows
	}
	var out []NamedWindow
	for _, w := range p.Windows {
		if slices.Contains(s.Windows, w.Name) {
			out = append(out, w)
		}
	}
	return out
}

// Due are the openings of the schedule's windows open at now.
func (s *ScheduleSpec) Due(p *Policy, now time.Time) []Opening {
	var out []Opening
	for _, w := range s.windows(p) {
		if start, end, ok := w.OpenAt(now); ok {
			out = append(out, Opening{Window: w.Name, Start: start, End: end})
		}
	}
	return out
}

// Openings are the next n openings of the schedule's windows at or after
// t (one open at t first), in order of start.
func (s *ScheduleSpec) Openings(p *Policy, t time.Time, n int) []Opening {
	var out []Opening
	for _, w := range s.windows(p) {
		at := t
		if start, end, ok := w.OpenAt(t); ok {
			out = append(out, Opening{Window: w.Name, Start: start, End: end})
			at = end
		}
		for len(out) < n*len(p.Windows)+n {
			start, end, ok := w.Next(at)
			if !ok {
				break
			}
			out = append(out, Opening{Window: w.Name, Start: start, End: end})
			if countOf(out, w.Name) >= n {
				break
			}
			at = end
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Start.Before(out[j].Start) })
	if len(out) > n {
		out = out[:n]
	}
	return out
}

func countOf(os []Opening, window string) int {
	n := 0
	for _, o := range os {
		if o.Window == window {
			n++
		}
	}
	return n
}

// Why something a schedule selects is left out of its plan.
const (
	LeftExcludedHost    = "excluded host"
	LeftExcludedPackage = "excluded package"
	LeftAgeGate         = "age gate"
	LeftHalted          = "halted rollout"
	LeftHeld            = "held package"
	LeftNoAgent         = "no agent"
	LeftRunning         = "targeted by a running rollout or a pending plan"
	LeftUnreported      = "patched, awaiting the agent's report"
)

// AgeBypass is an update taken before its release-age gate because it
// closes a KEV finding.
type AgeBypass struct {
	Host          string `json:"host"`
	Package       string `json:"package"`
	Version       string `json:"version"`
	Vulnerability string `json:"vulnerability"`
}

// Preview is what a schedule would patch at an opening (or in the
// emergency lane): the plan, and why what it selects is left out.
type Preview struct {
	Opening   *Opening `json:"opening,omitempty"`
	Emergency bool     `json:"emergency,omitempty"`
	Hosts     int      `json:"hosts"`
	Packages  int      `json:"packages"` // host × package installs
	// Closes counts the findings closed, by priority.
	Closes map[string]int `json:"closes"`
	// LeftOut counts what is left out by reason: hosts for the host
	// reasons (excluded host, halted rollout, no agent), host × package
	// for the others.
	LeftOut  map[string]int `json:"left_out"`
	Bypassed []AgeBypass    `json:"age_gate_bypassed,omitempty"`
	// Plan is the resolved plan (nil when it would patch nothing).
	Plan *Plan `json:"-"`
}

// Autopilot plans a schedule's runs.
type Autopilot struct {
	Name   string
	Spec   *ScheduleSpec
	Policy *Policy
	Now    time.Time
	Hosts  []HostInput
	// Active says whether a host has an active agent.
	Active func(host string) bool
	// Targeted are the "package version"s running rollouts (and plans
	// not started yet) already bring each host to.
	Targeted map[string]map[string]bool
	// Halted are the hosts of this schedule's halted rollouts.
	Halted map[string]bool
	// Patched are the "package from to"s recent rollouts brought each
	// host to: an update still reported so is the agent's report not
	// made yet, not a patch to make again.
	Patched map[string]map[string]bool
}

// Plan resolves the schedule's plan at an opening (nil: the emergency
// lane). A plan that patches nothing comes back nil with its preview.
func (a *Autopilot) Plan(id string, o *Opening) (*Plan, Preview, error) {
	s := a.Spec
	pv := Preview{Opening: o, Emergency: o == nil, Closes: map[string]int{}, LeftOut: map[string]int{}}
	spec := PlanSpec{Selector: s.Selector, Strategy: s.Strategy, Emergency: o == nil}
	pol := a.Policy
	var win *NamedWindow
	if o != nil {
		spec.Description = fmt.Sprintf("PatchSchedule/%s at %s", a.Name, o.Key())
		for i := range a.Policy.Windows {
			if a.Policy.Windows[i].Name == o.Window {
				win = &a.Policy.Windows[i]
			}
		}
		if win == nil {
			return nil, pv, fmt.Errorf("schedule %s: window %q: no such MaintenanceWindow", a.Name, o.Window)
		}
		// The plan's hosts run in this opening.
		pol = &Policy{Strategies: a.Policy.Strategies, Rules: a.Policy.Rules, Windows: []NamedWindow{*win}}
	} else {
		spec.Description = fmt.Sprintf("PatchSchedule/%s, emergency lane", a.Name)
	}
	excl := Selector{Hosts: s.Exclude.Hosts, HostGroups: s.Exclude.HostGroups, Services: s.Exclude.Services}
	var hosts []HostInput
	for _, h := range a.Hosts {
		if !s.Selector.TakesHost(h) {
			continue
		}
		if win != nil && !slices.ContainsFunc(win.HostGroups, func(g string) bool { return slices.Contains(h.Groups, g) }) {
			continue // another window's host
		}
		switch {
		case len(excl.Hosts) > 0 && (slices.Contains(excl.Hosts, h.ID) || slices.Contains(excl.Hosts, h.Hostname)),
			len(excl.HostGroups) > 0 && selects(excl.HostGroups, h.Groups),
			len(excl.Services) > 0 && selects(excl.Services, h.Services):
			pv.LeftOut[LeftExcludedHost]++
			continue
		case a.Halted[h.ID]:
			pv.LeftOut[LeftHalted]++
			continue
		case a.Active != nil && !a.Active(h.ID):
			if len(h.Updates) > 0 {
				pv.LeftOut[LeftNoAgent]++
			}
			continue
		}
		in := h
		in.Updates = nil
		for _, u := range h.Updates {
			if slices.ContainsFunc(s.Exclude.Packages, func(g string) bool { return globMatch(g, u.Name) || globMatch(g, u.SourceOf()) }) {
				pv.LeftOut[LeftExcludedPackage]++
				continue
			}
			if a.Targeted[h.ID][u.Name+" "+u.Candidate] {
				pv.LeftOut[LeftRunning]++
				continue
			}
			if a.Patched[h.ID][u.Name+" "+u.Installed+" "+u.Candidate] {
				pv.LeftOut[LeftUnreported]++
				continue
			}
			if g := s.gate(u.Types); g > 0 {
				var released time.Time
				if h.Released != nil {
					released = h.Released(u.Name, u.Candidate)
				}
				if released.IsZero() || a.Now.Sub(released) < g {
					kev := ""
					if s.KEVBypassesMinAge {
						for _, f := range h.Open {
							if !f.KEVDue.IsZero() && f.Package == u.SourceOf() && fixedBy(f, u) {
								kev = f.Vulnerability
								break
							}
						}
					}
					if kev == "" {
						pv.LeftOut[LeftAgeGate]++
						continue
					}
					pv.Bypassed = append(pv.Bypassed, AgeBypass{Host: h.Hostname, Package: u.Name, Version: u.Candidate, Vulnerability: kev})
				}
			}
			in.Updates = append(in.Updates, u)
		}
		hosts = append(hosts, in)
	}
	pl := &Planner{Policy: pol, Now: a.Now}
	p, err := pl.Resolve(id, spec, hosts)
	if err != nil && !errors.Is(err, ErrEmpty) {
		return nil, pv, fmt.Errorf("schedule %s: %w", a.Name, err)
	}
	if p != nil {
		if n := p.Skipped["held packages"]; n > 0 {
			pv.LeftOut[LeftHeld] += n
		}
	}
	if err != nil {
		p = nil
	}
	if p != nil {
		p.Schedule = a.Name
		if o != nil {
			p.Opening = o.Key()
		}
		for _, r := range p.Rings {
			pv.Hosts += r.Hosts
			pv.Packages += r.Packages
			for pr, n := range r.Closes {
				pv.Closes[pr] += n
			}
		}
	}
	pv.Plan = p
	return p, pv, nil
}

// EmergencyKey names an emergency plan in the store by what it patches:
// the same updates of the same hosts are planned once.
func EmergencyKey(p *Plan) string {
	var parts []string
	for _, h := range p.Hosts {
		for _, t := range h.Targets {
			parts = append(parts, h.ID+" "+t.Name+" "+t.To)
		}
	}
	slices.Sort(parts)
	sum := sha256.Sum256([]byte(strings.Join(parts, "\n")))
	return "emergency:" + hex.EncodeToString(sum[:8])
}

// ErrRan: the schedule ran that opening already.
var ErrRan = errors.New("the schedule ran this opening already")

// Run is a schedule's run of an opening: the plan it made ("" when it
// planned nothing).
type Run struct {
	Schedule string    `json:"schedule"`
	Opening  string    `json:"opening"`
	Plan     string    `json:"plan,omitempty"`
	At       time.Time `json:"at"`
}

// Pause is why and by whom a schedule was paused.
type Pause struct {
	Reason string    `json:"reason"`
	By     string    `json:"by"`
	At     time.Time `json:"at"`
}
