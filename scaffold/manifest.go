package scaffold

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/patchbay/patchbay/duration"
	"github.com/patchbay/patchbay/policy"
	"github.com/patchbay/patchbay/rollout"
)

// ManifestFile is the name of a template's manifest in its directory.
const ManifestFile = "template.yaml"

// KindTemplate is the manifest's kind. It is not a policy kind: `apply`
// refuses it; only this package parses it.
const KindTemplate = "Template"

// The parameter types.
const (
	TypeString   = "string"
	TypeInt      = "int"
	TypeBool     = "bool"
	TypeList     = "list"     // comma-separated strings
	TypeSchedule = "schedule" // a MaintenanceWindow's cron schedule (TUE#2 allowed)
	TypeDuration = "duration" // 3d, 2w, 30m
	TypeTimeZone = "timezone" // an IANA time zone
	TypeDate     = "date"     // a day, 2027-01-01
)

var types = []string{TypeString, TypeInt, TypeBool, TypeList, TypeSchedule, TypeDuration, TypeTimeZone, TypeDate}

// Spec is a template's manifest: what it is for and its parameters.
type Spec struct {
	Description string `yaml:"description" policy:"required"`
	// Parameters are asked in this order in the interactive mode.
	Parameters []Param `yaml:"parameters,omitempty"`
}

// Param is one parameter of a template. Its value is written as on the
// command line (`--set name=value`): a list is comma-separated, and the
// default is written the same way.
type Param struct {
	// Name is how files use it: {{.teams}}.
	Name string `yaml:"name" policy:"required"`
	Type string `yaml:"type" policy:"required"`
	// Prompt is the question the interactive mode asks.
	Prompt      string `yaml:"prompt" policy:"required"`
	Description string `yaml:"description,omitempty"`
	// Default is the value when none is given; without one the parameter
	// is required.
	Default *Text `yaml:"default,omitempty"`
	// Allowed lists the values it may take (each item, for a list).
	Allowed []Text `yaml:"allowed,omitempty"`
	// Pattern is a regular expression the whole value (each item, for a
	// list) must match.
	Pattern string `yaml:"pattern,omitempty"`
	// Min and Max bound an int, or the number of items of a list.
	Min *int `yaml:"min,omitempty"`
	Max *int `yaml:"max,omitempty"`

	re *regexp.Regexp
}

// paramName: a lower-case first letter, so that no parameter hides the
// values Render adds ({{.Template.Name}}).
var paramName = regexp.MustCompile(`^[a-z][a-zA-Z0-9]*$`)

// Check validates the manifest: names, types, patterns, and that each
// default is a valid value of its parameter.
func (s *Spec) Check(c *policy.Checker) {
	seen := map[string]bool{}
	for i := range s.Parameters {
		p := &s.Parameters[i]
		at := fmt.Sprintf("spec.parameters[%d]", i)
		if !paramName.MatchString(p.Name) {
			c.Errorf(at+".name", "%q: want letters and digits, starting with a lower-case letter (files use it as {{.%s}})", p.Name, p.Name)
		}
		if seen[p.Name] {
			c.Errorf(at+".name", "%q: given twice", p.Name)
		}
		seen[p.Name] = true
		if !slices.Contains(types, p.Type) {
			c.Errorf(at+".type", "%q: want one of %s", p.Type, strings.Join(types, ", "))
			continue
		}
		if p.Pattern != "" {
			re, err := regexp.Compile("^(?:" + p.Pattern + ")$")
			if err != nil {
				c.Errorf(at+".pattern", "%q: %v", p.Pattern, err)
				continue
			}
			p.re = re
		}
		if (p.Min != nil || p.Max != nil) && p.Type != TypeInt && p.Type != TypeList {
			c.Errorf(at, "min and max bound an int or a list's length, not a %s", p.Type)
		}
		if p.Min != nil && p.Max != nil && *p.Min > *p.Max {
			c.Errorf(at+".max", "%d: below min %d", *p.Max, *p.Min)
		}
		for j, a := range p.Allowed {
			if _, err := p.parseOne(string(a)); err != nil {
				c.Errorf(fmt.Sprintf("%s.allowed[%d]", at, j), "%v", err)
			}
		}
		if p.Default != nil {
			if _, err := p.Parse(string(*p.Default)); err != nil {
				c.Errorf(at+".default", "%v", err)
			}
		}
	}
}

