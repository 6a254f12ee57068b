package policy

import (
	_ "embed"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/patchbay/patchbay/duration"
	"github.com/patchbay/patchbay/fleet"
	"github.com/patchbay/patchbay/patch"
	"github.com/patchbay/patchbay/risk"
)

//go:embed default.yaml
var defaultYAML []byte

// DefaultPolicy is the policy that governs hosts no applied Policy does.
var DefaultPolicy = func() *Document {
	docs, err := NewKinds(OwnKinds()).Parse("default.yaml", defaultYAML)
	if err != nil || len(docs) != 1 {
		panic(fmt.Sprintf("policy: built-in default: %v", err))
	}
	return docs[0]
}()

// DefaultYAML is the built-in policy as a document to start from.
func DefaultYAML() []byte { return slices.Clone(defaultYAML) }

// Set is a complete set of applied documents, indexed for decisions.
type Set struct {
	docs       []*Document
	teams      map[string]*TeamSpec
	services   []named[*ServiceSpec]
	groups     []named[*HostGroupSpec]
	policies   []named[*PolicySpec] // with a host selector, by name
	fallback   named[*PolicySpec]
	exceptions []named[*ExceptionSpec]
	revision   int64
}

type named[T any] struct {
	name string
	spec T
}

// NewSet indexes docs and checks the rules between documents: names are
// unique per kind, services name existing teams, exceptions existing
// services, and at most one Policy leaves out its host selector.
func NewSet(docs []*Document) (*Set, error) {
	s := &Set{teams: map[string]*TeamSpec{}}
	var errs Errors
	fail := func(d *Document, path, format string, args ...any) {
		errs = append(errs, &FieldError{Pos: d.posOf(path), Path: path, Message: fmt.Sprintf(format, args...)})
	}
	seen := map[string]*Document{}
	sorted := slices.Clone(docs)
	SortDocuments(sorted)
	for _, d := range sorted {
		if prev, ok := seen[d.Ref()]; ok {
			fail(d, "metadata.name", "%s is also defined at %s", d.Ref(), prev.Source)
			continue
		}
		seen[d.Ref()] = d
		s.docs = append(s.docs, d)
		switch sp := d.Spec.(type) {
		case *TeamSpec:
			s.teams[d.Metadata.Name] = sp
		case *ServiceSpec:
			s.services = append(s.services, named[*ServiceSpec]{d.Metadata.Name, sp})
		case *HostGroupSpec:
			s.groups = append(s.groups, named[*HostGroupSpec]{d.Metadata.Name, sp})
		case *PolicySpec:
			if sp.Hosts.Empty() {
				if s.fallback.spec != nil {
					fail(d, "spec.hosts", "missing: Policy/%s already governs every other host; give this one a host selector", s.fallback.name)
					continue
				}
				s.fallback = named[*PolicySpec]{d.Metadata.Name, sp}
				continue
			}
			s.policies = append(s.policies, named[*PolicySpec]{d.Metadata.Name, sp})
		case *ExceptionSpec:
			s.exceptions = append(s.exceptions, named[*ExceptionSpec]{d.Metadata.Name, sp})
		}
	}
	for _, d := range s.docs {
		if r, ok := d.Spec.(Referrer); ok {
			for _, ref := range r.References() {
				if _, ok := seen[ref.Kind+"/"+ref.Name]; !ok {
					fail(d, ref.Path, "no %s named %q", ref.Kind, ref.Name)
				}
			}
		}
		switch sp := d.Spec.(type) {
		case *ServiceSpec:
			if _, ok := s.teams[sp.Owner]; !ok {
				fail(d, "spec.owner", "no Team named %q", sp.Owner)
			}
		case *ExceptionSpec:
			for i, name := range sp.Services {
				if s.service(name) == nil {
					fail(d, fmt.Sprintf("spec.services[%d]", i), "no Service named %q", name)
				}
			}
		}
	}
	if s.fallback.spec == nil {
		s.fallback = named[*PolicySpec]{"default (built-in)", DefaultPolicy.Spec.(*PolicySpec)}
	}
	if len(errs) > 0 {
		return nil, errs.sorted()
	}
	return s, nil
}

// Documents are the set's documents, by kind and name.
func (s *Set) Documents() []*Document { return s.docs }

