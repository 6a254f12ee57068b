package rollout

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/patchbay/patchbay/duration"
	"github.com/patchbay/patchbay/policy"
)

// Gates are what a strategy asks of the monitoring before, during and
// after each ring: Prometheus checks and Alertmanager alerts, evaluated
// by the server (the leader's scheduler), never by the agents.
type Gates struct {
	Prometheus []PromGate    `yaml:"prometheus,omitempty" json:"prometheus,omitempty"`
	Alerts     []AlertGate   `yaml:"alerts,omitempty" json:"alerts,omitempty"`
	Comparison []CompareGate `yaml:"comparison,omitempty" json:"comparison,omitempty"`
}

// CompareGate compares, while a ring bakes, the ring's patched hosts with
// the not-yet-patched hosts of the same services (the baseline): Query
// (rendered per host like a PromGate's) is read over the last Range at
// Step on both groups, and a one-sided Mann-Whitney U test (MannWhitney)
// with p below Alpha that the patched values are worse (higher, or lower
// with worse: lower) fails the measurement. Fewer than MinSamples values
// on either side is no verdict (the measurement passes, and says so); a
// ring without a baseline (the last) passes over the gate.
type CompareGate struct {
	Name          string            `yaml:"name" json:"name" policy:"required"`
	Query         string            `yaml:"query" json:"query" policy:"required"`
	Range         duration.Duration `yaml:"range,omitempty" json:"range,omitempty"`
	Step          duration.Duration `yaml:"step,omitempty" json:"step,omitempty"`
	Worse         string            `yaml:"worse,omitempty" json:"worse,omitempty"`
	Alpha         float64           `yaml:"alpha,omitempty" json:"alpha,omitempty"`
	MinSamples    int               `yaml:"minSamples,omitempty" json:"minSamples,omitempty"`
	Interval      duration.Duration `yaml:"interval,omitempty" json:"interval,omitempty"`
	Count         int               `yaml:"count,omitempty" json:"count,omitempty"`
	FailureLimit  int               `yaml:"failureLimit,omitempty" json:"failureLimit,omitempty"`
	OnUnreachable OnUnreachable     `yaml:"onUnreachable,omitempty" json:"onUnreachable,omitempty"`
}

func (c *CompareGate) rng() time.Duration  { return durOr(c.Range, 10*time.Minute) }
func (c *CompareGate) step() time.Duration { return durOr(c.Step, 30*time.Second) }
func (c *CompareGate) alpha() float64 {
	if c.Alpha == 0 {
		return 0.05
	}
	return c.Alpha
}
func (c *CompareGate) minSamples() int {
	if c.MinSamples == 0 {
		return 10
	}
	return c.MinSamples
}

// prom is the gate's measurement schedule as a PromGate's (bake only).
func (c *CompareGate) prom() *PromGate {
	return &PromGate{Name: c.Name, Query: c.Query, Phases: []string{PhaseBake}, Interval: c.Interval, Count: c.Count, FailureLimit: c.FailureLimit, OnUnreachable: c.OnUnreachable}
}

func durOr(d duration.Duration, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return time.Duration(d)
}

// Gate phases.
const (
	// PhaseBefore: measured before a ring starts; its jobs wait until the
	// gate has taken its count of measurements within its failure limit.
	PhaseBefore = "before"
	// PhaseBake: measured while a ring bakes; the bake ends only when the
	// gate has taken its count.
	PhaseBake = "bake"
	// PhaseBackground: measured every interval over the hosts patched so
	// far, for the whole rollout.
	PhaseBackground = "background"
)

// OnUnreachable is what a gate does when its monitoring cannot be reached.
type OnUnreachable string

// What a gate does when the monitoring is down.
const (
	// FailClosed (the default) counts the measurement as failed.
	FailClosed OnUnreachable = "fail"
	// FailOpen counts the measurement as passed (the gate's state says
	// it passed while unreachable, and why).
	FailOpen OnUnreachable = "pass"
)

