package policy

import (
	"fmt"
	"maps"
	"net/mail"
	"net/url"
	"path"
	"slices"
	"strings"

	"github.com/patchbay/patchbay/duration"
	"github.com/patchbay/patchbay/fleet"
	"github.com/patchbay/patchbay/patch"
	"github.com/patchbay/patchbay/risk"
)

// The kinds of this package.
const (
	KindTeam      = "Team"
	KindService   = "Service"
	KindHostGroup = "HostGroup"
	KindPolicy    = "Policy"
	KindException = "Exception"
)

// OwnKinds are this package's kinds: who owns what (Team, Service,
// HostGroup), how findings are decided (Policy) and the exceptions to it.
func OwnKinds() []Kind {
	return []Kind{
		{Name: KindTeam, NewSpec: func() Spec { return &TeamSpec{} }},
		{Name: KindService, NewSpec: func() Spec { return &ServiceSpec{} }},
		{Name: KindHostGroup, NewSpec: func() Spec { return &HostGroupSpec{} }},
		{Name: KindPolicy, NewSpec: func() Spec { return &PolicySpec{} }},
		{Name: KindException, NewSpec: func() Spec { return &ExceptionSpec{} }},
	}
}

// TeamSpec is a team that owns services.
type TeamSpec struct {
	Description string `yaml:"description,omitempty" json:"description,omitempty"`
	// Contact is where the team is reached first: an address or a chat
	// channel.
	Contact string   `yaml:"contact,omitempty" json:"contact,omitempty"`
	Members []Member `yaml:"members,omitempty" json:"members,omitempty"`
	// Webhook receives the team's notifications (http or https URL).
	Webhook string `yaml:"webhook,omitempty" json:"webhook,omitempty"`
}

// Member is one person of a team.
type Member struct {
	Name  string `yaml:"name" json:"name" policy:"required"`
	Email string `yaml:"email,omitempty" json:"email,omitempty"`
	Chat  string `yaml:"chat,omitempty" json:"chat,omitempty"`
}

func (s *TeamSpec) Check(c *Checker) {
	for i, m := range s.Members {
		if m.Email != "" {
			if a, err := mail.ParseAddress(m.Email); err != nil || a.Address != m.Email {
				c.errorf(fmt.Sprintf("spec.members[%d].email", i), "%q is not an email address", m.Email)
			}
		}
	}
	if s.Webhook != "" {
		checkURL(c, "spec.webhook", s.Webhook)
	}
}

func checkURL(c *checker, p, s string) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		c.errorf(p, "%q: want an http or https URL", s)
	}
}

// ServiceSpec is a service of the catalog.
type ServiceSpec struct {
	Description string `yaml:"description,omitempty" json:"description,omitempty"`
	// Owner is the owning Team's name.
	Owner string `yaml:"owner" json:"owner" policy:"required"`
	// Tier is the service's criticality: 1 (most critical) to 4.
	Tier     int    `yaml:"tier" json:"tier" policy:"required"`
	Exposure string `yaml:"exposure" json:"exposure" policy:"required"`
	// Hosts selects the hosts the service runs on; left out, the service
	// has no hosts (only the inventories uploaded for it).
	Hosts Selector `yaml:"hosts,omitempty" json:"hosts,omitzero"`
	// Repository is where its code lives, for people.
	Repository string `yaml:"repository,omitempty" json:"repository,omitempty"`
	// Chat is the service's own channel, when it has one beside its
	// team's contact; Links are where people look (runbook, dashboards).
	Chat  string `yaml:"chat,omitempty" json:"chat,omitempty"`
	Links []Link `yaml:"links,omitempty" json:"links,omitempty"`
	// Repo is the git repository the server proposes fixes to (fix.md).
	Repo *ServiceRepo `yaml:"repo,omitempty" json:"repo,omitempty"`
	// Paths are the directories and files the service claims on its
	// hosts (absolute, clean): application packages found under one
	// belong to the service (Set.Claim).
	Paths []string `yaml:"paths,omitempty" json:"paths,omitempty"`
}

// Link is a named URL of a service.
type Link struct {
	Name string `yaml:"name" json:"name" policy:"required"`
	URL  string `yaml:"url" json:"url" policy:"required"`
}

