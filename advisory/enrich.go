package advisory

import (
	"strings"
	"time"
)

// CVERecord is what the CVE databases (NVD's CVE API) say about one CVE:
// its scores by every source, its weaknesses and its dates. It enriches
// the advisories that alias the CVE.
type CVERecord struct {
	ID string `json:"id"`
	// Assigner is the CNA that assigned the CVE (NVD's sourceIdentifier):
	// a score by it is the CNA's.
	Assigner     string    `json:"assigner,omitempty"`
	Status       string    `json:"status,omitempty"` // "Analyzed", "Awaiting Analysis", …
	Published    time.Time `json:"published,omitzero"`
	LastModified time.Time `json:"last_modified"`
	CWEs         []string  `json:"cwes,omitempty"` // "CWE-787"
	Scores       []Score   `json:"scores,omitempty"`
}

// Score roles: who scored a CVE.
const (
	RoleCNA = "cna" // the CNA that assigned the CVE
	RoleNVD = "nvd" // NVD's own analysis (nvd@nist.gov)
	RoleADP = "adp" // another scorer NVD shows (CISA ADP)
)

// NVDSource is NVD's own source identifier.
const NVDSource = "nvd@nist.gov"

// CISAADPSource is the source identifier of CISA's Authorized Data
// Publisher ("Vulnrichment") scores.
const CISAADPSource = "134c704f-9b21-4f2e-91b3-4a467353bcc0"

// Score is one CVSS score of a CVE by one source.
type Score struct {
	Source string `json:"source"` // nvd@nist.gov, a CNA's e-mail or UUID
	// Type is NVD's "Primary" (the source's own score of the record it
	// owns) or "Secondary".
	Type    string  `json:"type"`
	Role    string  `json:"role"`    // RoleCNA, RoleNVD or RoleADP
	Version string  `json:"version"` // "4.0", "3.1", "3.0", "2.0"
	Vector  string  `json:"vector"`
	Base    float64 `json:"base_score"`
}

// RoleOf is the role of a score's source in a record assigned by assigner.
func RoleOf(source, assigner string) string {
	switch {
	case source == NVDSource:
		return RoleNVD
	case source == assigner && source != "":
		return RoleCNA
	}
	return RoleADP
}

// SourceName names a score's source for reasons: "NVD", "the CNA
// (secalert@redhat.com)", "CISA ADP".
func (s Score) SourceName() string {
	switch {
	case s.Role == RoleNVD:
		return "NVD"
	case s.Role == RoleCNA:
		return "the CNA (" + s.Source + ")"
	case s.Source == CISAADPSource:
		return "CISA ADP"
	}
	return "ADP " + s.Source
}

// VendorRating is a distribution's own rating of a CVE in one of its
// packages: Debian's urgency, Ubuntu's priority, Red Hat's severity.
type VendorRating struct {
	CVE    string `json:"cve"`
	Vendor string `json:"vendor"` // "Debian", "Ubuntu", "Red Hat"
	// Ecosystem and Package say where the rating applies ("Debian:12",
	// the source package); empty Package: every package.
	Ecosystem string `json:"ecosystem,omitempty"`
	Package   string `json:"package,omitempty"`
	Rating    string `json:"rating"` // the vendor's word: "unimportant", "low", "medium", "high", …
}

// rpmRebuilds are the ecosystems built from Red Hat's sources: a rating of
// ecosystem "Red Hat" applies to their packages too.
var rpmRebuilds = map[string]bool{"Red Hat": true, "Rocky Linux": true, "AlmaLinux": true}

// AppliesTo says whether the rating applies to package pkg of ecosystem
// eco: the same ecosystem (or any, when the rating names none) and the same
// package (or any). A rating of ecosystem "Red Hat" (Red Hat's severity,
// from its CSAF VEX documents) applies to the RPM distributions built from
// Red Hat's sources: Red Hat, Rocky Linux and AlmaLinux, whatever release.
func (v VendorRating) AppliesTo(eco, pkg string) bool {
	if v.Package != "" && v.Package != pkg {
		return false
	}
	if v.Ecosystem == "" || v.Ecosystem == eco {
		return true
	}
	base, _, _ := strings.Cut(eco, ":")
	return v.Ecosystem == "Red Hat" && rpmRebuilds[base]
}

// Enrichment is everything known about one CVE beyond its advisories.
type Enrichment struct {
	Record  *CVERecord     `json:"record,omitempty"`
	Vendors []VendorRating `json:"vendors,omitempty"`
}