// PromGate is a Prometheus check, after Argo Rollouts' AnalysisTemplate:
// Query (PromQL; {{ .Host }}, {{ .Service }}, {{ .Ring }} substituted per
// host of the ring, identical renderings queried once) measured every
// Interval; each sample of every rendering must meet Condition; more
// than FailureLimit failed measurements halt the rollout. Before and bake
// phases take Count measurements.
type PromGate struct {
	Name          string            `yaml:"name" json:"name" policy:"required"`
	Query         string            `yaml:"query" json:"query" policy:"required"`
	Condition     string            `yaml:"condition" json:"condition" policy:"required"`
	Phases        []string          `yaml:"phases,omitempty" json:"phases,omitempty"`
	Interval      duration.Duration `yaml:"interval,omitempty" json:"interval,omitempty"`
	Count         int               `yaml:"count,omitempty" json:"count,omitempty"`
	FailureLimit  int               `yaml:"failureLimit,omitempty" json:"failureLimit,omitempty"`
	OnUnreachable OnUnreachable     `yaml:"onUnreachable,omitempty" json:"onUnreachable,omitempty"`
}

// AlertGate halts a ring when an alert matching Matchers (Alertmanager's
// own matcher syntax, passed to its API as filters; the same
// substitutions as a query) starts firing after the ring started, and
// keeps a ring from starting while one fires.
type AlertGate struct {
	Name          string        `yaml:"name" json:"name" policy:"required"`
	Matchers      []string      `yaml:"matchers" json:"matchers" policy:"required"`
	OnUnreachable OnUnreachable `yaml:"onUnreachable,omitempty" json:"onUnreachable,omitempty"`
}

// Condition is a parsed success condition: "< 0.05", ">= 0.99".
type Condition struct {
	Op        string
	Threshold float64
}

// ParseCondition parses "OP NUMBER" (OP one of < <= > >= == !=).
func ParseCondition(s string) (Condition, error) {
	t := strings.TrimSpace(s)
	for _, op := range []string{"<=", ">=", "==", "!=", "<", ">"} {
		if v, ok := strings.CutPrefix(t, op); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil || math.IsNaN(f) {
				return Condition{}, fmt.Errorf("%q: want an operator and a number (< 0.05)", s)
			}
			return Condition{Op: op, Threshold: f}, nil
		}
	}
	return Condition{}, fmt.Errorf("%q: want one of < <= > >= == != and a number (< 0.05)", s)
}

// Met says whether v meets the condition (NaN never does).
func (c Condition) Met(v float64) bool {
	switch c.Op {
	case "<":
		return v < c.Threshold
	case "<=":
		return v <= c.Threshold
	case ">":
		return v > c.Threshold
	case ">=":
		return v >= c.Threshold
	case "==":
		return v == c.Threshold
	case "!=":
		return v != c.Threshold
	}
	return false
}

func (c Condition) String() string { return c.Op + " " + strconv.FormatFloat(c.Threshold, 'g', -1, 64) }

// GateVars are a gate's substitutions for one host of a ring.
type GateVars struct {
	Host, Service, Ring string
}

func renderGate(name, text string) (*template.Template, error) {
	return template.New(name).Option("missingkey=error").Parse(text)
}

