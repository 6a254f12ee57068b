// Package scan runs one scan: it takes an inventory, looks its packages up
// in the advisory index, matches them, merges advisories that describe the
// same vulnerability, and assesses each finding's priority.
package scan

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
)

// Source is the advisory index as a scan reads it.
type Source interface {
	// Advisories returns every advisory naming any of the keys, each once.
	Advisories(ctx context.Context, keys []match.Key) ([]*advisory.Advisory, error)
	// Exploitation returns the KEV entries and EPSS scores of the CVEs.
	Exploitation(ctx context.Context, cves []string) (map[string]advisory.KEVEntry, map[string]advisory.EPSSScore, error)
}

// EnrichmentSource is a Source that also holds the CVE enrichment (NVD
// records, vendor ratings): a scan of one scores its findings by
// risk.Precedence with it.
type EnrichmentSource interface {
	Enrichment(ctx context.Context, cves []string) (map[string]advisory.Enrichment, error)
}

// enrichment reads the enrichment of the CVEs when src has any.
func enrichment(ctx context.Context, src Source, cves []string) (map[string]advisory.Enrichment, error) {
	es, ok := src.(EnrichmentSource)
	if !ok || len(cves) == 0 {
		return nil, nil
	}
	return es.Enrichment(ctx, cves)
}

// enrich adds to in the NVD records of the CVEs and the vendors' ratings
// of them in package pkg of ecosystem eco.
func enrich(in *risk.Input, enr map[string]advisory.Enrichment, cves []string, eco, pkg string) {
	for _, c := range cves {
		e, ok := enr[c]
		if !ok {
			continue
		}
		if e.Record != nil && !slices.Contains(in.Records, e.Record) {
			in.Records = append(in.Records, e.Record)
		}
		for _, v := range e.Vendors {
			if v.AppliesTo(eco, pkg) {
				in.Vendors = append(in.Vendors, v)
			}
		}
	}
}

// Finding is one vulnerability of one package (for OS packages: of one
// source package, whatever binaries it built).
type Finding struct {
	// Source says who found it: "osv" for the advisory feeds.
	Source    string `json:"source"`
	Ecosystem string `json:"ecosystem"`
	// Package and Version are what advisories name: the source package
	// for Debian, Ubuntu and Alpine.
	Package string `json:"package"`
	Version string `json:"version"`
	// Binaries are the installed binary packages built from Package (OS
	// packages only).
	Binaries []string `json:"binaries,omitempty"`
	// Locations are the files the package was found in.
	Locations []string    `json:"locations"`
	Cycle     patch.Cycle `json:"cycle"` // system or application
	// Vulnerability is the preferred id (the CVE when there is exactly
	// one); Aliases holds every other id of the merged advisories.
	Vulnerability string   `json:"vulnerability"`
	Aliases       []string `json:"aliases"`
	// Advisories are the ids of the matched records.
	Advisories []string `json:"advisories"`
	Summary    string   `json:"summary,omitempty"`
	URL        string   `json:"url,omitempty"`
	// Fixed is the patch: the smallest version that fixes every merged
	// advisory, "" when none names a fix.
	Fixed     string              `json:"fixed"`
	Priority  risk.Priority       `json:"priority"`
	Severity  string              `json:"severity"`
	Reasons   []string            `json:"reasons"`
	FirstSeen time.Time           `json:"first_seen"`
	Due       time.Time           `json:"due,omitzero"`
	CVSS      *risk.CVSS          `json:"cvss"`
	KEV       *advisory.KEVEntry  `json:"kev"`
	EPSS      *advisory.EPSSScore `json:"epss"`
	// Assessment holds the decision inputs.
	Exploitation    risk.Exploitation `json:"exploitation"`
	Automatable     bool              `json:"automatable"`
	TechnicalImpact string            `json:"technical_impact"`
}

// Result is a scan's output.
type Result struct {
	Inventory inventory.Result `json:"inventory"`
	Findings  []Finding        `json:"findings"`
	// Problems are advisory data that could not be used (unparsable
	// versions or vectors); matching went on without them.
	Problems []string `json:"problems,omitempty"`
	// Updates are the updates the OS package manager offers, classified.
	Updates []patch.Update `json:"updates,omitempty"`
}

// unit is what is matched: one (ecosystem, match name, match version).
type unit struct {
	pkg       inventory.Package
	binaries  []string
	locations []string
}

