package policy

import (
	"fmt"
	"slices"
	"strings"

	"github.com/patchbay/patchbay/fleet"
)

// Selector picks hosts by their labels, as Kubernetes label selectors do:
// requirements separated by commas, all of which must hold:
//
//	env=prod            env==prod           env!=prod
//	role in (web,api)   role notin (db)     backup (has the label)   !legacy
//
// The empty selector matches every host; where "no hosts" is meant the
// field is left out instead.
type Selector struct {
	reqs []requirement
}

type requirement struct {
	key    string
	op     string // "in", "notin", "exists", "!exists"
	values []string
}

// ParseSelector parses a selector.
func ParseSelector(s string) (Selector, error) {
	var sel Selector
	rest := strings.TrimSpace(s)
	for rest != "" {
		var part string
		// A comma inside parentheses does not end a requirement.
		depth, cut := 0, -1
		for i, r := range rest {
			switch r {
			case '(':
				depth++
			case ')':
				depth--
			case ',':
				if depth == 0 && cut < 0 {
					cut = i
				}
			}
		}
		if depth != 0 {
			return Selector{}, fmt.Errorf("selector %q: unbalanced parentheses", s)
		}
		if cut < 0 {
			part, rest = rest, ""
		} else {
			part, rest = rest[:cut], strings.TrimSpace(rest[cut+1:])
			if rest == "" {
				return Selector{}, fmt.Errorf("selector %q: ends with a comma", s)
			}
		}
		r, err := parseRequirement(strings.TrimSpace(part))
		if err != nil {
			return Selector{}, fmt.Errorf("selector %q: %w", s, err)
		}
		sel.reqs = append(sel.reqs, r)
	}
	return sel, nil
}

func parseRequirement(p string) (requirement, error) {
	if p == "" {
		return requirement{}, fmt.Errorf("empty requirement")
	}
	checkKey := func(k string) error {
		if err := validKey(k); err != nil {
			return err
		}
		return nil
	}
	if i := strings.Index(p, "!="); i >= 0 {
		k, v := strings.TrimSpace(p[:i]), strings.TrimSpace(p[i+2:])
		if !validValue(v) {
			return requirement{}, fmt.Errorf("%q: bad value %q", p, v)
		}
		return requirement{key: k, op: "notin", values: []string{v}}, checkKey(k)
	}
	if i := strings.Index(p, "="); i >= 0 {
		k, v := strings.TrimSpace(p[:i]), strings.TrimSpace(strings.TrimPrefix(p[i+1:], "="))
		if !validValue(v) {
			return requirement{}, fmt.Errorf("%q: bad value %q", p, v)
		}
		return requirement{key: k, op: "in", values: []string{v}}, checkKey(k)
	}
	fields := strings.Fields(p)
	if len(fields) >= 2 && (fields[1] == "in" || fields[1] == "notin") {
		k := fields[0]
		list := strings.TrimSpace(strings.TrimPrefix(p[len(k):], " "))
		list = strings.TrimSpace(strings.TrimPrefix(list, fields[1]))
		if !strings.HasPrefix(list, "(") || !strings.HasSuffix(list, ")") {
			return requirement{}, fmt.Errorf("%q: want %s (a,b,…)", p, fields[1])
		}
		var vals []string
		for _, v := range strings.Split(list[1:len(list)-1], ",") {
			v = strings.TrimSpace(v)
			if v == "" {
				return requirement{}, fmt.Errorf("%q: empty value in the list", p)
			}
			if !validValue(v) {
				return requirement{}, fmt.Errorf("%q: bad value %q", p, v)
			}
			vals = append(vals, v)
		}
		return requirement{key: k, op: fields[1], values: vals}, checkKey(k)
	}
	if len(fields) != 1 {
		return requirement{}, fmt.Errorf("%q: want key=value, key!=value, key in (…), key notin (…), key or !key", p)
	}
	if k, ok := strings.CutPrefix(p, "!"); ok {
		return requirement{key: k, op: "!exists"}, checkKey(k)
	}
	return requirement{key: p, op: "exists"}, checkKey(p)
}

// validValue: a value holds no space nor any of the selector's syntax.
func validValue(v string) bool { return !strings.ContainsAny(v, " \t\n\r,()=!") }

func validKey(k string) error { return fleet.ValidateLabel(k, "") }

// Empty says whether the selector has no requirement.
func (s Selector) Empty() bool { return len(s.reqs) == 0 }

// Matches says whether labels satisfy every requirement.
func (s Selector) Matches(labels map[string]string) bool {
	for _, r := range s.reqs {
		v, ok := labels[r.key]
		switch r.op {
		case "exists":
			if !ok {
				return false
			}
		case "!exists":
			if ok {
				return false
			}
		case "in":
			if !ok || !slices.Contains(r.values, v) {
				return false
			}
		case "notin":
			if ok && slices.Contains(r.values, v) {
				return false
			}
		}
	}
	return true
}

// String is the canonical form: ParseSelector(s.String()) equals s.
func (s Selector) String() string {
	parts := make([]string, len(s.reqs))
	for i, r := range s.reqs {
		switch {
		case r.op == "exists":
			parts[i] = r.key
		case r.op == "!exists":
			parts[i] = "!" + r.key
		case r.op == "in" && len(r.values) == 1:
			parts[i] = r.key + "=" + r.values[0]
		case r.op == "notin" && len(r.values) == 1:
			parts[i] = r.key + "!=" + r.values[0]
		default:
			parts[i] = r.key + " " + r.op + " (" + strings.Join(r.values, ",") + ")"
		}
	}
	return strings.Join(parts, ",")
}

// MarshalText renders the canonical form.
func (s Selector) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText parses a selector.
func (s *Selector) UnmarshalText(b []byte) error {
	v, err := ParseSelector(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// IsZero reports the empty selector (for omitempty and omitzero).
func (s Selector) IsZero() bool { return s.Empty() }