// Parse parses and validates a value of the parameter, written as on the
// command line. The value is a string, an int, a bool or a []string.
func (p *Param) Parse(s string) (any, error) {
	if p.Type == TypeList {
		var items []string
		for _, it := range strings.Split(s, ",") {
			if it = strings.TrimSpace(it); it != "" {
				items = append(items, it)
			}
		}
		for _, it := range items {
			if _, err := p.parseOne(it); err != nil {
				return nil, err
			}
			if n := countOf(items, it); n > 1 {
				return nil, fmt.Errorf("%q: given twice", it)
			}
		}
		if p.Min != nil && len(items) < *p.Min {
			return nil, fmt.Errorf("%q: want at least %d item(s), comma-separated", s, *p.Min)
		}
		if p.Max != nil && len(items) > *p.Max {
			return nil, fmt.Errorf("%q: want at most %d item(s)", s, *p.Max)
		}
		if items == nil {
			items = []string{}
		}
		return items, nil
	}
	v, err := p.parseOne(strings.TrimSpace(s))
	if err != nil {
		return nil, err
	}
	if n, ok := v.(int); ok {
		if p.Min != nil && n < *p.Min {
			return nil, fmt.Errorf("%d: want at least %d", n, *p.Min)
		}
		if p.Max != nil && n > *p.Max {
			return nil, fmt.Errorf("%d: want at most %d", n, *p.Max)
		}
	}
	return v, nil
}

func countOf(items []string, s string) int {
	n := 0
	for _, it := range items {
		if it == s {
			n++
		}
	}
	return n
}

// parseOne parses one value (one item of a list).
func (p *Param) parseOne(s string) (any, error) {
	if len(p.Allowed) > 0 && !slices.Contains(p.Allowed, Text(s)) {
		return nil, fmt.Errorf("%q: want one of %s", s, p.AllowedText())
	}
	if p.re != nil && !p.re.MatchString(s) {
		return nil, fmt.Errorf("%q: does not match %s", s, p.Pattern)
	}
	switch p.Type {
	case TypeString, TypeList:
		return s, nil
	case TypeInt:
		n, err := strconv.Atoi(s)
		if err != nil {
			return nil, fmt.Errorf("%q: want an integer", s)
		}
		return n, nil
	case TypeBool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return nil, fmt.Errorf("%q: want true or false", s)
		}
		return b, nil
	case TypeSchedule:
		w := &rollout.WindowSpec{Schedule: s, Duration: duration.Duration(time.Hour), TimeZone: "UTC"}
		if _, err := rollout.NewWindow("parameter", w); err != nil {
			// NewWindow names the window: say only what is wrong.
			_, msg, _ := strings.Cut(err.Error(), ": ")
			return nil, fmt.Errorf("%s (e.g. \"0 22 * * TUE#2\": 22:00 on the second Tuesday)", msg)
		}
		return s, nil
	case TypeDuration:
		if _, err := duration.Parse(s); err != nil {
			return nil, err
		}
		return s, nil
	case TypeTimeZone:
		if _, err := time.LoadLocation(s); err != nil || s == "" || s == "Local" {
			return nil, fmt.Errorf("%q: not an IANA time zone (Europe/Paris, UTC)", s)
		}
		return s, nil
	case TypeDate:
		if _, err := time.Parse(time.DateOnly, s); err != nil {
			return nil, fmt.Errorf("%q: want a date YYYY-MM-DD (2027-01-01)", s)
		}
		return s, nil
	}
	return nil, fmt.Errorf("type %q: unknown", p.Type)
}

// Required says whether the parameter must be given.
func (p *Param) Required() bool { return p.Default == nil }

// DefaultText is the default as written, or "".
func (p *Param) DefaultText() string {
	if p.Default == nil {
		return ""
	}
	return string(*p.Default)
}

// AllowedText is the allowed values, comma-separated.
func (p *Param) AllowedText() string {
	out := make([]string, len(p.Allowed))
	for i, a := range p.Allowed {
		out[i] = string(a)
	}
	return strings.Join(out, ", ")
}

// Text is a value as the command line writes it; in the manifest any
// scalar (3, true, "web,db") is read as its text.
type Text string

// UnmarshalText keeps the text.
func (t *Text) UnmarshalText(b []byte) error { *t = Text(b); return nil }
