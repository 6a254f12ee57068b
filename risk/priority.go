package risk

import (
	"fmt"
	"strings"
	"time"

	"github.com/patchbay/patchbay/advisory"
)

// Priority is P1 (most urgent) to P4.
type Priority int

// Priorities.
const (
	P1 Priority = 1
	P2 Priority = 2
	P3 Priority = 3
	P4 Priority = 4
)

// String renders "P1"; the zero Priority (none decided) renders "".
func (p Priority) String() string {
	if p >= 0 && int(p) < len(priorityNames) {
		return priorityNames[p]
	}
	return fmt.Sprintf("P%d", int(p))
}

var priorityNames = [...]string{"", "P1", "P2", "P3", "P4"}

// ParsePriority parses "P1".."P4" (case-insensitive).
func ParsePriority(s string) (Priority, error) {
	switch strings.ToUpper(strings.TrimSpace(s)) {
	case "P1":
		return P1, nil
	case "P2":
		return P2, nil
	case "P3":
		return P3, nil
	case "P4":
		return P4, nil
	}
	return 0, fmt.Errorf("priority %q: want P1, P2, P3 or P4", s)
}

// MarshalText renders "P1".
func (p Priority) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// Exploitation is the SSVC exploitation decision point.
type Exploitation string

// Exploitation values.
const (
	ExploitActive Exploitation = "active" // in CISA KEV
	ExploitLikely Exploitation = "likely" // EPSS ≥ EPSSLikely
	ExploitNone   Exploitation = "none"
)

// EPSSLikely is the EPSS probability from which exploitation is "likely".
const EPSSLikely = 0.1

// ExploitationOf is the exploitation decision of a vulnerability: active
// when in KEV, likely when its EPSS probability is at least EPSSLikely.
func ExploitationOf(kev *advisory.KEVEntry, epss *advisory.EPSSScore) Exploitation {
	switch {
	case kev != nil:
		return ExploitActive
	case epss != nil && epss.Probability >= EPSSLikely:
		return ExploitLikely
	}
	return ExploitNone
}

// Input is what is known about one vulnerability of one package.
type Input struct {
	// Vectors are the CVSS vectors of the advisories (all aliases).
	Vectors []string
	// SeverityWords are database or ecosystem severities ("HIGH").
	SeverityWords []string
	// Records are the NVD CVE records of the vulnerability's CVEs: the
	// scores of the CNA, NVD and ADPs.
	Records []*advisory.CVERecord
	// Vendors are the distributions' own ratings of the vulnerability in
	// this package (Debian urgency, Ubuntu priority, Red Hat severity).
	Vendors []advisory.VendorRating
	KEV     *advisory.KEVEntry
	EPSS    *advisory.EPSSScore
}

// Assessment is the decision and why.
type Assessment struct {
	Priority     Priority     `json:"priority"`
	Exploitation Exploitation `json:"exploitation"`
	Automatable  bool         `json:"automatable"`
	// TechnicalImpact is "total" or "partial".
	TechnicalImpact string `json:"technical_impact"`
	// CVSS is the vector that decided automatable and impact, by
	// Precedence. Nil when there was none.
	CVSS *CVSS `json:"cvss,omitempty"`
	// ScoredBy names where the severity came from: "the advisory", "NVD",
	// "the CNA (secalert@redhat.com)", "CISA ADP", "Debian urgency", or
	// "" when nothing scored it.
	ScoredBy string `json:"scored_by,omitempty"`
	// Severity is the qualitative severity: the CVSS rating, else the
	// database's word, else "unknown".
	Severity string `json:"severity"`
	// Reasons are sentences, most decisive first.
	Reasons []string `json:"reasons"`
	// Problems are inputs that could not be used (a bad vector).
	Problems []string `json:"problems,omitempty"`
}

// table[exploitation][automatable][total] → priority. Monotone: more
// exploitation evidence, automatable, or total impact never lowers it.
var table = map[Exploitation][2][2]Priority{
	//                 automatable=no: {partial, total}, yes: {partial, total}
	ExploitActive: {{P2, P1}, {P1, P1}},
	ExploitLikely: {{P3, P2}, {P2, P1}},
	ExploitNone:   {{P4, P3}, {P3, P2}},
}

