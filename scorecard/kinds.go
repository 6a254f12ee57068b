// Package scorecard is patch health as benchmarks: the Scorecard document
// (rules written in CEL over the facts of a service, a host or a host
// group, levels as a ladder, a weighted score, exemptions per rule and
// entity) and the Initiative
// document (a level or rules to reach by a date), their evaluation, the
// progress, burn-up and reminders of initiatives. It holds no SQL and no
// HTTP: the facts come in as values (Facts), results go out as values
// (Result), and what keeps them is the Store the Scorer declares.
package scorecard

import (
	"fmt"
	"slices"
	"strings"

	"github.com/patchbay/patchbay/policy"
)

// The kinds of this package.
const (
	KindScorecard  = "Scorecard"
	KindInitiative = "Initiative"
)

// Kinds are this package's document kinds.
func Kinds() []policy.Kind {
	return []policy.Kind{
		{Name: KindScorecard, NewSpec: func() policy.Spec { return &Spec{} }},
		{Name: KindInitiative, NewSpec: func() policy.Spec { return &InitiativeSpec{} }},
	}
}

// Spec is a scorecard: levels from the lowest up, rules that belong to a
// level, and exemptions of a rule for one entity.
type Spec struct {
	Description string `yaml:"description,omitempty" json:"description,omitempty"`
	// Entity is what is scored: service (the default), host or
	// hostGroup; teams get roll-ups of their services.
	Entity string `yaml:"entity,omitempty" json:"entity,omitempty"`
	// Levels from the lowest (Bronze) to the highest (Gold).
	Levels     []Level     `yaml:"levels" json:"levels" policy:"required"`
	Rules      []Rule      `yaml:"rules" json:"rules" policy:"required"`
	Exemptions []Exemption `yaml:"exemptions,omitempty" json:"exemptions,omitempty"`
}

// Level is a rung of the ladder.
type Level struct {
	Name        string `yaml:"name" json:"name" policy:"required"`
	Description string `yaml:"description,omitempty" json:"description,omitempty"`
}

// Rule is one check: a CEL expression over the entity's facts that is
// true when the entity passes.
type Rule struct {
	Name  string `yaml:"name" json:"name" policy:"required"`
	Level string `yaml:"level" json:"level" policy:"required"`
	// Expr is a CEL expression of type bool (see FactNames for the
	// variables; custom facts are custom["name"]).
	Expr string `yaml:"expr" json:"expr" policy:"required"`
	// Weight counts the rule in the score (1 when left out).
	Weight float64 `yaml:"weight,omitempty" json:"weight,omitempty"`
	// Message says what to do when the rule fails.
	Message string `yaml:"message" json:"message" policy:"required"`
	// Patch marks a rule that patching fixes: its action item links to
	// the patch plan of the entity.
	Patch bool `yaml:"patch,omitempty" json:"patch,omitempty"`
}

// Exemption lets one entity fail one rule until it expires: a service,
// a host or a host group, as the scorecard's entity is.
type Exemption struct {
	Rule      string      `yaml:"rule" json:"rule" policy:"required"`
	Service   string      `yaml:"service,omitempty" json:"service,omitempty"`
	Host      string      `yaml:"host,omitempty" json:"host,omitempty"`
	HostGroup string      `yaml:"hostGroup,omitempty" json:"hostGroup,omitempty"`
	Reason    string      `yaml:"reason" json:"reason" policy:"required"`
	Approver  string      `yaml:"approver" json:"approver" policy:"required"`
	Expires   policy.Date `yaml:"expires" json:"expires" policy:"required"`
}

// name is the entity the exemption names, for the scorecard's entity.
func (e Exemption) name(entity string) string {
	switch entity {
	case EntityHost:
		return e.Host
	case EntityHostGroup:
		return e.HostGroup
	}
	return e.Service
}

// key is the exempted entity's result key.
func (e Exemption) key(entity string) string { return EntityKey(entity, e.name(entity)) }

func (r Rule) weight() float64 {
	if r.Weight == 0 {
		return 1
	}
	return r.Weight
}