// render substitutes vars in text; distinct renderings, in order.
func render(text string, vars []GateVars) ([]string, error) {
	t, err := renderGate("gate", text)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, v := range vars {
		var b bytes.Buffer
		if err := t.Execute(&b, v); err != nil {
			return nil, err
		}
		if s := b.String(); !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out, nil
}

func checkTemplate(c *policy.Checker, at, text string) {
	t, err := renderGate("gate", text)
	if err == nil {
		err = t.Execute(&bytes.Buffer{}, GateVars{Host: "h", Service: "s", Ring: "r"})
	}
	if err != nil {
		c.Errorf(at, "%v (the substitutions are {{ .Host }}, {{ .Service }}, {{ .Ring }})", err)
	}
}

// needServices says whether the gates read the hosts' services: a
// {{ .Service }} substitution, or a comparison (its baseline).
func (g *Gates) needServices() bool {
	if g == nil {
		return false
	}
	if len(g.Comparison) > 0 {
		return true
	}
	uses := func(t string) bool { return strings.Contains(t, ".Service") }
	for _, p := range g.Prometheus {
		if uses(p.Query) {
			return true
		}
	}
	for _, a := range g.Alerts {
		if slices.ContainsFunc(a.Matchers, uses) {
			return true
		}
	}
	return false
}

// check validates the gates of a strategy.
func (g *Gates) check(c *policy.Checker) {
	names := map[string]bool{}
	for i, p := range g.Prometheus {
		at := fmt.Sprintf("spec.gates.prometheus[%d]", i)
		checkName(c, names, at, p.Name)
		checkQuery(c, at, p.Query)
		if _, err := ParseCondition(p.Condition); err != nil {
			c.Errorf(at+".condition", "%v", err)
		}
		for j, ph := range p.Phases {
			if ph != PhaseBefore && ph != PhaseBake && ph != PhaseBackground {
				c.Errorf(fmt.Sprintf("%s.phases[%d]", at, j), "%q: want before, bake or background", ph)
			}
		}
		checkCadence(c, at, p.Interval, p.Count, p.FailureLimit, p.OnUnreachable)
	}
	for i, cg := range g.Comparison {
		at := fmt.Sprintf("spec.gates.comparison[%d]", i)
		checkName(c, names, at, cg.Name)
		checkQuery(c, at, cg.Query)
		if cg.Worse != "" && cg.Worse != "higher" && cg.Worse != "lower" {
			c.Errorf(at+".worse", "%q: want higher (the default) or lower", cg.Worse)
		}
		if cg.Alpha < 0 || cg.Alpha >= 0.5 {
			c.Errorf(at+".alpha", "%g: want a significance level above 0 and below 0.5 (0.05 by default)", cg.Alpha)
		}
		if cg.MinSamples < 0 || cg.MinSamples == 1 || cg.MinSamples == 2 {
			c.Errorf(at+".minSamples", "%d: want at least 3 values a side (10 by default)", cg.MinSamples)
		}
		if cg.Step != 0 && time.Duration(cg.Step) < time.Second {
			c.Errorf(at+".step", "%s: want at least 1s", cg.Step)
		}
		if cg.Range != 0 && time.Duration(cg.Range) < max(time.Duration(cg.Step), time.Second)*3 {
			c.Errorf(at+".range", "%s: want at least three steps", cg.Range)
		}
		checkCadence(c, at, cg.Interval, cg.Count, cg.FailureLimit, cg.OnUnreachable)
	}
	for i, a := range g.Alerts {
		at := fmt.Sprintf("spec.gates.alerts[%d]", i)
		checkName(c, names, at, a.Name)
		if len(a.Matchers) == 0 {
			c.Errorf(at+".matchers", "empty: name the alerts the gate watches (host=\"{{ .Host }}\")")
		}
		for j, m := range a.Matchers {
			mp := fmt.Sprintf("%s.matchers[%d]", at, j)
			if err := checkMatcher(m); err != nil {
				c.Errorf(mp, "%v", err)
			} else {
				checkTemplate(c, mp, m)
			}
		}
		checkUnreachable(c, at, a.OnUnreachable)
	}
}

// checkName refuses a gate name given twice in one strategy.
func checkName(c *policy.Checker, names map[string]bool, at, name string) {
	if names[name] {
		c.Errorf(at+".name", "%q: given twice (gate names are unique in a strategy)", name)
	}
	names[name] = true
}

// checkQuery refuses an empty PromQL expression and checks its
// substitutions.
func checkQuery(c *policy.Checker, at, q string) {
	if strings.TrimSpace(q) == "" {
		c.Errorf(at+".query", "empty: a PromQL expression")
		return
	}
	checkTemplate(c, at+".query", q)
}

// checkCadence checks what the measured gates share: how often they
// measure, how many measurements, how many may fail, and what an
// unreachable component means.
func checkCadence(c *policy.Checker, at string, interval duration.Duration, count, failureLimit int, o OnUnreachable) {
	if interval != 0 && time.Duration(interval) < time.Second {
		c.Errorf(at+".interval", "%s: want at least 1s", interval)
	}
	if count < 0 || count > 100 {
		c.Errorf(at+".count", "%d: want 1 to 100 measurements", count)
	}
	if failureLimit < 0 {
		c.Errorf(at+".failureLimit", "%d: want 0 or more", failureLimit)
	}
	checkUnreachable(c, at, o)
}

func checkUnreachable(c *policy.Checker, at string, o OnUnreachable) {
	if o != "" && o != FailClosed && o != FailOpen {
		c.Errorf(at+".onUnreachable", "%q: want fail (the default) or pass", o)
	}
}

// checkMatcher checks the shape of an Alertmanager matcher: a label name,
// one of = != =~ !~, and a value (quoted or not); Alertmanager itself
// parses it when it is queried.
func checkMatcher(m string) error {
	i := strings.IndexAny(m, "=!")
	if i <= 0 {
		return fmt.Errorf("%q: want label=\"value\" (or !=, =~, !~)", m)
	}
	name := strings.TrimSpace(m[:i])
	for k, r := range name {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || k > 0 && r >= '0' && r <= '9') {
			return fmt.Errorf("%q: %q is not a label name", m, name)
		}
	}
	rest := m[i:]
	for _, op := range []string{"=~", "!~", "!=", "="} {
		if v, ok := strings.CutPrefix(rest, op); ok {
			v = strings.TrimSpace(v)
			if strings.HasPrefix(v, `"`) && (len(v) < 2 || !strings.HasSuffix(v, `"`)) {
				return fmt.Errorf("%q: unbalanced quotes", m)
			}
			return nil
		}
	}
	return fmt.Errorf("%q: want label=\"value\" (or !=, =~, !~)", m)
}