// ServiceRepo is a service's git repository for fixes: where the leader
// clones from and pushes fix branches to, and the forge that takes the
// merge requests.
type ServiceRepo struct {
	// URL is the git URL (https://, ssh://, git://, file://, or
	// user@host:path); credentials never go here.
	URL string `yaml:"url" json:"url" policy:"required"`
	// Base is the branch fixes are made from and merge into: main when
	// empty.
	Base string `yaml:"base,omitempty" json:"base,omitempty"`
	// Forge is github, gitlab, or none (push the branch only); none when
	// empty.
	Forge string `yaml:"forge,omitempty" json:"forge,omitempty"`
	// Project is the forge's name of the repository: OWNER/NAME on
	// GitHub, the project path on GitLab.
	Project string `yaml:"project,omitempty" json:"project,omitempty"`
	// API is the forge's API base URL: https://api.github.com and
	// https://gitlab.com when empty.
	API string `yaml:"api,omitempty" json:"api,omitempty"`
}

// BaseBranch is Base or main.
func (r *ServiceRepo) BaseBranch() string {
	if r.Base == "" {
		return "main"
	}
	return r.Base
}

func (s *ServiceSpec) Check(c *Checker) {
	if s.Tier < 1 || s.Tier > 4 {
		c.errorf("spec.tier", "%d: want 1 (most critical) to 4", s.Tier)
	}
	if levelOf(exposureLevels, s.Exposure) < 0 {
		c.errorf("spec.exposure", "%q: want %s", s.Exposure, oneOf(exposureLevels))
	}
	for i, l := range s.Links {
		checkURL(c, fmt.Sprintf("spec.links[%d].url", i), l.URL)
	}
	for i, p := range s.Paths {
		f := fmt.Sprintf("spec.paths[%d]", i)
		switch {
		case !path.IsAbs(p):
			c.errorf(f, "%q: want an absolute path", p)
		case path.Clean(p) != p:
			c.errorf(f, "%q: want a clean path (%s)", p, path.Clean(p))
		case p == "/":
			c.errorf(f, "%q claims every file: name the service's directory", p)
		case slices.Contains(s.Paths[:i], p):
			c.errorf(f, "%q is listed twice", p)
		case s.Hosts.Empty():
			c.errorf(f, "%q: a service without hosts claims no host paths; give it spec.hosts", p)
		}
	}
	if r := s.Repo; r != nil {
		if u, err := url.Parse(r.URL); err == nil && u.User != nil {
			c.errorf("spec.repo.url", "%q holds credentials: give the server a token (fix.md), never the document", u.Redacted())
		} else if r.URL == "" || strings.ContainsAny(r.URL, " \t\n") || strings.HasPrefix(r.URL, "-") {
			c.errorf("spec.repo.url", "%q: want a git URL", r.URL)
		}
		switch r.Forge {
		case "", "none":
		case "github", "gitlab":
			if r.Project == "" {
				c.errorf("spec.repo.project", "required with forge %s: OWNER/NAME or the project path", r.Forge)
			}
		default:
			c.errorf("spec.repo.forge", "%q: want github, gitlab or none", r.Forge)
		}
		if r.API != "" {
			checkURL(c, "spec.repo.api", r.API)
		}
	}
}

// HostGroupSpec names a set of hosts by a label selector.
type HostGroupSpec struct {
	Description string   `yaml:"description,omitempty" json:"description,omitempty"`
	Selector    Selector `yaml:"selector" json:"selector" policy:"required"`
}

func (s *HostGroupSpec) Check(c *Checker) {
	if s.Selector.Empty() {
		c.errorf("spec.selector", "empty: a host group names at least one label requirement")
	}
}

// PolicySpec is how findings are prioritised and how fast each priority
// must be fixed.
type PolicySpec struct {
	Description string `yaml:"description,omitempty" json:"description,omitempty"`
	// Hosts selects the hosts the policy governs; left out, it governs
	// every host no other policy selects (at most one policy may leave it
	// out).
	Hosts Selector `yaml:"hosts,omitempty" json:"hosts,omitzero"`
	// Defaults are the asset context of hosts that have none.
	Defaults   AssetDefaults `yaml:"defaults,omitempty" json:"defaults,omitzero"`
	Priorities Priorities    `yaml:"priorities" json:"priorities" policy:"required"`
	SLAs       SLAs          `yaml:"slas" json:"slas" policy:"required"`
	// KEVDueDates caps the due date of a P1 in CISA KEV at KEV's due date.
	KEVDueDates bool `yaml:"kevDueDates,omitempty" json:"kevDueDates,omitempty"`
	// Emergency rules raise matching findings to a priority and send them
	// to the emergency lane.
	Emergency []EmergencyRule `yaml:"emergency,omitempty" json:"emergency,omitempty"`
	// Classification adds patch types to updates by package name (glob
	// patterns); left out, the built-in rules apply.
	Classification []ClassRule `yaml:"classification,omitempty" json:"classification,omitempty"`
}

