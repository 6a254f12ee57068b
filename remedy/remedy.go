// Package remedy proposes the upgrades that fix a scan's application
// findings: per vulnerable package, the smallest version that the advisory
// feeds say fixes its findings without opening any other, what else that
// version closes, and a reason for every finding it leaves open.
//
// It decides on versions only. The versions it can propose are the ones
// the advisories name (fixed, last_affected, introduced and listed
// versions): with no registry at hand that is the offline truth of which
// releases exist and which are clean. Rewriting the files is remedy/edit's;
// release dates, when there are any, come from a ReleaseDates the caller
// gives.
package remedy

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/patchbay/patchbay/advisory"
	"github.com/patchbay/patchbay/inventory"
	"github.com/patchbay/patchbay/match"
	"github.com/patchbay/patchbay/patch"
	"github.com/patchbay/patchbay/risk"
	"github.com/patchbay/patchbay/scan"
)

// Strategy says how far an upgrade may go.
type Strategy string

const (
	// InPlace keeps the major version (for npm's 0.x versions: the minor
	// one, as its caret ranges do).
	InPlace Strategy = "in-place"
	// Relax allows major upgrades too.
	Relax Strategy = "relax"
)

// ParseStrategy reads a --strategy value.
func ParseStrategy(s string) (Strategy, error) {
	switch Strategy(s) {
	case InPlace, Relax:
		return Strategy(s), nil
	}
	return "", fmt.Errorf("strategy %q: want in-place or relax", s)
}

// ReleaseDates says when versions were published. Known is false when the
// source does not know (offline, an unknown registry).
type ReleaseDates interface {
	Released(ctx context.Context, ecosystem, name, version string) (at time.Time, known bool, err error)
}

// Options configure Propose.
type Options struct {
	Strategy Strategy // InPlace when empty
	// Priority limits the fixes to findings at or above it (P2: P1 and
	// P2); 0 fixes every priority.
	Priority risk.Priority
	// MinAge is the release-age gate: a version published less than
	// MinAge before Now is not proposed, unless a finding it closes is
	// known exploited (CISA KEV). 0 disables the gate.
	MinAge time.Duration
	// Releases gives release dates for the gate; nil knows none, and then
	// no version passes a MinAge gate but by a KEV bypass.
	Releases ReleaseDates
	Now      time.Time
}

// Upgrade is one proposed version change of one package.
type Upgrade struct {
	Ecosystem string `json:"ecosystem"`
	Package   string `json:"package"`
	From      string `json:"from"`
	To        string `json:"to"`
	// Locations are the files that pin From.
	Locations []string `json:"locations"`
	Major     bool     `json:"major,omitempty"`
	// Closes are the findings To fixes, most urgent first: the ones
	// asked for and every other finding of the package it also fixes.
	Closes []scan.Finding `json:"closes"`
	// Released is To's publication time, when known.
	Released time.Time `json:"released,omitzero"`
	// AgeBypass names the KEV finding for which a version younger than
	// the release-age gate is proposed; "" when the gate did not apply.
	AgeBypass string `json:"age_bypass,omitempty"`
}

// Priority is the most urgent priority among the findings it closes.
func (u Upgrade) Priority() risk.Priority {
	p := risk.Priority(0)
	for _, f := range u.Closes {
		if p == 0 || (f.Priority != 0 && f.Priority < p) {
			p = f.Priority
		}
	}
	return p
}

// Unfixed is a finding no upgrade closes, and why.
type Unfixed struct {
	Finding scan.Finding `json:"finding"`
	Reason  string       `json:"reason"`
}

// Plan is Propose's answer.
type Plan struct {
	Upgrades []Upgrade `json:"upgrades"`
	Unfixed  []Unfixed `json:"unfixed"`
}

