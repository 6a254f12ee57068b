package policy

import (
	"bytes"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/patchbay/patchbay/duration"
	"github.com/patchbay/patchbay/fleet"
	"github.com/patchbay/patchbay/risk"
)

var update = flag.Bool("update", false, "rewrite golden files")

func exampleDocs(t *testing.T) []*Document {
	t.Helper()
	all, err := CollectFiles([]string{"../docs/policy-example"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// rollouts.yaml and scorecards.yaml hold the rollout and scorecard
	// kinds, which this package does not own.
	files := slices.DeleteFunc(all, func(f File) bool { b := filepath.Base(f.Name); return b == "rollouts.yaml" || b == "scorecards.yaml" })
	docs, err := ownKinds.ParseFiles(files)
	if err != nil {
		t.Fatal(err)
	}
	return docs
}

// TestDefaultTableGolden pins the built-in policy's decision over the
// whole grid of inputs: 3 exploitation levels × automatable × 2 impacts ×
// 4 tiers × 3 exposures.
func TestDefaultTableGolden(t *testing.T) {
	set, err := NewSet(nil)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	fmt.Fprintln(&b, "# exploitation automatable impact | tier exposure → priority lane, SLA system / application")
	for _, e := range exploitationLevels {
		for _, a := range []bool{false, true} {
			for _, im := range impactLevels {
				for tier := 1; tier <= 4; tier++ {
					for _, x := range exposureLevels {
						c := set.Context(Asset{ID: "h", Labels: map[string]string{"tier": fmt.Sprint(tier), "exposure": x}})
						in := Inputs{Vulnerability: "CVE-1", Exploitation: risk.Exploitation(e), Automatable: a, Impact: im}
						d := set.Decide(in, c, time.Time{})
						in.Cycle = "application"
						da := set.Decide(in, c, time.Time{})
						lane := "normal"
						if d.Lane != "" {
							lane = string(d.Lane)
						}
						fmt.Fprintf(&b, "%-6s %-5t %-7s | %d %-8s → %s %-9s %s / %s\n", e, a, im, tier, x, d.Priority, lane, duration.Duration(d.SLA), duration.Duration(da.SLA))
					}
				}
			}
		}
	}
	golden := filepath.Join("testdata", "default-grid.golden")
	if *update {
		if err := os.WriteFile(golden, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got := b.String(); got != string(want) {
		gl, wl := strings.Split(got, "\n"), strings.Split(string(want), "\n")
		for i := range min(len(gl), len(wl)) {
			if gl[i] != wl[i] {
				t.Fatalf("line %d:\n got %s\nwant %s", i+1, gl[i], wl[i])
			}
		}
		t.Fatalf("got %d lines, want %d", len(gl), len(wl))
	}
}

// grid is every combination of the decision inputs, as indexes.
type point struct{ e, a, im, tier, x int }

func (p point) decide(s *Set) risk.Priority {
	c := s.Context(Asset{ID: "h", Labels: map[string]string{"tier": fmt.Sprint(4 - p.tier), "exposure": exposureLevels[p.x]}})
	return s.Decide(Inputs{Vulnerability: "CVE-1", Exploitation: risk.Exploitation(exploitationLevels[p.e]), Automatable: p.a == 1, Impact: impactLevels[p.im]}, c, time.Time{}).Priority
}

// randomPolicy builds a valid policy at random: a monotone base table,
// monotone shifts and emergency rules.
func randomPolicy(r *rand.Rand) *PolicySpec {
	p := &PolicySpec{SLAs: DefaultPolicy.Spec.(*PolicySpec).SLAs}
	var t [3][2][2]risk.Priority
	for e := range 3 {
		for a := range 2 {
			for im := range 2 {
				v := risk.Priority(1 + r.IntN(4))
				// Never less urgent than a cell with less evidence.
				if e > 0 {
					v = min(v, t[e-1][a][im])
				}
				if a > 0 {
					v = min(v, t[e][a-1][im])
				}
				if im > 0 {
					v = min(v, t[e][a][im-1])
				}
				t[e][a][im] = v
				p.Priorities.Base = append(p.Priorities.Base, BaseRow{exploitationLevels[e], a == 1, impactLevels[im], v})
			}
		}
	}
	shifts := func(n int) []int {
		s := make([]int, n)
		for i := range s {
			s[i] = r.IntN(7) - 3
		}
		// Sorted descending: the more critical, the lower (more urgent).
		for i := range s {
			for j := i + 1; j < n; j++ {
				if s[j] > s[i] {
					s[i], s[j] = s[j], s[i]
				}
			}
		}
		return s
	}
	ts := shifts(4) // tier 4 → 1
	p.Priorities.Tier = map[string]int{"4": ts[0], "3": ts[1], "2": ts[2], "1": ts[3]}
	xs := shifts(3) // isolated → internet
	p.Priorities.Exposure = map[string]int{"isolated": xs[0], "internal": xs[1], "internet": xs[2]}
	for i := range r.IntN(3) {
		var c Condition
		if r.IntN(2) == 0 {
			c.Exploitation = exploitationLevels[r.IntN(3)]
		}
		if r.IntN(2) == 0 {
			c.Tier = 1 + r.IntN(4)
		}
		if r.IntN(2) == 0 {
			c.Exposure = exposureLevels[r.IntN(3)]
		}
		c.Automatable = r.IntN(3) == 0
		if c == (Condition{}) {
			c.Impact = "total"
		}
		p.Emergency = append(p.Emergency, EmergencyRule{Name: fmt.Sprintf("r%d", i), When: c, Priority: risk.Priority(1 + r.IntN(2))})
	}
	return p
}

func policySet(t *testing.T, p *PolicySpec) *Set {
	t.Helper()
	d := &Document{APIVersion: APIVersion, Kind: KindPolicy, Metadata: Metadata{Name: "random"}, Spec: p, paths: map[string]Pos{}}
	c := &checker{doc: d}
	p.Check(c)
	if len(c.errs) > 0 {
		t.Fatalf("random policy invalid: %v", c.errs)
	}
	s, err := NewSet([]*Document{d})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestMoreEvidenceNeverLowersPriority: over the whole grid, for the
// built-in policy and 300 random valid ones, more exploitation evidence,
// automatable, total impact, a more critical tier or a more exposed asset
// never make a priority less urgent.
func TestMoreEvidenceNeverLowersPriority(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	def, err := NewSet(nil)
	if err != nil {
		t.Fatal(err)
	}
	sets := []*Set{def}
	for range 300 {
		sets = append(sets, policySet(t, randomPolicy(r)))
	}
	for si, s := range sets {
		for e := range 3 {
			for a := range 2 {
				for im := range 2 {
					for tier := range 4 { // 0: tier 4 … 3: tier 1
						for x := range 3 {
							p := point{e, a, im, tier, x}
							here := p.decide(s)
							for _, up := range []point{{e + 1, a, im, tier, x}, {e, a + 1, im, tier, x}, {e, a, im + 1, tier, x}, {e, a, im, tier + 1, x}, {e, a, im, tier, x + 1}} {
								if up.e > 2 || up.a > 1 || up.im > 1 || up.tier > 3 || up.x > 2 {
									continue
								}
								if there := up.decide(s); there > here {
									t.Fatalf("policy %d: %+v → %s but %+v (more evidence or criticality) → %s", si, p, here, up, there)
								}
							}
						}
					}
				}
			}
		}
	}
}

// TestExpiredExceptionAlwaysReopens: for random exceptions and times, a
// finding is accepted exactly while its exception has not expired, and
// open after.
func TestExpiredExceptionAlwaysReopens(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	base := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	for i := range 500 {
		expires := base.Add(time.Duration(r.IntN(90*24)) * time.Hour)
		var d Date
		if r.IntN(2) == 0 {
			d = Date{t: time.Date(expires.Year(), expires.Month(), expires.Day(), 0, 0, 0, 0, time.UTC), dayOnly: true}
		} else {
			d = DateOf(expires)
		}
		ex := &ExceptionSpec{Vulnerabilities: []string{"CVE-2026-1"}, Justification: "j", ApprovedBy: "a", Expires: d}
		doc := &Document{APIVersion: APIVersion, Kind: KindException, Metadata: Metadata{Name: fmt.Sprintf("x%d", i)}, Spec: ex, paths: map[string]Pos{}}
		s, err := NewSet([]*Document{doc})
		if err != nil {
			t.Fatal(err)
		}
		c := s.Context(Asset{ID: "h", Labels: map[string]string{}})
		now := base.Add(time.Duration(r.IntN(120*24*60)) * time.Minute)
		got := s.Decide(Inputs{Vulnerability: "CVE-2026-1"}, c, now)
		want := fleet.StateAccepted
		if !now.Before(d.End()) {
			want = fleet.StateOpen
		}
		if got.State != want {
			t.Fatalf("exception expiring %s (end %s), at %s: state %s, want %s", d, d.End(), now, got.State, want)
		}
		if want == fleet.StateOpen && got.Exception != "" {
			t.Fatalf("an expired exception still named: %s", got.Exception)
		}
		if next := s.NextExpiry(now); want == fleet.StateAccepted && !next.Equal(d.End()) {
			t.Fatalf("next expiry %s, want %s", next, d.End())
		}
	}
}

// TestExampleRepositoryRoundTrip: the documented example repository
// applies; get's YAML parses back to the same documents, and applying it
// again changes nothing.
func TestExampleRepositoryRoundTrip(t *testing.T) {
	docs := exampleDocs(t)
	changes, set, err := Diff(nil, docs, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) != 12 || len(set.Documents()) != 12 {
		t.Fatalf("%d changes, %d documents; want 12 (2 teams, 3 services, 3 host groups, 2 policies, 1 exception, 1 not_affected VEX statement)", len(changes), len(set.Documents()))
	}
	var applied []Applied
	for _, c := range changes {
		if c.Action != Created || c.Version != 1 {
			t.Errorf("%s: %s v%d, want created v1", c.Ref(), c.Action, c.Version)
		}
		// What the store keeps is the canonical form.
		d, err := ownKinds.FromCanonical([]byte(c.Canonical))
		if err != nil {
			t.Fatal(err)
		}
		applied = append(applied, Applied{Doc: d, Version: c.Version})
	}
	var out bytes.Buffer
	stored := make([]*Document, len(applied))
	for i, a := range applied {
		stored[i] = a.Doc
	}
	if err := Encode(&out, stored); err != nil {
		t.Fatal(err)
	}
	again, err := ownKinds.Parse("get.yaml", out.Bytes())
	if err != nil {
		t.Fatalf("get's output does not parse: %v\n%s", err, out.String())
	}
	changes, _, err = Diff(applied, again, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range changes {
		if c.Action != Unchanged {
			t.Errorf("%s: %s after a round trip:\n%s", c.Ref(), c.Action, c.Diff)
		}
	}
	// A real change is reported with its diff and the next version.
	svc := strings.Replace(out.String(), "  tier: 3\n  exposure: internal\n  hosts: role=db", "  tier: 2\n  exposure: internal\n  hosts: role=db", 1)
	changed, err := ownKinds.Parse("edited.yaml", []byte(svc))
	if err != nil {
		t.Fatal(err)
	}
	changes, _, err = Diff(applied, changed, nil)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, c := range changes {
		if c.Action == Changed {
			n++
			if c.Ref() != "Service/reporting" || c.Version != 2 || !strings.Contains(c.Diff, "-   tier: 3") || !strings.Contains(c.Diff, "+   tier: 2") {
				t.Errorf("%s: version %d diff:\n%s", c.Ref(), c.Version, c.Diff)
			}
		}
	}
	if n != 1 {
		t.Errorf("%d documents changed, want 1", n)
	}
}

func TestSelector(t *testing.T) {
	for _, tc := range []struct {
		sel    string
		labels map[string]string
		want   bool
	}{
		{"env=prod", map[string]string{"env": "prod"}, true},
		{"env==prod", map[string]string{"env": "staging"}, false},
		{"env!=prod", map[string]string{"env": "staging"}, true},
		{"env!=prod", map[string]string{}, true},
		{"role in (web, api),env=prod", map[string]string{"env": "prod", "role": "api"}, true},
		{"role in (web,api),env=prod", map[string]string{"env": "prod", "role": "db"}, false},
		{"role notin (db)", map[string]string{"role": "web"}, true},
		{"role notin (db)", map[string]string{"role": "db"}, false},
		{"backup", map[string]string{"backup": ""}, true},
		{"!legacy", map[string]string{"legacy": "yes"}, false},
		{"", map[string]string{"x": "y"}, true},
	} {
		s, err := ParseSelector(tc.sel)
		if err != nil {
			t.Fatalf("%q: %v", tc.sel, err)
		}
		if got := s.Matches(tc.labels); got != tc.want {
			t.Errorf("%q on %v: %v", tc.sel, tc.labels, got)
		}
		if again, err := ParseSelector(s.String()); err != nil || again.String() != s.String() {
			t.Errorf("%q: canonical %q does not parse back: %v", tc.sel, s.String(), err)
		}
	}
	for sel, want := range map[string]string{
		"env=prod,":         `selector "env=prod,": ends with a comma`,
		"role in (web":      `selector "role in (web": unbalanced parentheses`,
		"role in web":       `selector "role in web": "role in web": want in (a,b,…)`,
		"role in (web,)":    `selector "role in (web,)": "role in (web,)": empty value in the list`,
		"env=prod role=web": `selector "env=prod role=web": "env=prod role=web": bad value "prod role=web"`,
		"bad key!=x":        `selector "bad key!=x": label key "bad key": ' ' is not allowed (letters, digits, '.', '_', '-', '/')`,
		"a b c":             `selector "a b c": "a b c": want key=value, key!=value, key in (…), key notin (…), key or !key`,
	} {
		if _, err := ParseSelector(sel); err == nil || err.Error() != want {
			t.Errorf("%q: error %v\nwant %s", sel, err, want)
		}
	}
}

// TestDeciderEqualsDecide: the memoising decider decides every finding as
// Decide does, exceptions included, without the shared reasons leaking
// between findings.
func TestDeciderEqualsDecide(t *testing.T) {
	docs := exampleDocs(t)
	_, set, err := Diff(nil, docs, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := set.Context(Asset{ID: "h", Labels: map[string]string{"env": "prod", "role": "db"}})
	dec := set.Decider(c)
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	var got []Decision
	var ins []Inputs
	for _, v := range []string{"CVE-2026-116303", "CVE-2026-116304", "CVE-2026-54872", "CVE-1"} {
		for _, pkg := range []string{"postgresql-15", "openssl"} {
			for _, e := range exploitationLevels {
				in := Inputs{Vulnerability: v, Ecosystem: "Debian:12", Package: pkg, Version: "1", Exploitation: risk.Exploitation(e), Impact: "partial", Cycle: "system"}
				ins = append(ins, in)
				got = append(got, dec.Decide(in, now))
			}
		}
	}
	states := map[fleet.State]int{}
	for i, in := range ins {
		want := set.Decide(in, c, now)
		if fmt.Sprint(got[i]) != fmt.Sprint(want) {
			t.Errorf("%+v:\n got %+v\nwant %+v", in, got[i], want)
		}
		states[got[i].State]++
	}
	if states[fleet.StateAccepted] != 6 || states[fleet.StateNotAffected] != 3 {
		t.Errorf("states: %v", states)
	}
}

// ownKinds parse this package's documents in its tests.
var ownKinds = NewKinds(OwnKinds())