func (p *PromGate) phases() []string {
	if len(p.Phases) == 0 {
		return []string{PhaseBefore, PhaseBake, PhaseBackground}
	}
	return p.Phases
}

func (p *PromGate) interval() time.Duration {
	if p.Interval == 0 {
		return time.Minute
	}
	return time.Duration(p.Interval)
}

func (p *PromGate) count() int { return max(p.Count, 1) }

// Sample is one series of a query's result.
type Sample struct {
	Labels map[string]string `json:"labels,omitempty"`
	Value  float64           `json:"value"`
}

// FiringAlert is an alert Alertmanager reports as active.
type FiringAlert struct {
	Labels      map[string]string `json:"labels"`
	StartsAt    time.Time         `json:"starts_at"`
	Fingerprint string            `json:"fingerprint,omitempty"`
}

// ErrUnreachable wraps the error of a monitoring component that could not
// be reached (connection refused, timeout, a 5xx): what a gate's
// onUnreachable decides on.
var ErrUnreachable = errors.New("unreachable")

// Monitor is what the gates read: an instant Prometheus query and the
// active alerts matching Alertmanager matchers. Errors name the component
// ("prometheus http://…: …") and wrap ErrUnreachable when it could not
// be reached; package monitor implements it over HTTP.
type Monitor interface {
	Query(ctx context.Context, promql string) ([]Sample, error)
	// QueryRange reads the values of every series of promql over the last
	// rng at step.
	QueryRange(ctx context.Context, promql string, rng, step time.Duration) ([]float64, error)
	Alerts(ctx context.Context, matchers []string) ([]FiringAlert, error)
}