// Propose plans the upgrades of the application findings of res, reading
// the advisories of their packages from src.
func Propose(ctx context.Context, src scan.Source, res scan.Result, opts Options) (Plan, error) {
	if opts.Strategy == "" {
		opts.Strategy = InPlace
	}
	plan := Plan{Upgrades: []Upgrade{}, Unfixed: []Unfixed{}}
	type group struct {
		pkg      inventory.Package
		findings []scan.Finding
	}
	var groups []*group
	byKey := map[string]*group{}
	var keys []match.Key
	for _, f := range res.Findings {
		if f.Cycle != patch.CycleApplication {
			continue
		}
		p := inventory.Package{Ecosystem: f.Ecosystem, Name: f.Package, Version: f.Version}
		k := match.KeyOf(p)
		id := k.Ecosystem + "\x00" + k.Name + "\x00" + f.Version
		g, ok := byKey[id]
		if !ok {
			g = &group{pkg: p}
			byKey[id] = g
			groups = append(groups, g)
			keys = append(keys, match.Keys(p)...)
		}
		g.findings = append(g.findings, f)
	}
	if len(groups) == 0 {
		return plan, nil
	}
	advs, err := src.Advisories(ctx, keys)
	if err != nil {
		return plan, fmt.Errorf("advisories of the vulnerable packages: %w", err)
	}
	ix := match.NewIndex()
	for _, a := range advs {
		ix.Add(a)
	}
	for _, g := range groups {
		up, left, err := proposeOne(ctx, ix, advs, g.pkg, g.findings, opts)
		if err != nil {
			return plan, err
		}
		if up != nil {
			plan.Upgrades = append(plan.Upgrades, *up)
		}
		plan.Unfixed = append(plan.Unfixed, left...)
	}
	sort.SliceStable(plan.Upgrades, func(i, j int) bool {
		a, b := plan.Upgrades[i], plan.Upgrades[j]
		if pa, pb := a.Priority(), b.Priority(); pa != pb {
			return pa < pb
		}
		if a.Ecosystem != b.Ecosystem {
			return a.Ecosystem < b.Ecosystem
		}
		return a.Package < b.Package
	})
	sort.SliceStable(plan.Unfixed, func(i, j int) bool {
		a, b := plan.Unfixed[i].Finding, plan.Unfixed[j].Finding
		if a.Priority != b.Priority {
			return a.Priority < b.Priority
		}
		if a.Package != b.Package {
			return a.Package < b.Package
		}
		return a.Vulnerability < b.Vulnerability
	})
	return plan, nil
}

// candidate is a version above the installed one and what it leaves.
type candidate struct {
	version string
	major   bool
	// open are the advisory ids that still affect it.
	open map[string]bool
	// fresh are advisories affecting it that do not affect the installed
	// version: findings the upgrade would open.
	fresh []string
}

// fixes reports whether the candidate fixes every advisory of f.
func (c *candidate) fixes(f scan.Finding) bool {
	for _, id := range f.Advisories {
		if c.open[id] {
			return false
		}
	}
	return true
}

func proposeOne(ctx context.Context, ix *match.Index, advs []*advisory.Advisory, pkg inventory.Package, findings []scan.Finding, opts Options) (*Upgrade, []Unfixed, error) {
	var wanted, below []scan.Finding
	for _, f := range findings {
		if opts.Priority != 0 && (f.Priority == 0 || f.Priority > opts.Priority) {
			below = append(below, f)
		} else {
			wanted = append(wanted, f)
		}
	}
	var left []Unfixed
	for _, f := range below {
		left = append(left, Unfixed{Finding: f, Reason: fmt.Sprintf("%s is below --priority %s", f.Priority, opts.Priority)})
	}
	if pkg.Name == "stdlib" && pkg.Ecosystem == "Go" {
		for _, f := range wanted {
			left = append(left, Unfixed{Finding: f, Reason: stdlibReason(f)})
		}
		return nil, left, nil
	}
	if len(wanted) == 0 {
		return nil, left, nil
	}
	installed := map[string]bool{}
	for _, h := range ix.Match(pkg) {
		installed[h.Advisory.ID] = true
	}
	cands, err := candidates(ix, advs, pkg, installed)
	if err != nil {
		return nil, nil, err
	}
	allowed := func(c *candidate) bool { return !c.major || opts.Strategy == Relax }

	// The smallest allowed candidate that opens nothing new and fixes the
	// most wanted findings (every one, when some candidate does).
	var best *candidate
	bestN := 0
	for i := range cands {
		c := &cands[i]
		if !allowed(c) || len(c.fresh) > 0 {
			continue
		}
		n := 0
		for _, f := range wanted {
			if c.fixes(f) {
				n++
			}
		}
		if n > bestN {
			best, bestN = c, n
		}
	}
	var up *Upgrade
	if best != nil {
		gate, err := ageGate(ctx, opts, pkg, best.version, wanted, best)
		if err != nil {
			return nil, nil, err
		}
		if gate.blocked != "" {
			for _, f := range wanted {
				if best.fixes(f) {
					left = append(left, Unfixed{Finding: f, Reason: gate.blocked})
				}
			}
		} else {
			up = &Upgrade{Ecosystem: pkg.Ecosystem, Package: pkg.Name, From: pkg.Version, To: best.version, Major: best.major, Released: gate.released, AgeBypass: gate.bypass}
			for _, f := range findings {
				if best.fixes(f) {
					up.Closes = append(up.Closes, f)
					up.Locations = appendNew(up.Locations, f.Locations...)
				}
			}
			scan.SortFindings(up.Closes)
			// Findings below --priority that the upgrade closes anyway are
			// closed, not left.
			left = slices.DeleteFunc(left, func(u Unfixed) bool { return best.fixes(u.Finding) })
		}
	}
	for _, f := range wanted {
		if best != nil && best.fixes(f) {
			continue
		}
		left = append(left, Unfixed{Finding: f, Reason: unfixedReason(f, cands, best, opts)})
	}
	return up, left, nil
}