// Decide returns the table's priority.
func Decide(e Exploitation, automatable, totalImpact bool) Priority {
	row := table[e]
	return row[b2i(automatable)][b2i(totalImpact)]
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Assess decides the priority of one vulnerability.
func Assess(in Input) Assessment {
	a := Assessment{Exploitation: ExploitNone, TechnicalImpact: "partial", Severity: "unknown"}
	var exploitReasons, severityReasons []string
	a.Exploitation = ExploitationOf(in.KEV, in.EPSS)
	switch a.Exploitation {
	case ExploitActive:
		s := "known exploited (CISA KEV since " + in.KEV.DateAdded.Format(time.DateOnly)
		if !in.KEV.DueDate.IsZero() {
			s += ", federal due date " + in.KEV.DueDate.Format(time.DateOnly)
		}
		s += ")"
		if in.KEV.Ransomware {
			s += ", used in ransomware campaigns"
		}
		exploitReasons = append(exploitReasons, s)
	case ExploitLikely:
		exploitReasons = append(exploitReasons, fmt.Sprintf("exploitation likely (EPSS %.2f, %s percentile)", in.EPSS.Probability, ordinal(in.EPSS.Percentile)))
	}
	if in.EPSS != nil && a.Exploitation != ExploitLikely {
		exploitReasons = append(exploitReasons, fmt.Sprintf("EPSS %.3f (%s percentile)", in.EPSS.Probability, ordinal(in.EPSS.Percentile)))
	}
	severityReasons = a.severity(in)
	a.Priority = Decide(a.Exploitation, a.Automatable, a.TechnicalImpact == "total")
	if a.Exploitation == ExploitNone {
		a.Reasons = append(severityReasons, exploitReasons...)
		a.Reasons = append(a.Reasons, "no known exploitation")
	} else {
		a.Reasons = append(exploitReasons, severityReasons...)
	}
	return a
}

// wordRank orders severity words; unknown words rank 0.
var wordRank = map[string]int{
	"unimportant": 1, "negligible": 1, "low": 2, "moderate": 3, "medium": 3, "high": 4, "important": 4, "critical": 5,
}

func worstWord(words []string) string {
	best, rank := "", 0
	for _, w := range words {
		w = strings.ToLower(strings.TrimSpace(w))
		if wordRank[w] > rank {
			best, rank = w, wordRank[w]
		}
	}
	switch best {
	case "moderate":
		return "medium"
	case "important":
		return "high"
	case "negligible", "unimportant":
		return "low"
	}
	return best
}

func ordinal(p float64) string {
	n := int(p*100 + 0.5)
	if n > 99 {
		n = 99
	}
	suffix := "th"
	if n%100 < 11 || n%100 > 13 {
		switch n % 10 {
		case 1:
			suffix = "st"
		case 2:
			suffix = "nd"
		case 3:
			suffix = "rd"
		}
	}
	return fmt.Sprintf("%d%s", n, suffix)
}

func joinAnd(xs []string) string {
	switch len(xs) {
	case 0:
		return ""
	case 1:
		return xs[0]
	}
	return strings.Join(xs[:len(xs)-1], ", ") + " and " + xs[len(xs)-1]
}

// SLA is the time allowed to remediate each priority.
var SLA = map[Priority]time.Duration{
	P1: 7 * 24 * time.Hour,
	P2: 30 * 24 * time.Hour,
	P3: 90 * 24 * time.Hour,
	P4: 180 * 24 * time.Hour,
}

// DueDate is firstSeen plus the priority's SLA, or for a P1 in KEV the KEV
// due date when that is sooner.
func DueDate(p Priority, firstSeen time.Time, kev *advisory.KEVEntry) time.Time {
	due := firstSeen.Add(SLA[p])
	if p == P1 && kev != nil && !kev.DueDate.IsZero() && kev.DueDate.Before(due) {
		return kev.DueDate
	}
	return due
}

// UnmarshalText parses "P1".."P4", and "" as the zero Priority.
func (p *Priority) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		*p = 0
		return nil
	}
	v, err := ParsePriority(string(b))
	if err != nil {
		return err
	}
	*p = v
	return nil
}