// GateState is a gate's measurements in the current phase, kept in the
// rollout's machine so a new leader goes on counting.
type GateState struct {
	Gate     string    `json:"gate"`
	Kind     string    `json:"kind"` // prometheus or alerts
	Phase    string    `json:"phase"`
	Ring     int       `json:"ring"`
	Taken    int       `json:"taken"`
	Failures int       `json:"failures"`
	Last     time.Time `json:"last,omitzero"`
	// Passed: a before or bake phase has taken its count within its limit.
	Passed bool `json:"passed,omitempty"`
	// Result is the last measurement: "ok", "failed", "unreachable
	// (skipped)", with its values and the reason of a failure.
	Result string        `json:"result,omitempty"`
	Query  []string      `json:"query,omitempty"`
	Values []Sample      `json:"values,omitempty"`
	Alerts []FiringAlert `json:"alerts,omitempty"`
	Reason string        `json:"reason,omitempty"`
}

// GateHalt is the gate failure that halted a rollout: the query, the
// values and the threshold, for the audit entry and the notification.
type GateHalt struct {
	Gate      string        `json:"gate"`
	Kind      string        `json:"kind"`
	Phase     string        `json:"phase"`
	Query     []string      `json:"query,omitempty"`
	Condition string        `json:"condition,omitempty"`
	Values    []Sample      `json:"values,omitempty"`
	Alerts    []FiringAlert `json:"alerts,omitempty"`
	Failures  int           `json:"failures,omitempty"`
	Limit     int           `json:"failure_limit"`
	Reason    string        `json:"reason"`
}

// gateOutcome is what the gates decided in a step.
type gateOutcome struct {
	halt    *GateHalt
	changed bool // a measurement was taken (the machine must be written)
}

// gatesPassed says whether the current ring's gates of a before or bake
// phase let it go on: every Prometheus gate of the phase has taken its
// count within its failure limit, and (before) every alert gate has
// found nothing firing.
func gatesPassed(g *Gates, m *Machine, phase string) bool {
	if g == nil {
		return true
	}
	for i := range g.Prometheus {
		pg := &g.Prometheus[i]
		if !slices.Contains(pg.phases(), phase) {
			continue
		}
		st := m.GateStates["prometheus/"+pg.Name+"/"+phase]
		if st == nil || st.Ring != m.Ring || !st.Passed {
			return false
		}
	}
	if phase == PhaseBake {
		for _, cg := range g.Comparison {
			st := m.GateStates["comparison/"+cg.Name+"/"+phase]
			if st == nil || st.Ring != m.Ring || !st.Passed {
				return false
			}
		}
	}
	if phase != PhaseBefore {
		return true
	}
	for _, ag := range g.Alerts {
		st := m.GateStates["alerts/"+ag.Name+"/"+phase]
		if st == nil || st.Ring != m.Ring || st.Taken == 0 || len(st.Alerts) > 0 || st.Failures > 0 {
			return false
		}
	}
	return true
}

// maxValues bounds the samples kept in a gate's state and halt.
const maxValues = 20