func stdlibReason(f scan.Finding) string {
	if f.Fixed == "" {
		return "the Go standard library: no advisory names a fixed Go release"
	}
	return fmt.Sprintf("the Go standard library: fixed by building with Go %s or later (a toolchain upgrade; fix does not change the go directive)", f.Fixed)
}

// unfixedReason says why no proposed candidate fixes f.
func unfixedReason(f scan.Finding, cands []candidate, best *candidate, opts Options) string {
	var fixing []*candidate
	for i := range cands {
		if cands[i].fixes(f) {
			fixing = append(fixing, &cands[i])
		}
	}
	if len(fixing) == 0 {
		if f.Fixed == "" {
			return "no fixed version: no advisory names a release that fixes it"
		}
		return fmt.Sprintf("no version the feeds know fixes every advisory of it (%s names %s)", strings.Join(f.Advisories, ", "), f.Fixed)
	}
	var clean, major []*candidate
	for _, c := range fixing {
		if len(c.fresh) == 0 {
			clean = append(clean, c)
			if c.major {
				major = append(major, c)
			}
		}
	}
	switch {
	case len(clean) == 0:
		c := fixing[0]
		return fmt.Sprintf("every fixed version opens another vulnerability (%s at %s, which %s does not have)", strings.Join(c.fresh, ", "), c.version, f.Version)
	case len(major) == len(clean) && opts.Strategy != Relax:
		return fmt.Sprintf("the fix (%s) needs a major upgrade, which --strategy in-place does not allow (--strategy relax does)", major[0].version)
	case best != nil:
		return fmt.Sprintf("fixed in %s, but the proposed %s fixes more of the package's findings; upgrade again after it", clean[0].version, best.version)
	}
	return fmt.Sprintf("fixed in %s, which is not proposed", clean[0].version)
}

type gateResult struct {
	released time.Time
	bypass   string
	blocked  string // the reason, when the gate holds the version back
}

// ageGate applies the release-age gate to version.
func ageGate(ctx context.Context, opts Options, pkg inventory.Package, version string, wanted []scan.Finding, c *candidate) (gateResult, error) {
	var g gateResult
	var known bool
	if opts.Releases != nil {
		at, ok, err := opts.Releases.Released(ctx, pkg.Ecosystem, pkg.Name, version)
		if err != nil {
			return g, fmt.Errorf("release date of %s %s: %w", pkg.Name, version, err)
		}
		g.released, known = at, ok
	}
	if opts.MinAge <= 0 {
		return g, nil
	}
	if known && opts.Now.Sub(g.released) >= opts.MinAge {
		return g, nil
	}
	for _, f := range wanted {
		if f.KEV != nil && c.fixes(f) {
			g.bypass = f.Vulnerability
			return g, nil
		}
	}
	age := duration(opts.MinAge)
	if !known {
		g.blocked = fmt.Sprintf("fixed in %s, but its release date is unknown (the feeds carry none, and fix looks none up offline) and the release-age gate wants %s", version, age)
	} else {
		g.blocked = fmt.Sprintf("fixed in %s, released %s, younger than the release-age gate of %s", version, g.released.UTC().Format("2006-01-02"), age)
	}
	return g, nil
}

func duration(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	return d.String()
}

