// Package advisory holds vulnerability advisories (OSV records converted to
// patchbay's own types), the exploitation data that enriches them (CISA KEV,
// EPSS), and the parsers for their upstream formats.
//
// The OSV wire format is parsed with the OSV schema's Go bindings and
// converted at the boundary; nothing outside this package sees the wire
// types. GIT ranges are dropped at conversion: patchbay matches packages by
// version, never by commit.
package advisory

import (
	"slices"
	"strings"
	"time"
)

// Advisory is one OSV record.
type Advisory struct {
	ID        string    `json:"id"`
	Aliases   []string  `json:"aliases,omitempty"`
	Modified  time.Time `json:"modified"`
	Published time.Time `json:"published,omitempty"`
	// Withdrawn is set when the record was withdrawn; such records are
	// removed from the index at import.
	Withdrawn time.Time  `json:"withdrawn,omitempty"`
	Summary   string     `json:"summary,omitempty"`
	Severity  []Severity `json:"severity,omitempty"`
	// SeverityWord is a database or ecosystem severity ("HIGH",
	// "moderate", "critical"), used when no CVSS vector is given.
	SeverityWord string     `json:"severity_word,omitempty"`
	Affected     []Affected `json:"affected"`
	// URL is the advisory's own page, when the record names one.
	URL string `json:"url,omitempty"`
}

// Severity is a scored severity: a CVSS vector and its type, or
// Ubuntu's priority.
type Severity struct {
	Type  string `json:"type"`  // CVSS_V2, CVSS_V3, CVSS_V4, Ubuntu
	Score string `json:"score"` // the vector; for Ubuntu the priority ("medium")
}

// SeverityUbuntu is the OSV severity type of Ubuntu's priority
// (negligible, low, medium, high, critical): a vendor rating, not a CVSS
// vector.
const SeverityUbuntu = "Ubuntu"

// Affected is one affected package of an advisory.
type Affected struct {
	Ecosystem string   `json:"ecosystem"`
	Name      string   `json:"name"`
	Ranges    []Range  `json:"ranges,omitempty"`
	Versions  []string `json:"versions,omitempty"`
	// Severity and SeverityWord override the advisory's for this package.
	Severity     []Severity `json:"severity,omitempty"`
	SeverityWord string     `json:"severity_word,omitempty"`
}

// Range types kept by patchbay (GIT ranges are dropped).
const (
	RangeSemver    = "SEMVER"
	RangeEcosystem = "ECOSYSTEM"
)

// Range is an ECOSYSTEM or SEMVER range of events.
type Range struct {
	Type   string  `json:"type"`
	Events []Event `json:"events"`
}

// Event is one OSV range event; exactly one field is set.
type Event struct {
	Introduced   string `json:"introduced,omitempty"`
	Fixed        string `json:"fixed,omitempty"`
	LastAffected string `json:"last_affected,omitempty"`
	Limit        string `json:"limit,omitempty"`
}

// IDs returns the advisory's id followed by its aliases, without duplicates.
func (a *Advisory) IDs() []string {
	out := make([]string, 0, 1+len(a.Aliases))
	out = append(out, a.ID)
	for _, al := range a.Aliases {
		if !slices.Contains(out, al) {
			out = append(out, al)
		}
	}
	return out
}

// CVEs returns the CVE ids among the advisory's id and aliases.
func (a *Advisory) CVEs() []string {
	var out []string
	for _, id := range a.IDs() {
		if cve := CVEOf(id); cve != "" && !slices.Contains(out, cve) {
			out = append(out, cve)
		}
	}
	return out
}

// CVEOf returns the CVE id named by id: the id itself, or the CVE inside a
// derived id such as "DEBCL-CVE-2024-1234-openssl". Empty when none.
func CVEOf(id string) string {
	i := strings.Index(id, "CVE-")
	if i < 0 {
		return ""
	}
	rest := id[i:]
	// CVE-YYYY-NNNN…: take digits of the sequence part.
	parts := strings.SplitN(rest, "-", 4)
	if len(parts) < 3 || len(parts[1]) != 4 || !allDigits(parts[1]) {
		return ""
	}
	seq := parts[2]
	if len(seq) < 4 || !allDigits(seq) {
		return ""
	}
	return "CVE-" + parts[1] + "-" + seq
}

func allDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}
