package scorecard

import (
	"fmt"
	"strconv"
	"sync"
	"time"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
)

// Fact is one built-in fact a rule can read: its CEL variable and type.
type Fact struct {
	Name string
	Type string // int, double, bool or string
	Doc  string
}

// BuiltinFacts are the facts every service has (docs/scorecards.md lists
// them); a KPI fact is computed over the last 90 days.
var BuiltinFacts = []Fact{
	{"tier", "int", "the service's tier (1 most critical to 4)"},
	{"team", "string", "the owning team"},
	{"hosts", "int", "hosts the service runs on"},
	{"open", "int", "open findings"},
	{"open_p1", "int", "open P1 findings"},
	{"open_p2", "int", "open P2 findings"},
	{"open_p3", "int", "open P3 findings"},
	{"open_p4", "int", "open P4 findings"},
	{"overdue", "int", "open findings past their due date"},
	{"overdue_p1", "int", "overdue P1 findings"},
	{"overdue_p2", "int", "overdue P2 findings"},
	{"overdue_p3", "int", "overdue P3 findings"},
	{"overdue_p4", "int", "overdue P4 findings"},
	{"oldest_p1_days", "int", "days the oldest open P1 has been open (0: none)"},
	{"oldest_p2_days", "int", "days the oldest open P2 has been open (0: none)"},
	{"kev", "int", "open findings in CISA KEV"},
	{"agents_not_reporting", "int", "hosts whose agent has not checked in within the stale interval"},
	{"pending_reboots", "int", "hosts that need a reboot"},
	{"kernel_behind", "int", "hosts running an older kernel than the newest installed"},
	{"os_eol", "int", "hosts whose OS release is past its end of life (the shipped table)"},
	{"inventory_age_days", "int", "days since the service's application inventory was uploaded (-1: none uploaded)"},
	{"exceptions", "int", "active exceptions that name the service"},
	{"exception_expiry_days", "int", "days to the nearest expiry of those exceptions (-1: none)"},
	{"mttp_days", "double", "mean time to patch in days, last 90 days (0: nothing patched)"},
	{"sla_compliance", "double", "share (0..1) of findings patched within SLA, last 90 days (1: none due)"},
	{"patch_success_rate", "double", "share (0..1) of jobs that succeeded, last 90 days (1: no jobs)"},
}

// Facts are one entity's facts: the built-in ones by name and the custom
// ones pushed (Custom, as custom["name"] in rules).
type Facts struct {
	Values map[string]any
	Custom map[string]any
}

// ParseValue reads a pushed fact's value: a number, true or false, else
// the string itself.
func ParseValue(s string) any {
	if i, err := strconv.ParseInt(s, 10, 64); err == nil {
		return i
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		return f
	}
	if b, err := strconv.ParseBool(s); err == nil && (s == "true" || s == "false") {
		return b
	}
	return s
}

var (
	envMu sync.Mutex
	envs  = map[string]*cel.Env{}
)

// celEnv is the CEL environment of an entity kind's facts, built once.
func celEnv(entity string) (*cel.Env, error) {
	envMu.Lock()
	defer envMu.Unlock()
	if e := envs[entity]; e != nil {
		return e, nil
	}
	opts := []cel.EnvOption{cel.Variable("custom", cel.MapType(cel.StringType, cel.DynType))}
	for _, f := range FactsFor(entity) {
		var t *cel.Type
		switch f.Type {
		case "int":
			t = cel.IntType
		case "double":
			t = cel.DoubleType
		case "bool":
			t = cel.BoolType
		default:
			t = cel.StringType
		}
		opts = append(opts, cel.Variable(f.Name, t))
	}
	e, err := cel.NewEnv(opts...)
	if err != nil {
		return nil, err
	}
	envs[entity] = e
	return e, nil
}

// compile type-checks a rule's expression over an entity kind's facts:
// it must be a bool.
func compile(entity, expr string) (cel.Program, error) {
	e, err := celEnv(entity)
	if err != nil {
		return nil, err
	}
	ast, iss := e.Compile(expr)
	if iss.Err() != nil {
		return nil, fmt.Errorf("CEL: %s", iss.Err())
	}
	if ast.OutputType() != cel.BoolType {
		return nil, fmt.Errorf("CEL: %q is of type %s: want a bool", expr, ast.OutputType())
	}
	return e.Program(ast, cel.EvalOptions(cel.OptOptimize), cel.InterruptCheckFrequency(100))
}

// Compiled is a scorecard with its rules compiled once.
type Compiled struct {
	Name  string
	Spec  *Spec
	progs []cel.Program
}

// Compile compiles a checked scorecard's rules.
func Compile(name string, s *Spec) (*Compiled, error) {
	c := &Compiled{Name: name, Spec: s}
	for _, r := range s.Rules {
		p, err := compile(s.entity(), r.Expr)
		if err != nil {
			return nil, fmt.Errorf("scorecard %s: rule %s: %w", name, r.Name, err)
		}
		c.progs = append(c.progs, p)
	}
	return c, nil
}

