package rollout

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/patchbay/patchbay/policy"
)

const gatedHead = "apiVersion: patchbay/v1\nkind: RolloutStrategy\nmetadata:\n  name: x\nspec:\n  rings: [{name: a, share: 100%, maxConcurrency: 1, errorThreshold: 0}]\n  reboot: never\n  promote: automatic\n  gates:\n"

// TestGateValidation: bad gates are refused at file:line:column, with the
// field; unknown fields too (strict decoding).
func TestGateValidation(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       []string
	}{
		{"prometheus", "    prometheus:\n      - {name: e, query: 'x{host=\"{{ .Hots }}\"}', condition: '~ 1', phases: [after], interval: 10ms, count: -1, failureLimit: -2, onUnreachable: ignore}\n      - {name: e, query: ' ', condition: '< x'}\n", []string{
			`f.yaml:11:26: spec.gates.prometheus[0].query: template: gate:1:11: executing "gate" at <.Hots>: can't evaluate field Hots in type rollout.GateVars (the substitutions are {{ .Host }}, {{ .Service }}, {{ .Ring }})`,
			`f.yaml:11:62: spec.gates.prometheus[0].condition: "~ 1": want one of < <= > >= == != and a number (< 0.05)`,
			`f.yaml:11:78: spec.gates.prometheus[0].phases[0]: "after": want before, bake or background`,
			`f.yaml:11:96: spec.gates.prometheus[0].interval: 10ms: want at least 1s`,
			`f.yaml:11:109: spec.gates.prometheus[0].count: -1: want 1 to 100 measurements`,
			`f.yaml:11:127: spec.gates.prometheus[0].failureLimit: -2: want 0 or more`,
			`f.yaml:11:146: spec.gates.prometheus[0].onUnreachable: "ignore": want fail (the default) or pass`,
			`f.yaml:12:16: spec.gates.prometheus[1].name: "e": given twice (gate names are unique in a strategy)`,
			`f.yaml:12:26: spec.gates.prometheus[1].query: empty: a PromQL expression`,
			`f.yaml:12:42: spec.gates.prometheus[1].condition: "< x": want an operator and a number (< 0.05)`}},
		{"alerts", "    alerts:\n      - {name: a, matchers: ['host', '1x=\"y\"', 'host=\"{{ .Host }}', 'sev=~\"page|{{ .X }}\"']}\n      - {name: b, matchers: []}\n", []string{
			`f.yaml:11:30: spec.gates.alerts[0].matchers[0]: "host": want label="value" (or !=, =~, !~)`,
			`f.yaml:11:38: spec.gates.alerts[0].matchers[1]: "1x=\"y\"": "1x" is not a label name`,
			`f.yaml:11:48: spec.gates.alerts[0].matchers[2]: "host=\"{{ .Host }}": unbalanced quotes`,
			`f.yaml:11:69: spec.gates.alerts[0].matchers[3]: template: gate:1:14: executing "gate" at <.X>: can't evaluate field X in type rollout.GateVars (the substitutions are {{ .Host }}, {{ .Service }}, {{ .Ring }})`,
			`f.yaml:12:29: spec.gates.alerts[1].matchers: empty: name the alerts the gate watches (host="{{ .Host }}")`}},
		{"comparison", "    comparison:\n      - {name: c, query: 'x', worse: up, alpha: 0.7, minSamples: 2, step: 1ms, range: 2s, count: 101}\n", []string{
			`f.yaml:11:38: spec.gates.comparison[0].worse: "up": want higher (the default) or lower`,
			`f.yaml:11:49: spec.gates.comparison[0].alpha: 0.7: want a significance level above 0 and below 0.5 (0.05 by default)`,
			`f.yaml:11:66: spec.gates.comparison[0].minSamples: 2: want at least 3 values a side (10 by default)`,
			`f.yaml:11:75: spec.gates.comparison[0].step: 1ms: want at least 1s`,
			`f.yaml:11:87: spec.gates.comparison[0].range: 2s: want at least three steps`,
			`f.yaml:11:98: spec.gates.comparison[0].count: 101: want 1 to 100 measurements`}},
		{"unknown field", "    prometheus:\n      - {name: e, query: up, condition: '> 0', treshold: 1}\n", []string{
			`f.yaml:11:48: spec.gates.prometheus[0].treshold: unknown field (want one of name, query, condition, phases, interval, count, failureLimit, onUnreachable)`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := allKinds.Parse("f.yaml", []byte(gatedHead+tc.yaml))
			var got []string
			for _, e := range policy.AsErrors(err) {
				got = append(got, e.Error())
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("got\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(tc.want, "\n  "))
			}
		})
	}
}

func TestCondition(t *testing.T) {
	for _, tc := range []struct {
		cond string
		v    float64
		met  bool
	}{{"< 0.05", 0.01, true}, {"<0.05", 0.05, false}, {"<= 0.05", 0.05, true}, {"> 0.99", 0.995, true}, {">= 1", 0.5, false}, {"== 0", 0, true}, {"!= 0", 0, false}} {
		c, err := ParseCondition(tc.cond)
		if err != nil {
			t.Fatal(err)
		}
		if c.Met(tc.v) != tc.met {
			t.Errorf("%s on %g: %v", tc.cond, tc.v, !tc.met)
		}
	}
}

// downMonitor is a monitoring whose components cannot be reached.
type downMonitor struct{}