// Check validates the scorecard and type-checks every rule: a rule that
// does not compile to a bool is an error at its expr's position.
func (s *Spec) Check(c *policy.Checker) {
	if !slices.Contains(Entities, s.entity()) {
		c.Errorf("spec.entity", "%q: want one of %s (teams are rolled up from their services)", s.Entity, strings.Join(Entities, ", "))
		return
	}
	levels := map[string]bool{}
	for i, l := range s.Levels {
		if levels[l.Name] {
			c.Errorf(fmt.Sprintf("spec.levels[%d].name", i), "level %q is named twice", l.Name)
		}
		levels[l.Name] = true
	}
	rules := map[string]bool{}
	for i, r := range s.Rules {
		p := fmt.Sprintf("spec.rules[%d]", i)
		if rules[r.Name] {
			c.Errorf(p+".name", "rule %q is named twice", r.Name)
		}
		rules[r.Name] = true
		if !levels[r.Level] {
			c.Errorf(p+".level", "no level %q: want one of %s", r.Level, strings.Join(s.levelNames(), ", "))
		}
		if r.Weight < 0 {
			c.Errorf(p+".weight", "%v: want a positive weight", r.Weight)
		}
		if _, err := compile(s.entity(), r.Expr); err != nil {
			c.Errorf(p+".expr", "%v", err)
		}
	}
	for i, e := range s.Exemptions {
		p := fmt.Sprintf("spec.exemptions[%d]", i)
		if !rules[e.Rule] {
			c.Errorf(p+".rule", "no rule %q in this scorecard", e.Rule)
		}
		fields := map[string]string{EntityService: "service", EntityHost: "host", EntityHostGroup: "hostGroup"}
		if e.name(s.entity()) == "" {
			c.Errorf(p+"."+fields[s.entity()], "missing: this scorecard scores %ss, so an exemption names a %s", s.entity(), fields[s.entity()])
		}
		for _, ent := range Entities {
			if ent != s.entity() && e.name(ent) != "" {
				c.Errorf(p+"."+fields[ent], "this scorecard scores %ss: name the %s instead", s.entity(), fields[s.entity()])
			}
		}
	}
}

// References are the services the exemptions name.
func (s *Spec) References() []policy.Reference {
	var out []policy.Reference
	for i, e := range s.Exemptions {
		if e.Service == "" {
			if e.HostGroup != "" {
				out = append(out, policy.Reference{Kind: policy.KindHostGroup, Name: e.HostGroup, Path: fmt.Sprintf("spec.exemptions[%d].hostGroup", i)})
			}
			continue
		}
		out = append(out, policy.Reference{Kind: policy.KindService, Name: e.Service, Path: fmt.Sprintf("spec.exemptions[%d].service", i)})
	}
	return out
}

func (s *Spec) levelNames() []string {
	out := make([]string, len(s.Levels))
	for i, l := range s.Levels {
		out[i] = l.Name
	}
	return out
}

// levelIndex is the rung of a level, -1 for none.
func (s *Spec) levelIndex(name string) int {
	return slices.IndexFunc(s.Levels, func(l Level) bool { return l.Name == name })
}

// InitiativeSpec is a goal with a date: the entities a selector names
// reach a scorecard's level (or pass some of its rules) by Target.
type InitiativeSpec struct {
	Description string `yaml:"description,omitempty" json:"description,omitempty"`
	Scorecard   string `yaml:"scorecard" json:"scorecard" policy:"required"`
	// Level to reach, or Rules to pass (one of the two).
	Level string   `yaml:"level,omitempty" json:"level,omitempty"`
	Rules []string `yaml:"rules,omitempty" json:"rules,omitempty"`
	// Services selects the services by their labels and the labels
	// team (the owner) and tier; left out, every service.
	Services policy.Selector `yaml:"services,omitempty" json:"services,omitzero"`
	Start    policy.Date     `yaml:"start" json:"start" policy:"required"`
	Target   policy.Date     `yaml:"target" json:"target" policy:"required"`
	Owners   []string        `yaml:"owners" json:"owners" policy:"required"`
	// State is draft or active; done and missed follow from the results.
	State string `yaml:"state" json:"state" policy:"required"`
	// RemindDays are the days before Target a reminder goes to each team
	// still behind (default 14 and 3).
	RemindDays []int `yaml:"remindDays,omitempty" json:"remindDays,omitempty"`
}

// Check validates the initiative alone; its scorecard is a reference.
func (s *InitiativeSpec) Check(c *policy.Checker) {
	if (s.Level == "") == (len(s.Rules) == 0) {
		c.Errorf("spec.level", "give a level or rules, one of the two")
	}
	if s.State != "draft" && s.State != "active" {
		c.Errorf("spec.state", "%q: want draft or active (done and missed follow from the results)", s.State)
	}
	if !s.Start.IsZero() && !s.Target.IsZero() && !s.Start.End().Before(s.Target.End()) {
		c.Errorf("spec.target", "%s is not after the start %s", s.Target, s.Start)
	}
	for i, d := range s.RemindDays {
		if d <= 0 {
			c.Errorf(fmt.Sprintf("spec.remindDays[%d]", i), "%d: want a number of days before the target", d)
		}
	}
}

// References is the scorecard.
func (s *InitiativeSpec) References() []policy.Reference {
	return []policy.Reference{{Kind: KindScorecard, Name: s.Scorecard, Path: "spec.scorecard"}}
}

func (s *InitiativeSpec) remindDays() []int {
	if len(s.RemindDays) == 0 {
		return []int{14, 3}
	}
	return s.RemindDays
}