// evalGates takes the measurements due at now for the machine's state.
// vars gives the substitutions of a ring's hosts (-1: the hosts patched
// so far, for the background phase).
func evalGates(ctx context.Context, mon Monitor, g *Gates, m *Machine, now time.Time, vars func(ring int) []GateVars, baseline func() []GateVars) gateOutcome {
	var out gateOutcome
	if g == nil {
		return out
	}
	var phases []string
	switch m.State {
	case Running:
		if m.RingStarted.IsZero() {
			phases = append(phases, PhaseBefore)
		}
		phases = append(phases, PhaseBackground)
	case Baking:
		phases = append(phases, PhaseBake, PhaseBackground)
	case AwaitingPromotion:
		phases = append(phases, PhaseBackground)
	default:
		return out
	}
	if m.GateStates == nil {
		m.GateStates = map[string]*GateState{}
	}
	state := func(kind, name, phase string) *GateState {
		key := kind + "/" + name + "/" + phase
		st := m.GateStates[key]
		if st == nil || (phase != PhaseBackground && st.Ring != m.Ring) {
			st = &GateState{Gate: name, Kind: kind, Phase: phase, Ring: m.Ring}
			m.GateStates[key] = st
			out.changed = true
		}
		return st
	}
	for _, phase := range phases {
		ring := m.Ring
		if phase == PhaseBackground {
			ring = -1
		}
		vs := vars(ring)
		for i := range g.Prometheus {
			pg := &g.Prometheus[i]
			if !slices.Contains(pg.phases(), phase) {
				continue
			}
			st := state("prometheus", pg.Name, phase)
			if st.Passed {
				continue
			}
			if !st.Last.IsZero() && now.Sub(st.Last) < pg.interval() {
				continue
			}
			if len(vs) == 0 {
				continue // no host patched yet
			}
			out.changed = true
			if h := measureProm(ctx, mon, pg, st, vs, now); h != nil && out.halt == nil {
				out.halt = h
			}
			if phase != PhaseBackground && st.Taken-st.Failures >= pg.count() && st.Failures <= pg.FailureLimit {
				st.Passed = true
			}
		}
		if phase == PhaseBake {
			for i := range g.Comparison {
				cg := &g.Comparison[i]
				pg := cg.prom()
				st := state("comparison", cg.Name, phase)
				if st.Passed || !st.Last.IsZero() && now.Sub(st.Last) < pg.interval() {
					continue
				}
				out.changed = true
				if h := measureCompare(ctx, mon, cg, st, vs, baseline(), now); h != nil && out.halt == nil {
					out.halt = h
				}
				if st.Taken-st.Failures >= pg.count() && st.Failures <= pg.FailureLimit {
					st.Passed = true
				}
			}
			continue // alerts are watched by the running and background phases
		}
		for i := range g.Alerts {
			ag := &g.Alerts[i]
			st := state("alerts", ag.Name, phase)
			if len(vs) == 0 {
				continue
			}
			out.changed = true
			firing, h := measureAlerts(ctx, mon, ag, st, vs, now)
			if h != nil {
				if out.halt == nil {
					out.halt = h
				}
				continue
			}
			if len(firing) == 0 {
				continue
			}
			if phase == PhaseBefore {
				// Pre-existing alerts block the ring's start (gatesPassed).
				st.Result = fmt.Sprintf("%d firing, blocking the start of the ring: %s", len(firing), alertNames(firing))
				continue
			}
			// Background: alerts that started after the rollout's first job
			// halt it.
			var since time.Time
			for _, j := range m.Jobs {
				if j.Attempt > 0 && (since.IsZero() || j.Started.Before(since)) {
					since = j.Started
				}
			}
			var late []FiringAlert
			for _, a := range firing {
				if !since.IsZero() && !a.StartsAt.Before(since) {
					late = append(late, a)
				}
			}
			if len(late) > 0 && out.halt == nil {
				st.Result = "failed"
				st.Reason = fmt.Sprintf("gate %s: %d matching alert(s) started firing after the rollout's first job (%s): %s", ag.Name, len(late), since.Format(time.RFC3339), alertNames(late))
				out.halt = &GateHalt{Gate: ag.Name, Kind: "alerts", Phase: phase, Query: st.Query, Alerts: late, Reason: st.Reason}
			}
		}
	}
	return out
}