// AssetDefaults are the tier and exposure assumed without labels or
// services.
type AssetDefaults struct {
	Tier     int    `yaml:"tier,omitempty" json:"tier,omitempty"`
	Exposure string `yaml:"exposure,omitempty" json:"exposure,omitempty"`
}

// Priorities is the priority table: a base priority for each of the
// twelve combinations of the vulnerability's decision points, shifted by
// the asset's tier and exposure (negative shifts are more urgent).
type Priorities struct {
	Base     []BaseRow      `yaml:"base" json:"base" policy:"required"`
	Tier     map[string]int `yaml:"tier,omitempty" json:"tier,omitempty"`
	Exposure map[string]int `yaml:"exposure,omitempty" json:"exposure,omitempty"`
}

// BaseRow is one cell of the base table.
type BaseRow struct {
	Exploitation string        `yaml:"exploitation" json:"exploitation" policy:"required"`
	Automatable  bool          `yaml:"automatable" json:"automatable" policy:"required"`
	Impact       string        `yaml:"impact" json:"impact" policy:"required"`
	Priority     risk.Priority `yaml:"priority" json:"priority" policy:"required"`
}

// SLAs are the time allowed per priority, per patch cycle.
type SLAs struct {
	System      SLATable `yaml:"system" json:"system" policy:"required"`
	Application SLATable `yaml:"application" json:"application" policy:"required"`
}

// SLATable is the time allowed for each priority.
type SLATable struct {
	P1 duration.Duration `yaml:"P1" json:"P1" policy:"required"`
	P2 duration.Duration `yaml:"P2" json:"P2" policy:"required"`
	P3 duration.Duration `yaml:"P3" json:"P3" policy:"required"`
	P4 duration.Duration `yaml:"P4" json:"P4" policy:"required"`
}

func (t SLATable) of(p risk.Priority) duration.Duration {
	return [...]duration.Duration{t.P1, t.P1, t.P2, t.P3, t.P4}[min(max(int(p), 1), 4)]
}

// EmergencyRule raises the findings its condition selects.
type EmergencyRule struct {
	Name     string        `yaml:"name" json:"name" policy:"required"`
	When     Condition     `yaml:"when" json:"when" policy:"required"`
	Priority risk.Priority `yaml:"priority" json:"priority" policy:"required"`
	// SLA replaces the priority's SLA when shorter.
	SLA duration.Duration `yaml:"sla,omitempty" json:"sla,omitempty"`
}

// Condition selects findings by thresholds: each given field is a minimum
// (exploitation, impact, exposure), a maximum tier number, or a
// requirement (automatable, cycle). Thresholds make every rule monotone:
// more evidence or a more critical asset never leaves a rule.
type Condition struct {
	Exploitation string `yaml:"exploitation,omitempty" json:"exploitation,omitempty"`
	Automatable  bool   `yaml:"automatable,omitempty" json:"automatable,omitempty"`
	Impact       string `yaml:"impact,omitempty" json:"impact,omitempty"`
	Tier         int    `yaml:"tier,omitempty" json:"tier,omitempty"`
	Exposure     string `yaml:"exposure,omitempty" json:"exposure,omitempty"`
	Cycle        string `yaml:"cycle,omitempty" json:"cycle,omitempty"`
}

// ClassRule adds Type to updates of packages matching Packages.
type ClassRule struct {
	Type     patch.Type `yaml:"type" json:"type" policy:"required"`
	Packages []string   `yaml:"packages" json:"packages" policy:"required"`
}