// candidates lists the versions above the installed one that the
// advisories of pkg name, ascending, each with what still affects it.
func candidates(ix *match.Index, advs []*advisory.Advisory, pkg inventory.Package, installed map[string]bool) ([]candidate, error) {
	key := match.KeyOf(pkg)
	seen := map[string]bool{}
	var vs []string
	add := func(v string) {
		if v == "" || v == "0" || seen[v] {
			return
		}
		seen[v] = true
		vs = append(vs, v)
	}
	for _, a := range advs {
		for _, af := range a.Affected {
			if match.NormalizeName(af.Ecosystem, af.Name) != key.Name || inventory.BaseEcosystem(af.Ecosystem) != inventory.BaseEcosystem(key.Ecosystem) {
				continue
			}
			for _, r := range af.Ranges {
				for _, e := range r.Events {
					add(e.Fixed)
					add(e.Introduced)
				}
			}
			for _, v := range af.Versions {
				add(v)
			}
		}
	}
	from := trimV(pkg.Ecosystem, pkg.Version)
	var out []candidate
	for _, v := range vs {
		c, err := match.Compare(pkg.Ecosystem, v, from)
		if err != nil || c <= 0 {
			continue // unparsable advisory versions are the index's problems
		}
		if isPrerelease(pkg.Ecosystem, v) && !isPrerelease(pkg.Ecosystem, from) {
			continue
		}
		q := pkg
		q.Version = v
		cand := candidate{version: v, major: IsMajor(pkg.Ecosystem, from, v), open: map[string]bool{}}
		for _, h := range ix.Match(q) {
			cand.open[h.Advisory.ID] = true
			if !installed[h.Advisory.ID] {
				cand.fresh = append(cand.fresh, h.Advisory.ID)
			}
		}
		out = append(out, cand)
	}
	sort.Slice(out, func(i, j int) bool {
		c, _ := match.Compare(pkg.Ecosystem, out[i].version, out[j].version)
		return c < 0
	})
	if pkg.Ecosystem == "Go" && strings.HasPrefix(pkg.Version, "v") {
		for i := range out {
			out[i].version = "v" + out[i].version
		}
	}
	return out, nil
}

func trimV(eco, v string) string {
	if eco == "Go" {
		return strings.TrimPrefix(v, "v")
	}
	return v
}

// isPrerelease reports versions with a pre-release part (1.2.0-rc.1,
// 2.0b1), which are proposed only to what already runs one.
func isPrerelease(eco, v string) bool {
	switch eco {
	case "PyPI":
		l := strings.ToLower(v)
		for _, m := range []string{"a", "b", "rc", "dev", "pre", "c"} {
			if i := strings.LastIndex(l, m); i > 0 && i+len(m) <= len(l) && isDigitAt(l, i-1) && (i+len(m) == len(l) || isDigitAt(l, i+len(m))) {
				return true
			}
		}
		return false
	default:
		core, _, _ := strings.Cut(strings.TrimPrefix(v, "v"), "+")
		return strings.Contains(core, "-")
	}
}

func isDigitAt(s string, i int) bool { return i >= 0 && i < len(s) && s[i] >= '0' && s[i] <= '9' }

// IsMajor reports whether going from a to b changes the major version:
// the first number; for npm's 0.x versions the second too, as npm's caret
// ranges read them (Go keeps one module path across v0 and v1 minors, and
// PEP 440 has no such rule).
func IsMajor(eco, a, b string) bool {
	na, nb := leading(trimV(eco, a)), leading(trimV(eco, b))
	get := func(n []int, i int) int {
		if i < len(n) {
			return n[i]
		}
		return 0
	}
	if get(na, 0) != get(nb, 0) {
		return true
	}
	return eco == "npm" && get(na, 0) == 0 && get(na, 1) != get(nb, 1)
}

// leading returns the dot-separated numbers a version starts with.
func leading(v string) []int {
	if i := strings.Index(v, "!"); i >= 0 { // PEP 440 epoch
		v = v[i+1:]
	}
	var out []int
	n, digits := 0, false
	for i := 0; i <= len(v); i++ {
		if i < len(v) && v[i] >= '0' && v[i] <= '9' {
			n = n*10 + int(v[i]-'0')
			digits = true
			continue
		}
		if !digits {
			break
		}
		out = append(out, n)
		n, digits = 0, false
		if i == len(v) || v[i] != '.' {
			break
		}
	}
	return out
}

func appendNew(xs []string, ys ...string) []string {
	for _, y := range ys {
		if !slices.Contains(xs, y) {
			xs = append(xs, y)
		}
	}
	return xs
}