func (downMonitor) Query(context.Context, string) ([]Sample, error) {
	return nil, fmt.Errorf("prometheus http://127.0.0.1:1: %w: connection refused", ErrUnreachable)
}
func (downMonitor) QueryRange(context.Context, string, time.Duration, time.Duration) ([]float64, error) {
	return nil, fmt.Errorf("prometheus http://127.0.0.1:1: %w: connection refused", ErrUnreachable)
}
func (downMonitor) Alerts(context.Context, []string) ([]FiringAlert, error) {
	return nil, fmt.Errorf("alertmanager http://127.0.0.1:2: %w: connection refused", ErrUnreachable)
}

// TestGatesUnreachable: with the monitoring down, a gate fails closed
// (naming the component) unless it says onUnreachable: pass, which lets
// the ring start; a failure within failureLimit waits for the next
// measurement.
func TestGatesUnreachable(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	vars := func(int) []GateVars { return []GateVars{{Host: "h1", Ring: "a"}} }
	strat := &StrategySpec{Rings: []Ring{{Name: "a", MaxConcurrency: Amount{N: 1}}}}
	for _, tc := range []struct {
		name  string
		gates Gates
		halt  string
		pass  bool // the before phase passed
	}{
		{"prometheus closed", Gates{Prometheus: []PromGate{{Name: "e", Query: "up", Condition: "> 0"}}}, "gate e (before): prometheus http://127.0.0.1:1: unreachable: connection refused; 1 failed measurement(s), more than its limit of 0", false},
		{"alertmanager closed", Gates{Alerts: []AlertGate{{Name: "a", Matchers: []string{`host="{{ .Host }}"`}}}}, "gate a (before): alertmanager http://127.0.0.1:2: unreachable: connection refused", false},
		{"within the limit", Gates{Prometheus: []PromGate{{Name: "e", Query: "up", Condition: "> 0", FailureLimit: 1}}}, "", false},
		{"open", Gates{Prometheus: []PromGate{{Name: "e", Query: "up", Condition: "> 0", OnUnreachable: FailOpen}}, Alerts: []AlertGate{{Name: "a", Matchers: []string{`host="x"`}, OnUnreachable: FailOpen}}}, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := StartMachine(strat, []int{1})
			m.Jobs = []*HostJob{{Host: "h1"}}
			out := evalGates(context.Background(), downMonitor{}, &tc.gates, m, now, vars, func() []GateVars { return nil })
			got := ""
			if out.halt != nil {
				got = out.halt.Reason
			}
			if got != tc.halt {
				t.Errorf("halt %q, want %q", got, tc.halt)
			}
			if gatesPassed(&tc.gates, m, PhaseBefore) != tc.pass {
				t.Errorf("before gates passed: %v, want %v", !tc.pass, tc.pass)
			}
		})
	}
	// Open: the state says the measurement passed while unreachable, and
	// why.
	g := Gates{Prometheus: []PromGate{{Name: "e", Query: "up", Condition: "> 0", OnUnreachable: FailOpen}}}
	m := StartMachine(strat, []int{1})
	m.Jobs = []*HostJob{{Host: "h1"}}
	evalGates(context.Background(), downMonitor{}, &g, m, now, vars, func() []GateVars { return nil })
	if st := m.GateStates["prometheus/e/before"]; st == nil || st.Result != "passed while unreachable (onUnreachable: pass)" || !strings.Contains(st.Reason, "prometheus http://127.0.0.1:1") {
		t.Errorf("state: %+v", st)
	}
}

func TestMannWhitney(t *testing.T) {
	seq := func(from, n int, scale float64) []float64 {
		var out []float64
		for i := range n {
			out = append(out, float64(from+i)*scale)
		}
		return out
	}
	for _, tc := range []struct {
		name string
		x, y []float64
		u    float64
		lo   float64 // p is within [lo, hi]
		hi   float64
	}{
		// x all above y: U = n1·n2; z = (100-50-0.5)/√(10·10·21/12) = 3.742.
		{"shifted", seq(11, 10, 1), seq(1, 10, 1), 100, 9.0e-5, 9.3e-5},
		{"below", seq(1, 10, 1), seq(11, 10, 1), 0, 0.9999, 1},
		// Interleaved: no evidence (U = n1·n2/2 + 5 here).
		{"interleaved", []float64{1, 3, 5, 7, 9, 11, 13, 15, 17, 19}, []float64{2, 4, 6, 8, 10, 12, 14, 16, 18, 20}, 45, 0.6, 0.7},
		{"all equal", []float64{0.01, 0.01, 0.01}, []float64{0.01, 0.01}, 3, 1, 1},
		// Ties within groups: 6 at 0.04 over 12 at 0.01 (the server test's).
		{"ties", []float64{0.04, 0.04, 0.04, 0.04, 0.04, 0.04}, seq(1, 12, 0)[:12], 72, 1e-5, 5e-5},
	} {
		if tc.name == "ties" {
			for i := range tc.y {
				tc.y[i] = 0.01
			}
		}
		u, p := MannWhitney(tc.x, tc.y)
		if u != tc.u || p < tc.lo || p > tc.hi {
			t.Errorf("%s: U %g p %g, want U %g p in [%g, %g]", tc.name, u, p, tc.u, tc.lo, tc.hi)
		}
	}
}