func (s *PolicySpec) Check(c *Checker) {
	if s.Defaults.Tier != 0 && (s.Defaults.Tier < 1 || s.Defaults.Tier > 4) {
		c.errorf("spec.defaults.tier", "%d: want 1 (most critical) to 4", s.Defaults.Tier)
	}
	if s.Defaults.Exposure != "" && levelOf(exposureLevels, s.Defaults.Exposure) < 0 {
		c.errorf("spec.defaults.exposure", "%q: want %s", s.Defaults.Exposure, oneOf(exposureLevels))
	}
	s.Priorities.check(c)
	for _, cy := range []struct {
		name string
		t    SLATable
	}{{"system", s.SLAs.System}, {"application", s.SLAs.Application}} {
		prev := duration.Duration(0)
		for p := risk.P1; p <= risk.P4; p++ {
			d := cy.t.of(p)
			at := fmt.Sprintf("spec.slas.%s.%s", cy.name, p)
			switch {
			case d <= 0:
				c.errorf(at, "want a positive duration")
			case d < prev:
				c.errorf(at, "%s is shorter than %s's %s: a lower priority never gets less time", d, p-1, prev)
			}
			prev = d
		}
	}
	names := map[string]bool{}
	for i, r := range s.Emergency {
		at := fmt.Sprintf("spec.emergency[%d]", i)
		if names[r.Name] {
			c.errorf(at+".name", "%q: given twice", r.Name)
		}
		names[r.Name] = true
		r.When.check(c, at+".when")
		if r.When == (Condition{}) {
			c.errorf(at+".when", "empty: an emergency rule names at least one condition")
		}
	}
	for i, r := range s.Classification {
		at := fmt.Sprintf("spec.classification[%d]", i)
		if !slices.Contains(patch.Types, r.Type) {
			c.errorf(at+".type", "%q: want one of %s", r.Type, patch.TypeNames())
		}
		if len(r.Packages) == 0 {
			c.errorf(at+".packages", "empty: name at least one package pattern")
		}
		for j, p := range r.Packages {
			if _, err := path.Match(p, ""); err != nil || p == "" {
				c.errorf(fmt.Sprintf("%s.packages[%d]", at, j), "%q: not a glob pattern", p)
			}
		}
	}
}

func (cd Condition) check(c *checker, at string) {
	if cd.Exploitation != "" && levelOf(exploitationLevels, cd.Exploitation) < 0 {
		c.errorf(at+".exploitation", "%q: want %s", cd.Exploitation, oneOf(exploitationLevels))
	}
	if cd.Impact != "" && levelOf(impactLevels, cd.Impact) < 0 {
		c.errorf(at+".impact", "%q: want %s", cd.Impact, oneOf(impactLevels))
	}
	if cd.Exposure != "" && levelOf(exposureLevels, cd.Exposure) < 0 {
		c.errorf(at+".exposure", "%q: want %s", cd.Exposure, oneOf(exposureLevels))
	}
	if cd.Tier != 0 && (cd.Tier < 1 || cd.Tier > 4) {
		c.errorf(at+".tier", "%d: want 1 (most critical) to 4", cd.Tier)
	}
	if cd.Cycle != "" && levelOf(cycles, cd.Cycle) < 0 {
		c.errorf(at+".cycle", "%q: want %s", cd.Cycle, oneOf(cycles))
	}
}

func (p *Priorities) check(c *checker) {
	seen := map[[3]int]int{}
	for i, r := range p.Base {
		at := fmt.Sprintf("spec.priorities.base[%d]", i)
		e, im := levelOf(exploitationLevels, r.Exploitation), levelOf(impactLevels, r.Impact)
		if e < 0 {
			c.errorf(at+".exploitation", "%q: want %s", r.Exploitation, oneOf(exploitationLevels))
		}
		if im < 0 {
			c.errorf(at+".impact", "%q: want %s", r.Impact, oneOf(impactLevels))
		}
		if e < 0 || im < 0 {
			continue
		}
		k := [3]int{e, b2i(r.Automatable), im}
		if j, ok := seen[k]; ok {
			c.errorf(at, "same inputs as base[%d]", j)
			continue
		}
		seen[k] = i
	}
	if len(c.errs) > 0 {
		return
	}
	var missing []string
	for e := range exploitationLevels {
		for a := range 2 {
			for im := range impactLevels {
				if _, ok := seen[[3]int{e, a, im}]; !ok {
					missing = append(missing, fmt.Sprintf("%s/%t/%s", exploitationLevels[e], a == 1, impactLevels[im]))
				}
			}
		}
	}
	if len(missing) > 0 {
		c.errorf("spec.priorities.base", "%d of the 12 rows missing (one per exploitation/automatable/impact): %s", len(missing), strings.Join(missing, ", "))
	}
	if len(c.errs) > 0 {
		return
	}
	// Monotone: more evidence never lowers the base priority.
	t := p.baseTable()
	for e := range exploitationLevels {
		for a := range 2 {
			for im := range impactLevels {
				row := seen[[3]int{e, a, im}]
				here := t[e][a][im]
				for _, up := range [][3]int{{e + 1, a, im}, {e, a + 1, im}, {e, a, im + 1}} {
					if up[0] >= len(exploitationLevels) || up[1] > 1 || up[2] >= len(impactLevels) {
						continue
					}
					if there := t[up[0]][up[1]][up[2]]; there > here {
						c.errorf(fmt.Sprintf("spec.priorities.base[%d].priority", seen[up]),
							"%s is less urgent than base[%d]'s %s, which has less evidence: more exploitation, automatable or total impact never lowers a priority",
							there, row, here)
					}
				}
			}
		}
	}
	shifts := func(field string, m map[string]int, levels []string, what string) {
		// levels are ordered from the least to the most critical.
		bad := false
		for _, k := range slices.Sorted(maps.Keys(m)) {
			v := m[k]
			if levelOf(levels, k) < 0 {
				c.errorf("spec.priorities."+field+"."+k, "unknown %s (want %s)", what, oneOf(levels))
				bad = true
			}
			if v < -3 || v > 3 {
				c.errorf("spec.priorities."+field+"."+k, "%d: want a shift from -3 to 3", v)
				bad = true
			}
		}
		if bad {
			return
		}
		for i := 1; i < len(levels); i++ {
			lo, hi := m[levels[i-1]], m[levels[i]]
			if hi > lo {
				c.errorf("spec.priorities."+field+"."+levels[i], "%+d is less urgent than %s's %+d: a more critical asset never lowers a priority", hi, levels[i-1], lo)
			}
		}
	}
	shifts("tier", p.Tier, []string{"4", "3", "2", "1"}, "tier")
	shifts("exposure", p.Exposure, exposureLevels, "exposure")
}