func (s *Set) service(name string) *ServiceSpec {
	for _, sv := range s.services {
		if sv.name == name {
			return sv.spec
		}
	}
	return nil
}

// Claim is the service that claims a package's location on a host with
// these labels: a service whose hosts select the host and one of whose
// paths is the location or a directory above it. The longest path wins
// (then the first service by name); ok is false when none claims it.
func (s *Set) Claim(labels map[string]string, location string) (service, via string, ok bool) {
	if location == "" || !path.IsAbs(location) {
		return "", "", false
	}
	location = path.Clean(location)
	for _, sv := range s.services {
		if sv.spec.Hosts.Empty() || !sv.spec.Hosts.Matches(labels) {
			continue
		}
		for _, p := range sv.spec.Paths {
			if (location == p || strings.HasPrefix(location, p+"/")) && len(p) > len(via) {
				service, via, ok = sv.name, p, true
			}
		}
	}
	return service, via, ok
}

// Claims says whether any service claims paths (Claim can find one).
func (s *Set) Claims() bool {
	return slices.ContainsFunc(s.services, func(sv named[*ServiceSpec]) bool { return len(sv.spec.Paths) > 0 })
}

// Asset is what decisions need to know of a host, or of a service whose
// code inventory was uploaded (Service set, no labels).
type Asset struct {
	ID      string
	Labels  map[string]string
	Service string
}

// Context is an asset's context: how critical and exposed it is, who owns
// it, and which policy governs it, each with where it came from.
type Context struct {
	Tier         int      `json:"tier"`
	TierFrom     string   `json:"tier_from"`
	Exposure     string   `json:"exposure"`
	ExposureFrom string   `json:"exposure_from"`
	Team         string   `json:"team,omitempty"`
	TeamFrom     string   `json:"team_from,omitempty"`
	Services     []string `json:"services,omitempty"`
	Groups       []string `json:"host_groups,omitempty"`
	Policy       string   `json:"policy"`
	policy       *PolicySpec
	labels       map[string]string
	asset        string
}

// Context computes an asset's context: the tier is the most critical of
// its `tier` label and the services it runs, the exposure the most exposed
// of its `exposure` label and those services; the team is its `team`
// label, else the owner of its most critical service.
func (s *Set) Context(a Asset) Context {
	c := Context{labels: a.Labels, asset: a.ID}
	var chosen *named[*ServiceSpec]
	consider := func(tier int, exposure, from string) {
		if tier >= 1 && tier <= 4 && (c.Tier == 0 || tier < c.Tier) {
			c.Tier, c.TierFrom = tier, from
		}
		if levelOf(exposureLevels, exposure) > levelOf(exposureLevels, c.Exposure) {
			c.Exposure, c.ExposureFrom = exposure, from
		}
	}
	if t, err := strconv.Atoi(a.Labels["tier"]); err == nil {
		consider(t, "", "label tier="+a.Labels["tier"])
	}
	if e := a.Labels["exposure"]; levelOf(exposureLevels, e) >= 0 {
		consider(0, e, "label exposure="+e)
	}
	for i := range s.services {
		sv := &s.services[i]
		runs := sv.name == a.Service || (a.Service == "" && !sv.spec.Hosts.Empty() && sv.spec.Hosts.Matches(a.Labels))
		if !runs {
			continue
		}
		c.Services = append(c.Services, sv.name)
		if chosen == nil || sv.spec.Tier < chosen.spec.Tier {
			chosen = sv
		}
		consider(sv.spec.Tier, sv.spec.Exposure, "service "+sv.name)
	}
	if a.Service == "" {
		for _, g := range s.groups {
			if g.spec.Selector.Matches(a.Labels) {
				c.Groups = append(c.Groups, g.name)
			}
		}
	}
	if t := a.Labels["team"]; t != "" {
		c.Team, c.TeamFrom = t, "label team="+t
	} else if chosen != nil {
		c.Team, c.TeamFrom = chosen.spec.Owner, "owner of service "+chosen.name
	}
	p := s.fallback
	for _, cand := range s.policies {
		if a.Service == "" && cand.spec.Hosts.Matches(a.Labels) {
			p = cand
			break
		}
	}
	c.Policy, c.policy = p.name, p.spec
	if c.Tier == 0 {
		c.Tier, c.TierFrom = p.spec.Defaults.Tier, "policy default"
		if c.Tier == 0 {
			c.Tier = 3
		}
	}
	if c.Exposure == "" {
		c.Exposure, c.ExposureFrom = p.spec.Defaults.Exposure, "policy default"
		if c.Exposure == "" {
			c.Exposure = "internal"
		}
	}
	return c
}

