package scan

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/patchbay/patchbay/patch"
	"github.com/patchbay/patchbay/risk"
)

// AddUpdates merges the package manager's view into a result: each update
// becomes a patch in res.Updates, and each CVE it fixes a finding of
// source "apt" (or the manager's name) — or, when the feeds already found
// that vulnerability in that package, the existing finding gains the
// source. now is the first-seen time of new findings.
func AddUpdates(ctx context.Context, src Source, res *Result, manager string, ups []patch.Update, now time.Time) error {
	res.Updates = append(res.Updates, ups...)
	var cves []string
	for _, u := range ups {
		cves = append(cves, u.CVEs...)
	}
	kev, epss, err := src.Exploitation(ctx, cves)
	if err != nil {
		return err
	}
	enr, err := enrichment(ctx, src, cves)
	if err != nil {
		return err
	}
	index := map[string]int{} // package + id → finding
	for i, f := range res.Findings {
		for _, id := range append([]string{f.Vulnerability}, f.Aliases...) {
			index[f.Ecosystem+"\x00"+f.Package+"\x00"+id] = i
		}
	}
	for _, u := range ups {
		for _, cve := range u.CVEs {
			k := u.Ecosystem + "\x00" + u.SourceOf() + "\x00" + cve
			if i, ok := index[k]; ok {
				f := &res.Findings[i]
				if f.Source != manager && !containsSource(f.Source, manager) {
					f.Source += "+" + manager
				}
				if !contains(f.Binaries, u.Name) {
					f.Binaries = append(f.Binaries, u.Name)
				}
				if f.Fixed == "" {
					f.Fixed = u.Candidate
				}
				continue
			}
			f := Finding{
				Source: manager, Ecosystem: u.Ecosystem, Package: u.SourceOf(), Version: u.InstalledSourceVersion(),
				Binaries: []string{u.Name}, Locations: []string{}, Cycle: u.Cycle,
				Vulnerability: cve, Aliases: []string{}, Advisories: []string{},
				Fixed: u.Candidate, FirstSeen: now.UTC(),
			}
			if u.Advisory != "" {
				f.Advisories = append(f.Advisories, u.Advisory)
			}
			in := risk.Input{}
			if e, ok := kev[cve]; ok {
				e := e
				f.KEV, in.KEV = &e, &e
			}
			if s, ok := epss[cve]; ok {
				s := s
				f.EPSS, in.EPSS = &s, &s
			}
			enrich(&in, enr, []string{cve}, u.Ecosystem, u.SourceOf())
			a := risk.Assess(in)
			f.Priority, f.Severity, f.CVSS = a.Priority, a.Severity, a.CVSS
			f.Exploitation, f.Automatable, f.TechnicalImpact = a.Exploitation, a.Automatable, a.TechnicalImpact
			f.Reasons = append([]string{fmt.Sprintf("fixed by the %s update to %s", u.Origin, u.Candidate)}, a.Reasons...)
			f.Due = risk.DueDate(f.Priority, f.FirstSeen, f.KEV)
			index[k] = len(res.Findings)
			res.Findings = append(res.Findings, f)
		}
	}
	SortFindings(res.Findings)
	sort.SliceStable(res.Updates, func(i, j int) bool { return res.Updates[i].Name < res.Updates[j].Name })
	return nil
}

func containsSource(sources, s string) bool {
	return slices.Contains(strings.Split(sources, "+"), s)
}