func alertNames(as []FiringAlert) string {
	var names []string
	for _, a := range as {
		n := a.Labels["alertname"]
		if h := a.Labels["host"]; h != "" {
			n += "{host=" + h + "}"
		}
		if !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

func measureProm(ctx context.Context, mon Monitor, pg *PromGate, st *GateState, vs []GateVars, now time.Time) *GateHalt {
	cond, _ := ParseCondition(pg.Condition)
	queries, err := render(pg.Query, vs)
	st.Last, st.Query, st.Values, st.Reason = now, queries, nil, ""
	fail := func(reason string) *GateHalt {
		st.Taken++
		st.Failures++
		st.Result, st.Reason = "failed", reason
		if st.Failures > pg.FailureLimit {
			return &GateHalt{Gate: pg.Name, Kind: "prometheus", Phase: st.Phase, Query: queries, Condition: cond.String(), Values: st.Values,
				Failures: st.Failures, Limit: pg.FailureLimit, Reason: fmt.Sprintf("gate %s (%s): %s; %d failed measurement(s), more than its limit of %d", pg.Name, st.Phase, reason, st.Failures, pg.FailureLimit)}
		}
		return nil
	}
	if err != nil {
		return fail(err.Error())
	}
	if mon == nil {
		err = fmt.Errorf("prometheus: %w: no --prometheus-url configured", ErrUnreachable)
	}
	var bad []string
	for _, q := range queries {
		if err != nil {
			break
		}
		var ss []Sample
		if ss, err = mon.Query(ctx, q); err != nil {
			break
		}
		if len(ss) == 0 {
			bad = append(bad, fmt.Sprintf("no data for %s", q))
		}
		for _, s := range ss {
			if len(st.Values) < maxValues {
				st.Values = append(st.Values, s)
			}
			if !cond.Met(s.Value) {
				bad = append(bad, fmt.Sprintf("%s: %s = %g, want %s", q, seriesName(s.Labels), s.Value, cond))
			}
		}
	}
	switch {
	case errors.Is(err, ErrUnreachable) && pg.OnUnreachable == FailOpen:
		st.Taken++ // fail-open: the measurement passes
		st.Result, st.Reason = "passed while unreachable (onUnreachable: pass)", err.Error()
		return nil
	case err != nil:
		return fail(err.Error())
	case len(bad) > 0:
		return fail(strings.Join(bad, "; "))
	}
	st.Taken++
	st.Result = "ok"
	return nil
}

func measureAlerts(ctx context.Context, mon Monitor, ag *AlertGate, st *GateState, vs []GateVars, now time.Time) ([]FiringAlert, *GateHalt) {
	st.Last, st.Alerts, st.Reason, st.Result = now, nil, "", "ok"
	st.Taken++
	halt := func(reason string) *GateHalt {
		st.Failures++
		st.Result, st.Reason = "failed", reason
		return &GateHalt{Gate: ag.Name, Kind: "alerts", Phase: st.Phase, Query: st.Query, Reason: fmt.Sprintf("gate %s (%s): %s", ag.Name, st.Phase, reason)}
	}
	// Each host's rendering of the matchers is one filter.
	var sets [][]string
	st.Query = nil
	for _, v := range vs {
		var set []string
		for _, mt := range ag.Matchers {
			r, err := render(mt, []GateVars{v})
			if err != nil {
				return nil, halt(err.Error())
			}
			set = append(set, r[0])
		}
		if f := strings.Join(set, ","); !slices.Contains(st.Query, f) {
			st.Query = append(st.Query, f)
			sets = append(sets, set)
		}
	}
	var err error
	if mon == nil {
		err = fmt.Errorf("alertmanager: %w: no --alertmanager-url configured", ErrUnreachable)
	}
	var firing []FiringAlert
	seen := map[string]bool{}
	for _, set := range sets {
		if err != nil {
			break
		}
		var as []FiringAlert
		if as, err = mon.Alerts(ctx, set); err != nil {
			break
		}
		for _, a := range as {
			k := a.Fingerprint + seriesName(a.Labels)
			if !seen[k] {
				seen[k] = true
				firing = append(firing, a)
			}
		}
	}
	switch {
	case errors.Is(err, ErrUnreachable) && ag.OnUnreachable == FailOpen:
		st.Result, st.Reason = "passed while unreachable (onUnreachable: pass)", err.Error()
		return nil, nil
	case err != nil:
		return nil, halt(err.Error())
	}
	st.Alerts = firing
	if len(firing) > 0 {
		st.Result = fmt.Sprintf("%d firing", len(firing))
	}
	return firing, nil
}

// seriesName renders labels as PromQL does: {a="1", b="2"}.
func seriesName(l map[string]string) string {
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("{")
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s=%q", k, l[k])
	}
	b.WriteString("}")
	return b.String()
}

func measureCompare(ctx context.Context, mon Monitor, cg *CompareGate, st *GateState, patched, base []GateVars, now time.Time) *GateHalt {
	st.Last, st.Values, st.Reason = now, nil, ""
	pq, err := render(cg.Query, patched)
	var bq []string
	if err == nil {
		bq, err = render(cg.Query, base)
	}
	st.Query = append(slices.Clone(pq), bq...)
	fail := func(reason string) *GateHalt {
		st.Taken++
		st.Failures++
		st.Result, st.Reason = "failed", reason
		if st.Failures > cg.FailureLimit {
			return &GateHalt{Gate: cg.Name, Kind: "comparison", Phase: st.Phase, Query: st.Query, Condition: fmt.Sprintf("Mann-Whitney U, patched not %s than the baseline at p < %g", cg.worse(), cg.alpha()),
				Values: st.Values, Failures: st.Failures, Limit: cg.FailureLimit,
				Reason: fmt.Sprintf("gate %s (%s): %s; %d failed measurement(s), more than its limit of %d", cg.Name, st.Phase, reason, st.Failures, cg.FailureLimit)}
		}
		return nil
	}
	pass := func(result string) *GateHalt {
		st.Taken++
		st.Result = result
		return nil
	}
	if err != nil {
		return fail(err.Error())
	}
	if len(base) == 0 {
		return pass("ok: no baseline (no host of the same services left unpatched)")
	}
	if mon == nil {
		err = fmt.Errorf("prometheus: %w: no --prometheus-url configured", ErrUnreachable)
	}
	read := func(qs []string) ([]float64, error) {
		var vs []float64
		for _, q := range qs {
			if err != nil {
				return nil, err
			}
			v, err := mon.QueryRange(ctx, q, cg.rng(), cg.step())
			if err != nil {
				return nil, err
			}
			vs = append(vs, v...)
		}
		return vs, nil
	}
	var x, y []float64
	if err == nil {
		x, err = read(pq)
	}
	if err == nil {
		y, err = read(bq)
	}
	switch {
	case errors.Is(err, ErrUnreachable) && cg.OnUnreachable == FailOpen:
		st.Reason = err.Error()
		return pass("passed while unreachable (onUnreachable: pass)")
	case err != nil:
		return fail(err.Error())
	}
	if len(x) < cg.minSamples() || len(y) < cg.minSamples() {
		return pass(fmt.Sprintf("ok: no verdict, %d patched and %d baseline values (fewer than minSamples %d)", len(x), len(y), cg.minSamples()))
	}
	if cg.worse() == "lower" {
		x, y = y, x
	}
	u, p := MannWhitney(x, y)
	if cg.worse() == "lower" {
		x, y = y, x
	}
	st.Values = []Sample{{Labels: map[string]string{"group": "patched", "stat": "median"}, Value: median(x)},
		{Labels: map[string]string{"group": "baseline", "stat": "median"}, Value: median(y)},
		{Labels: map[string]string{"stat": "U"}, Value: u}, {Labels: map[string]string{"stat": "p"}, Value: p}}
	if p < cg.alpha() {
		return fail(fmt.Sprintf("the patched hosts are %s than the baseline: median %g vs %g over %d and %d values, Mann-Whitney U %g, p %.3g < %g",
			cg.worse(), median(x), median(y), len(x), len(y), u, p, cg.alpha()))
	}
	return pass(fmt.Sprintf("ok: median %g vs baseline %g, p %.3g", median(x), median(y), p))
}

func (c *CompareGate) worse() string {
	if c.Worse == "" {
		return "higher"
	}
	return c.Worse
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