// Inputs are what is known of one finding.
type Inputs struct {
	Vulnerability string
	Aliases       []string
	Ecosystem     string
	Package       string
	Version       string
	// Exploitation, Automatable and Impact are the vulnerability's
	// decision points (risk.Assess).
	Exploitation risk.Exploitation
	Automatable  bool
	Impact       string
	Cycle        patch.Cycle
	// KEVDue is CISA's due date when the vulnerability is in KEV.
	KEVDue time.Time
}

// Decision is a finding's priority, lane, SLA, state and why.
type Decision struct {
	Priority risk.Priority `json:"priority"`
	Base     risk.Priority `json:"base"`
	Lane     fleet.Lane    `json:"lane,omitempty"`
	SLA      time.Duration `json:"sla"`
	// DueCap caps the due date (KEV's due date), zero for none.
	DueCap    time.Time   `json:"due_cap,omitzero"`
	State     fleet.State `json:"state"`
	Exception string      `json:"exception,omitempty"`
	// Until is when an accepted risk expires.
	Until   time.Time `json:"until,omitzero"`
	Policy  string    `json:"policy"`
	Reasons []string  `json:"reasons"`
}

// Due is the due date of a finding first seen at firstSeen.
func (d Decision) Due(firstSeen time.Time) time.Time {
	due := firstSeen.Add(d.SLA)
	if !d.DueCap.IsZero() && d.DueCap.Before(due) {
		return d.DueCap
	}
	return due
}

// Decider decides the findings of one asset, remembering the decisions
// of equal inputs: an asset's hundreds of findings share a handful of
// decision-point combinations, and only exceptions differ per finding.
type Decider struct {
	set  *Set
	ctx  Context
	memo map[decisionKey]Decision
}

type decisionKey struct {
	exploitation, impact, cycle string
	automatable                 bool
	kevDue                      int64
}

// Decider returns a decider for an asset's context.
func (s *Set) Decider(c Context) *Decider {
	return &Decider{set: s, ctx: c, memo: map[decisionKey]Decision{}}
}

// Decide is Set.Decide; the returned Reasons may be shared: do not
// modify them.
func (d *Decider) Decide(in Inputs, now time.Time) Decision {
	k := decisionKey{string(in.Exploitation), in.Impact, string(in.Cycle), in.Automatable, in.KEVDue.UnixNano()}
	base, ok := d.memo[k]
	if !ok {
		base = d.set.decideBase(in, d.ctx)
		d.memo[k] = base
	}
	return d.set.withException(base, in, d.ctx, now)
}

// Decide decides a finding's priority in its asset's context at now.
func (s *Set) Decide(in Inputs, c Context, now time.Time) Decision {
	return s.withException(s.decideBase(in, c), in, c, now)
}