// Run matches the inventory against the index and assesses the findings.
// now is the first-seen time of every finding.
func Run(ctx context.Context, src Source, inv inventory.Result, now time.Time) (Result, error) {
	res := Result{Inventory: inv, Findings: []Finding{}}
	units := groupUnits(inv.Packages)
	keySet := map[match.Key]bool{}
	var keys []match.Key
	for _, u := range units {
		for _, k := range match.Keys(u.pkg) {
			if !keySet[k] {
				keySet[k] = true
				keys = append(keys, k)
			}
		}
	}
	advs, err := src.Advisories(ctx, keys)
	if err != nil {
		return res, err
	}
	ix := match.NewIndex()
	for _, a := range advs {
		ix.Add(a)
	}
	res.Problems = append(res.Problems, ix.Problems...)

	type pending struct {
		u    *unit
		hits [][]match.Hit // merged groups
	}
	var all []pending
	cveSet := map[string]bool{}
	for _, u := range units {
		q := match.NewQuery(u.pkg)
		hits := ix.AppendQuery(nil, &q)
		if len(hits) == 0 {
			continue
		}
		groups := MergeAliases(hits)
		all = append(all, pending{u: u, hits: groups})
		for _, h := range hits {
			for _, c := range h.Advisory.CVEs() {
				cveSet[c] = true
			}
		}
	}
	cves := make([]string, 0, len(cveSet))
	for c := range cveSet {
		cves = append(cves, c)
	}
	sort.Strings(cves)
	kev, epss, err := src.Exploitation(ctx, cves)
	if err != nil {
		return res, err
	}
	enr, err := enrichment(ctx, src, cves)
	if err != nil {
		return res, err
	}
	n := 0
	for _, p := range all {
		n += len(p.hits)
	}
	res.Findings = make([]Finding, 0, n)
	as := &assessor{kev: kev, epss: epss, enr: enr, cache: map[string]*Finding{}}
	for _, p := range all {
		for _, g := range p.hits {
			res.Findings = append(res.Findings, as.finding(p.u, g, now))
		}
	}
	SortFindings(res.Findings)
	return res, ctx.Err()
}

// SortFindings orders by priority, then ecosystem, package and id.
func SortFindings(fs []Finding) {
	sort.SliceStable(fs, func(i, j int) bool {
		a, b := fs[i], fs[j]
		if a.Priority != b.Priority {
			return a.Priority < b.Priority
		}
		if a.Ecosystem != b.Ecosystem {
			return a.Ecosystem < b.Ecosystem
		}
		if a.Package != b.Package {
			return a.Package < b.Package
		}
		if a.Version != b.Version {
			return a.Version < b.Version
		}
		return a.Vulnerability < b.Vulnerability
	})
}

func groupUnits(pkgs []inventory.Package) []*unit {
	byKey := map[string]*unit{}
	var out []*unit
	for _, p := range pkgs {
		k := match.KeyOf(p)
		key := k.Ecosystem + "\x00" + k.Name + "\x00" + p.MatchVersion()
		u, ok := byKey[key]
		if !ok {
			u = &unit{pkg: p}
			byKey[key] = u
			out = append(out, u)
		}
		if inventory.IsOSEcosystem(p.Ecosystem) && !contains(u.binaries, p.Name) {
			u.binaries = append(u.binaries, p.Name)
		}
		if !contains(u.locations, p.Location) {
			u.locations = append(u.locations, p.Location)
		}
	}
	return out
}

func contains(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}

// MergeAliases groups hits whose ids or aliases overlap: each group is one
// vulnerability described by several databases.
func MergeAliases(hits []match.Hit) [][]match.Hit {
	parent := make([]int, len(hits))
	for i := range parent {
		parent[i] = i
	}
	find := func(i int) int {
		for parent[i] != i {
			parent[i] = parent[parent[i]]
			i = parent[i]
		}
		return i
	}
	owner := map[string]int{}
	for i, h := range hits {
		for _, id := range h.Advisory.IDs() {
			if j, ok := owner[id]; ok {
				parent[find(i)] = find(j)
			} else {
				owner[id] = i
			}
		}
	}
	groups := map[int][]match.Hit{}
	var order []int
	for i, h := range hits {
		r := find(i)
		if _, ok := groups[r]; !ok {
			order = append(order, r)
		}
		groups[r] = append(groups[r], h)
	}
	out := make([][]match.Hit, 0, len(order))
	for _, r := range order {
		g := groups[r]
		sort.Slice(g, func(i, j int) bool { return g[i].Advisory.ID < g[j].Advisory.ID })
		out = append(out, g)
	}
	return out
}

// vulnKey identifies what a finding's vulnerability part depends on: the
// matched records and the affected entries (which may carry their own
// severity).
func vulnKey(group []match.Hit) string {
	var b strings.Builder
	for _, h := range group {
		b.WriteString(h.Advisory.ID)
		b.WriteByte(0)
		b.WriteString(h.Affected.Ecosystem)
		b.WriteByte(0)
		b.WriteString(h.Affected.Name)
		b.WriteByte(0)
	}
	return b.String()
}

// assessor computes the vulnerability part of findings (ids, severity,
// exploitation, priority and reasons) once per distinct group of matched
// records: an SBOM with thousands of copies of one vulnerable package
// shares one assessment.
type assessor struct {
	kev   map[string]advisory.KEVEntry
	epss  map[string]advisory.EPSSScore
	enr   map[string]advisory.Enrichment
	cache map[string]*Finding
}