// RuleResult is one rule's outcome for one entity.
type RuleResult struct {
	Rule  string `json:"rule"`
	Level string `json:"level"`
	Pass  bool   `json:"pass"`
	// Exempt is the exemption's reason when one covers a failing rule.
	Exempt string `json:"exempt,omitempty"`
	// Error is why the rule could not be evaluated (a custom fact not
	// pushed, of the wrong type): the rule fails.
	Error   string `json:"error,omitempty"`
	Message string `json:"message,omitempty"`
	Patch   bool   `json:"patch,omitempty"`
}

// Result is an entity's standing on a scorecard.
type Result struct {
	Scorecard string `json:"scorecard"`
	Entity    string `json:"entity"`
	// Level is the highest level whose rules, and all below, pass ("":
	// not even the first).
	Level string `json:"level"`
	// Score is the weighted share of rules passed, 0 to 100; exempted
	// rules are left out of it.
	Score float64      `json:"score"`
	Rules []RuleResult `json:"rules"`
}

// Same tells whether two results are the same standing (what history
// keeps a new row for).
func (r Result) Same(o Result) bool {
	if r.Level != o.Level || r.Score != o.Score || len(r.Rules) != len(o.Rules) {
		return false
	}
	for i := range r.Rules {
		a, b := r.Rules[i], o.Rules[i]
		if a.Rule != b.Rule || a.Pass != b.Pass || a.Exempt != b.Exempt {
			return false
		}
	}
	return true
}

// Failing are the rules that fail and are not exempted.
func (r Result) Failing() []RuleResult {
	var out []RuleResult
	for _, rr := range r.Rules {
		if !rr.Pass && rr.Exempt == "" {
			out = append(out, rr)
		}
	}
	return out
}

// Evaluate scores one entity at now: exemptions that expired before now
// stop counting.
func (c *Compiled) Evaluate(entity string, f Facts, now time.Time) Result {
	act := map[string]any{"custom": f.Custom}
	if f.Custom == nil {
		act["custom"] = map[string]any{}
	}
	for _, bf := range FactsFor(c.Spec.entity()) {
		v, ok := f.Values[bf.Name]
		if !ok {
			v = zero(bf.Type)
		}
		act[bf.Name] = v
	}
	res := Result{Scorecard: c.Name, Entity: entity}
	var total, passed float64
	failedAt := len(c.Spec.Levels)
	for i, r := range c.Spec.Rules {
		rr := RuleResult{Rule: r.Name, Level: r.Level, Patch: r.Patch}
		out, _, err := c.progs[i].Eval(act)
		switch {
		case err != nil:
			rr.Error = err.Error()
		case out.Type() == types.BoolType:
			rr.Pass = out.Value().(bool)
		default:
			rr.Error = fmt.Sprintf("evaluated to %v, not a bool", out.Value())
		}
		if !rr.Pass {
			rr.Message = r.Message
			if ex := c.exemption(r.Name, entity, now); ex != nil {
				rr.Exempt = ex.Reason
			}
		}
		switch {
		case rr.Exempt != "":
		case rr.Pass:
			total += r.weight()
			passed += r.weight()
		default:
			total += r.weight()
			failedAt = min(failedAt, c.Spec.levelIndex(r.Level))
		}
		res.Rules = append(res.Rules, rr)
	}
	if failedAt > 0 {
		res.Level = c.Spec.Levels[failedAt-1].Name
	}
	res.Score = 100
	if total > 0 {
		res.Score = float64(int(passed/total*1000+0.5)) / 10
	}
	return res
}

func (c *Compiled) exemption(rule, entity string, now time.Time) *Exemption {
	for i, e := range c.Spec.Exemptions {
		if e.Rule == rule && e.key(c.Spec.entity()) == entity && now.Before(e.Expires.End()) {
			return &c.Spec.Exemptions[i]
		}
	}
	return nil
}

// NextExpiry is the first exemption end after now (zero: none): the
// moment results change by themselves.
func (c *Compiled) NextExpiry(now time.Time) time.Time {
	var next time.Time
	for _, e := range c.Spec.Exemptions {
		if end := e.Expires.End(); end.After(now) && (next.IsZero() || end.Before(next)) {
			next = end
		}
	}
	return next
}

// Passes tells whether a result meets a level (or, with rules, passes
// each of them; exempted rules count as passed).
func Passes(r Result, s *Spec, level string, rules []string) bool {
	if level != "" {
		return s.levelIndex(r.Level) >= s.levelIndex(level) && s.levelIndex(level) >= 0
	}
	for _, name := range rules {
		for _, rr := range r.Rules {
			if rr.Rule == name && !rr.Pass && rr.Exempt == "" {
				return false
			}
		}
	}
	return true
}

func zero(t string) any {
	switch t {
	case "int":
		return int64(0)
	case "double":
		return 0.0
	case "bool":
		return false
	}
	return ""
}