// baseTable indexes the base rows [exploitation][automatable][impact].
func (p *Priorities) baseTable() [3][2][2]risk.Priority {
	var t [3][2][2]risk.Priority
	for _, r := range p.Base {
		e, im := levelOf(exploitationLevels, r.Exploitation), levelOf(impactLevels, r.Impact)
		if e >= 0 && im >= 0 {
			t[e][b2i(r.Automatable)][im] = r.Priority
		}
	}
	return t
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// ExceptionSpec accepts a risk (or states that a product is not affected)
// for the findings it selects: those of the named vulnerabilities and
// packages, on the selected hosts or services.
type ExceptionSpec struct {
	// Vulnerabilities are ids (CVE, GHSA, …) matched against a finding's
	// id; Packages are names or package URLs (pkg:deb/debian/openssl,
	// optionally @version). At least one of the two is given.
	Vulnerabilities []string `yaml:"vulnerabilities,omitempty" json:"vulnerabilities,omitempty"`
	Packages        []string `yaml:"packages,omitempty" json:"packages,omitempty"`
	// Hosts narrows the exception to hosts matching the selector.
	Hosts Selector `yaml:"hosts,omitempty" json:"hosts,omitzero"`
	// Services narrows it to the hosts and inventories of the services.
	Services []string `yaml:"services,omitempty" json:"services,omitempty"`
	// State is accepted (a risk accepted until Expires) or not_affected
	// (a VEX statement).
	State         fleet.State `yaml:"state,omitempty" json:"state,omitempty"`
	Justification string      `yaml:"justification" json:"justification" policy:"required"`
	ApprovedBy    string      `yaml:"approvedBy,omitempty" json:"approvedBy,omitempty"`
	Expires       Date        `yaml:"expires,omitempty" json:"expires,omitzero"`
	// Source names the VEX document a not_affected statement came from.
	Source string `yaml:"source,omitempty" json:"source,omitempty"`
}

func (s *ExceptionSpec) state() fleet.State {
	if s.State == "" {
		return fleet.StateAccepted
	}
	return s.State
}

func (s *ExceptionSpec) Check(c *Checker) {
	if len(s.Vulnerabilities) == 0 && len(s.Packages) == 0 {
		c.errorf("spec", "name at least one vulnerability or package: an exception never covers every finding")
	}
	for i, p := range s.Packages {
		if _, err := parsePackageRef(p); err != nil {
			c.errorf(fmt.Sprintf("spec.packages[%d]", i), "%v", err)
		}
	}
	for i, v := range s.Vulnerabilities {
		if strings.TrimSpace(v) == "" || strings.ContainsAny(v, " \t,") {
			c.errorf(fmt.Sprintf("spec.vulnerabilities[%d]", i), "%q: want one vulnerability id", v)
		}
	}
	if strings.TrimSpace(s.Justification) == "" {
		c.errorf("spec.justification", "empty: say why the risk is acceptable")
	}
	switch s.state() {
	case fleet.StateAccepted:
		if s.ApprovedBy == "" {
			c.errorf("spec.approvedBy", "missing: an accepted risk names who approved it")
		}
		if s.Expires.IsZero() {
			c.errorf("spec.expires", "missing: an accepted risk expires (YYYY-MM-DD)")
		}
	case fleet.StateNotAffected:
	default:
		c.errorf("spec.state", "%q: want accepted or not_affected", s.State)
	}
}