// decideBase is the decision before exceptions: it depends only on the
// decision points, the cycle, the KEV due date and the context.
func (s *Set) decideBase(in Inputs, c Context) Decision {
	p := c.policy
	if p == nil {
		p = s.fallback.spec
	}
	d := Decision{Policy: c.Policy, State: fleet.StateOpen}
	e := max(levelOf(exploitationLevels, string(in.Exploitation)), 0)
	im := max(levelOf(impactLevels, in.Impact), 0)
	d.Base = p.Priorities.baseTable()[e][b2i(in.Automatable)][im]
	auto := "not automatable"
	if in.Automatable {
		auto = "automatable"
	}
	d.Reasons = append(d.Reasons, fmt.Sprintf("base %s: exploitation %s, %s, %s impact (policy %s)", d.Base, exploitationLevels[e], auto, impactLevels[im], c.Policy))
	prio := int(d.Base)
	if sh := p.Priorities.Tier[strconv.Itoa(c.Tier)]; sh != 0 {
		prio += sh
		d.Reasons = append(d.Reasons, fmt.Sprintf("tier %d (%s) shifts %+d", c.Tier, c.TierFrom, sh))
	} else {
		d.Reasons = append(d.Reasons, fmt.Sprintf("tier %d (%s), no shift", c.Tier, c.TierFrom))
	}
	if sh := p.Priorities.Exposure[c.Exposure]; sh != 0 {
		prio += sh
		d.Reasons = append(d.Reasons, fmt.Sprintf("exposure %s (%s) shifts %+d", c.Exposure, c.ExposureFrom, sh))
	} else {
		d.Reasons = append(d.Reasons, fmt.Sprintf("exposure %s (%s), no shift", c.Exposure, c.ExposureFrom))
	}
	d.Priority = risk.Priority(min(max(prio, 1), 4))
	if int(d.Priority) != int(d.Base) {
		d.Reasons = append(d.Reasons, fmt.Sprintf("%s → %s", d.Base, d.Priority))
	}
	cycle := string(in.Cycle)
	if cycle != "application" {
		cycle = "system"
	}
	table := p.SLAs.System
	if cycle == "application" {
		table = p.SLAs.Application
	}
	d.SLA = time.Duration(table.of(d.Priority))
	slaFrom := fmt.Sprintf("SLA %s for %s %s patches", duration.Duration(d.SLA), d.Priority, cycle)
	// Every matching rule applies and the most urgent wins: with
	// threshold conditions, more evidence only adds matching rules.
	for _, r := range p.Emergency {
		if !r.When.holds(in, c, cycle) {
			continue
		}
		d.Lane = fleet.LaneEmergency
		if r.Priority < d.Priority {
			d.Priority = r.Priority
			d.SLA = time.Duration(table.of(d.Priority))
			slaFrom = fmt.Sprintf("SLA %s for %s %s patches", duration.Duration(d.SLA), d.Priority, cycle)
		}
		if r.SLA > 0 && time.Duration(r.SLA) < d.SLA {
			d.SLA = time.Duration(r.SLA)
			slaFrom = fmt.Sprintf("SLA %s of emergency rule %s", r.SLA, r.Name)
		}
		d.Reasons = append(d.Reasons, fmt.Sprintf("emergency rule %s (%s): at least %s, emergency lane", r.Name, r.When, r.Priority))
	}
	d.Reasons = append(d.Reasons, slaFrom)
	if p.KEVDueDates && d.Priority == risk.P1 && !in.KEVDue.IsZero() {
		d.DueCap = in.KEVDue
		d.Reasons = append(d.Reasons, "due no later than CISA KEV's due date "+in.KEVDue.Format(time.DateOnly))
	}
	return d
}

// withException applies the exception covering a finding, if any.
func (s *Set) withException(d Decision, in Inputs, c Context, now time.Time) Decision {
	if x, ex := s.exception(in, c, now); ex != nil {
		d.Reasons = slices.Clip(d.Reasons) // shared by memoised decisions
		d.State, d.Exception = ex.state(), x
		switch d.State {
		case fleet.StateNotAffected:
			src := ""
			if ex.Source != "" {
				src = " (" + ex.Source + ")"
			}
			d.Reasons = append(d.Reasons, fmt.Sprintf("not affected per Exception/%s%s: %s", x, src, ex.Justification))
		default:
			d.Until = ex.Expires.End()
			d.Reasons = append(d.Reasons, fmt.Sprintf("risk accepted until %s by %s (Exception/%s): %s", ex.Expires, ex.ApprovedBy, x, ex.Justification))
		}
	}
	return d
}

func (cd Condition) holds(in Inputs, c Context, cycle string) bool {
	if cd.Exploitation != "" && levelOf(exploitationLevels, string(in.Exploitation)) < levelOf(exploitationLevels, cd.Exploitation) {
		return false
	}
	if cd.Automatable && !in.Automatable {
		return false
	}
	if cd.Impact != "" && levelOf(impactLevels, in.Impact) < levelOf(impactLevels, cd.Impact) {
		return false
	}
	if cd.Tier != 0 && c.Tier > cd.Tier {
		return false
	}
	if cd.Exposure != "" && levelOf(exposureLevels, c.Exposure) < levelOf(exposureLevels, cd.Exposure) {
		return false
	}
	return cd.Cycle == "" || cd.Cycle == cycle
}