func (as *assessor) vulnerability(group []match.Hit) *Finding {
	k := vulnKey(group)
	if f, ok := as.cache[k]; ok {
		return f
	}
	f := &Finding{Source: "osv"}
	var ids, cves []string
	in := risk.Input{}
	for _, h := range group {
		a := h.Advisory
		f.Advisories = append(f.Advisories, a.ID)
		for _, id := range a.IDs() {
			if !contains(ids, id) {
				ids = append(ids, id)
			}
		}
		for _, c := range a.CVEs() {
			if !contains(cves, c) {
				cves = append(cves, c)
			}
		}
		if f.Summary == "" {
			f.Summary = a.Summary
		}
		if f.URL == "" {
			f.URL = a.URL
		}
		sev, word := a.Severity, a.SeverityWord
		if len(h.Affected.Severity) > 0 {
			sev = h.Affected.Severity
		}
		if h.Affected.SeverityWord != "" {
			word = h.Affected.SeverityWord
		}
		for _, s := range sev {
			if s.Type == advisory.SeverityUbuntu {
				in.Vendors = append(in.Vendors, advisory.VendorRating{Vendor: "Ubuntu", Ecosystem: h.Affected.Ecosystem, Package: h.Affected.Name, Rating: s.Score})
				continue
			}
			in.Vectors = append(in.Vectors, s.Score)
		}
		switch {
		case h.Affected.SeverityWord != "" && inventory.BaseEcosystem(h.Affected.Ecosystem) == "Debian":
			// Debian's OSV records carry the tracker's urgency per package.
			in.Vendors = append(in.Vendors, advisory.VendorRating{Vendor: "Debian", Ecosystem: h.Affected.Ecosystem, Package: h.Affected.Name, Rating: word})
		case word != "":
			in.SeverityWords = append(in.SeverityWords, word)
		}
	}
	f.Vulnerability = preferredID(ids, cves, f.Advisories)
	f.Aliases = []string{}
	for _, id := range ids {
		if id != f.Vulnerability {
			f.Aliases = append(f.Aliases, id)
		}
	}
	sort.Strings(f.Aliases)
	for _, c := range cves {
		if e, ok := as.kev[c]; ok && (f.KEV == nil || e.DateAdded.Before(f.KEV.DateAdded)) {
			e := e
			f.KEV = &e
		}
		if s, ok := as.epss[c]; ok && (f.EPSS == nil || s.Probability > f.EPSS.Probability) {
			s := s
			f.EPSS = &s
		}
	}
	in.KEV, in.EPSS = f.KEV, f.EPSS
	for _, h := range group {
		enrich(&in, as.enr, h.Advisory.CVEs(), h.Affected.Ecosystem, h.Affected.Name)
	}
	a := risk.Assess(in)
	f.Priority, f.Severity, f.Reasons, f.CVSS = a.Priority, a.Severity, a.Reasons, a.CVSS
	f.Exploitation, f.Automatable, f.TechnicalImpact = a.Exploitation, a.Automatable, a.TechnicalImpact
	as.cache[k] = f
	return f
}

// finding combines the vulnerability part with the package and its patch.
func (as *assessor) finding(u *unit, group []match.Hit, now time.Time) Finding {
	f := *as.vulnerability(group)
	p := u.pkg
	f.Ecosystem, f.Package, f.Version = p.Ecosystem, p.MatchName(), p.MatchVersion()
	f.Binaries, f.Locations, f.Cycle = u.binaries, u.locations, p.Cycle()
	f.FirstSeen = now.UTC()
	for _, h := range group {
		f.Fixed = MaxVersion(p.Ecosystem, f.Fixed, h.Fixed)
	}
	f.Due = risk.DueDate(f.Priority, f.FirstSeen, f.KEV)
	return f
}

// preferredID picks the id a finding is shown under: its CVE when the
// merged advisories name exactly one, else the first matched record's id.
func preferredID(ids, cves, advisories []string) string {
	if len(cves) == 1 {
		return cves[0]
	}
	for _, id := range ids {
		if strings.HasPrefix(id, "GHSA-") && len(advisories) > 1 {
			return id
		}
	}
	return advisories[0]
}

// MaxVersion returns the larger of two versions of an ecosystem; "" counts
// as absent. Unparsable versions compare as text.
func MaxVersion(eco, a, b string) string {
	if a == "" {
		return b
	}
	if b == "" {
		return a
	}
	c, err := match.Compare(eco, a, b)
	if err != nil {
		if a < b {
			return b
		}
		return a
	}
	if c < 0 {
		return b
	}
	return a
}

// String renders a finding for logs.
func (f Finding) String() string {
	return fmt.Sprintf("%s %s %s@%s → %s", f.Priority, f.Vulnerability, f.Package, f.Version, f.Fixed)
}
