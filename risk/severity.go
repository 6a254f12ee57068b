package risk

import (
	"fmt"
	"strings"

	"github.com/patchbay/patchbay/advisory"
)

// Precedence is the order in which the sources of a vulnerability's
// severity are consulted; the first that has a valid CVSS vector decides
// automatable and technical impact:
//
//  1. the advisory's own CVSS vectors (the highest scored of the matched
//     records): the advisory describes this package's vulnerability;
//  2. the CNA's score in the NVD record (the CNA assigned the CVE and
//     usually knows the product best);
//  3. NVD's own score (nvd@nist.gov);
//  4. another scorer NVD shows (CISA ADP);
//  5. with no CVSS at all, the worst vendor or database rating (Debian
//     urgency, Ubuntu priority, Red Hat severity, GHSA's severity):
//     critical is automatable with total impact, high is total impact,
//     medium and low partial impact.
//
// Within one source the newest CVSS version wins (4.0, 3.1, 3.0, 2.0),
// then the highest score. A vendor's "unimportant" or "negligible" rating
// of the package lowers a CVSS-scored finding's decision points (not
// automatable, partial impact): the vendor knows its build, but
// exploitation evidence (KEV, EPSS) is never lowered, so the policy's
// base table still decides how far the finding falls.
var Precedence = []string{"the advisory", advisory.RoleCNA, advisory.RoleNVD, advisory.RoleADP, "vendor rating"}

var versionRank = map[string]int{"2.0": 1, "3.0": 2, "3.1": 3, "4.0": 4}

// severity sets a's severity decision points from in by Precedence and
// returns the reasons.
func (a *Assessment) severity(in Input) []string {
	var best *CVSS
	for _, v := range in.Vectors {
		c, err := ParseCVSS(v)
		if err != nil {
			a.Problems = append(a.Problems, err.Error())
			continue
		}
		if best == nil || c.Score > best.Score || (c.Score == best.Score && c.Version > best.Version) {
			cc := c
			best = &cc
		}
	}
	if best != nil {
		a.ScoredBy = "the advisory"
	}
	for _, role := range []string{advisory.RoleCNA, advisory.RoleNVD, advisory.RoleADP} {
		if best != nil {
			break
		}
		var from advisory.Score
		for _, r := range in.Records {
			for _, s := range r.Scores {
				if s.Role != role {
					continue
				}
				c, err := ParseCVSS(s.Vector)
				if err != nil {
					a.Problems = append(a.Problems, fmt.Sprintf("%s score by %s: %v", r.ID, s.Source, err))
					continue
				}
				if best == nil || versionRank[c.Version] > versionRank[best.Version] ||
					(c.Version == best.Version && c.Score > best.Score) {
					cc := c
					best, from = &cc, s
				}
			}
		}
		if best != nil {
			a.ScoredBy = from.SourceName()
		}
	}
	var reasons []string
	if c := best; c != nil {
		a.CVSS = c
		a.Automatable, a.Severity = c.Automatable, c.Rating
		if c.HighImpact {
			a.TechnicalImpact = "total"
		}
		s := fmt.Sprintf("CVSS %s %.1f %s from %s", c.Version, c.Score, c.Rating, a.ScoredBy)
		switch {
		case c.Automatable:
			s += ", network-reachable without privileges or user interaction"
		case c.Network:
			s += ", network-reachable but not automatable"
		case c.AttackVector == "A":
			s += ", reachable from the adjacent network only"
		case c.AttackVector == "P":
			s += ", needs physical access"
		default:
			s += ", needs local access"
		}
		reasons = append(reasons, s)
		if c.HighImpact {
			reasons = append(reasons, "high impact on "+joinAnd(c.Impacts))
		}
		for _, v := range in.Vendors {
			if w := strings.ToLower(v.Rating); w == "unimportant" || w == "negligible" {
				a.Automatable, a.TechnicalImpact = false, "partial"
				reasons = append(reasons, fmt.Sprintf("%s rates it %s%s: treated as not automatable with partial impact (exploitation evidence still counts)",
					v.Vendor, w, inPackage(v)))
				break
			}
		}
		return reasons
	}
	// No CVSS: the worst rating of the vendors, then of the databases.
	word, from, by := "", "", ""
	for _, v := range in.Vendors {
		if w := normWord(v.Rating); wordRank[w] > wordRank[word] {
			word, by = w, vendorTerm(v)
			from = by + " " + strings.ToLower(v.Rating) + inPackage(v)
		}
	}
	if w := worstWord(in.SeverityWords); wordRank[w] > wordRank[word] {
		word, from, by = w, "database severity "+w, "the database"
	}
	if word == "" {
		return []string{"no CVSS vector or severity in the advisories, NVD or the vendors"}
	}
	a.Severity, a.ScoredBy = word, by
	impact := "partial impact"
	switch word {
	case "critical":
		a.Automatable, a.TechnicalImpact = true, "total"
		impact = "automatable, total impact"
	case "high":
		a.TechnicalImpact = "total"
		impact = "total impact"
	}
	return []string{fmt.Sprintf("no CVSS vector; %s: %s", from, impact)}
}

// normWord maps a vendor or database word to low, medium, high or
// critical ("" for words that rate nothing).
func normWord(w string) string {
	return worstWord([]string{w})
}

// vendorTerm is the vendor's name for its rating.
func vendorTerm(v advisory.VendorRating) string {
	switch v.Vendor {
	case "Debian":
		return "Debian urgency"
	case "Ubuntu":
		return "Ubuntu priority"
	case "Red Hat":
		return "Red Hat severity"
	}
	return v.Vendor + " rating"
}

func inPackage(v advisory.VendorRating) string {
	if v.Package == "" {
		return ""
	}
	return " in " + v.Package
}