func (cd Condition) String() string {
	var parts []string
	if cd.Exploitation != "" {
		parts = append(parts, "exploitation ≥ "+cd.Exploitation)
	}
	if cd.Automatable {
		parts = append(parts, "automatable")
	}
	if cd.Impact != "" {
		parts = append(parts, "impact ≥ "+cd.Impact)
	}
	if cd.Tier != 0 {
		parts = append(parts, fmt.Sprintf("tier ≤ %d", cd.Tier))
	}
	if cd.Exposure != "" {
		parts = append(parts, "exposure ≥ "+cd.Exposure)
	}
	if cd.Cycle != "" {
		parts = append(parts, "cycle "+cd.Cycle)
	}
	return strings.Join(parts, ", ")
}

// exception finds the exception covering a finding at now: a not_affected
// statement first, else the accepted risk that lasts longest.
func (s *Set) exception(in Inputs, c Context, now time.Time) (string, *ExceptionSpec) {
	var bestName string
	var best *ExceptionSpec
	for _, x := range s.exceptions {
		ex := x.spec
		if !ex.covers(in, c) {
			continue
		}
		if ex.state() == fleet.StateNotAffected {
			return x.name, ex
		}
		if !now.Before(ex.Expires.End()) {
			continue
		}
		if best == nil || ex.Expires.End().After(best.Expires.End()) {
			bestName, best = x.name, ex
		}
	}
	return bestName, best
}

func (ex *ExceptionSpec) covers(in Inputs, c Context) bool {
	if len(ex.Vulnerabilities) > 0 {
		ok := false
		for _, v := range ex.Vulnerabilities {
			if strings.EqualFold(v, in.Vulnerability) || slices.ContainsFunc(in.Aliases, func(a string) bool { return strings.EqualFold(a, v) }) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	if len(ex.Packages) > 0 {
		ok := false
		for _, p := range ex.Packages {
			if r, err := parsePackageRef(p); err == nil && r.matches(in.Ecosystem, in.Package, in.Version) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	if !ex.Hosts.Empty() && (c.asset == "" || !ex.Hosts.Matches(c.labels)) {
		return false
	}
	if len(ex.Services) > 0 && !slices.ContainsFunc(ex.Services, func(s string) bool { return slices.Contains(c.Services, s) }) {
		return false
	}
	return true
}

// NextExpiry is the first end of an accepted risk after t (zero when
// none): when findings must be decided again.
func (s *Set) NextExpiry(t time.Time) time.Time {
	var next time.Time
	for _, x := range s.exceptions {
		if x.spec.state() != fleet.StateAccepted {
			continue
		}
		if e := x.spec.Expires.End(); e.After(t) && (next.IsZero() || e.Before(next)) {
			next = e
		}
	}
	return next
}

// ClassRules are the classification rules of the policy governing c:
// the policy's own, else the built-in ones.
func (s *Set) ClassRules(c Context) []patch.Rule {
	p := c.policy
	if p == nil {
		p = s.fallback.spec
	}
	if len(p.Classification) == 0 {
		return patch.DefaultRules
	}
	out := make([]patch.Rule, len(p.Classification))
	for i, r := range p.Classification {
		out[i] = patch.Rule{Type: r.Type, Patterns: r.Packages}
	}
	return out
}

// TeamOf returns a team's spec, or nil.
func (s *Set) TeamOf(name string) *TeamSpec { return s.teams[name] }

// Service returns a service's spec, or nil.
func (s *Set) Service(name string) *ServiceSpec { return s.service(name) }

// ExceptionActive says whether the named exception exists and is in
// effect at now.
func (s *Set) ExceptionActive(name string, now time.Time) bool {
	for _, x := range s.exceptions {
		if x.name == name {
			return x.spec.state() == fleet.StateNotAffected || now.Before(x.spec.Expires.End())
		}
	}
	return false
}

// Revision is the store's policy revision the set was loaded at (0 for
// sets built otherwise).
func (s *Set) Revision() int64 { return s.revision }

// WithRevision records the revision the set was loaded at.
func (s *Set) WithRevision(r int64) *Set { s.revision = r; return s }
