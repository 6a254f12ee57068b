// Package risk turns what is known about a vulnerability — CVSS vectors,
// exploitation evidence (CISA KEV, EPSS) — into a priority P1..P4 with the
// reasons that decided it, and an SLA due date.
//
// The priority follows an SSVC-style decision table over three inputs:
// exploitation (active when in KEV, likely when EPSS ≥ 0.1, else none),
// automatable (the CVSS vector says network-reachable, low complexity, no
// privileges, no user interaction) and technical impact (total when the
// vector has a high confidentiality, integrity or availability impact). This
// is the first cut; the policy documents make the table configurable.
package risk

import (
	"errors"
	"fmt"
	"strings"

	gocvss20 "github.com/pandatix/go-cvss/20"
	gocvss30 "github.com/pandatix/go-cvss/30"
	gocvss31 "github.com/pandatix/go-cvss/31"
	gocvss40 "github.com/pandatix/go-cvss/40"
)

// CVSS is a parsed, scored CVSS vector with the facts the table uses.
type CVSS struct {
	Version string  `json:"version"` // "2.0", "3.0", "3.1", "4.0"
	Vector  string  `json:"vector"`
	Score   float64 `json:"score"`
	Rating  string  `json:"rating"` // none, low, medium, high, critical
	// Network: attack vector network. Automatable: network, low
	// complexity, no privileges, no user interaction (v4: and no attack
	// requirements; v2: no authentication).
	Network bool `json:"network"`
	// AttackVector is the vector's AV value: N, A, L or P.
	AttackVector string `json:"attack_vector"`
	Automatable  bool   `json:"automatable"`
	// HighImpact: a high (v2: complete) impact on confidentiality,
	// integrity or availability of the vulnerable system.
	HighImpact bool `json:"high_impact"`
	// Impacts names the high impacts, for reasons: "confidentiality", …
	Impacts []string `json:"-"`
}

// ErrUnknownCVSS is returned for vectors of no known CVSS version.
var ErrUnknownCVSS = errors.New("unknown CVSS version")

// ParseCVSS parses and scores a CVSS v2, v3.0, v3.1 or v4.0 vector.
func ParseCVSS(vector string) (CVSS, error) {
	vector = strings.TrimSpace(vector)
	c := CVSS{Vector: vector}
	var get func(string) string
	switch {
	case strings.HasPrefix(vector, "CVSS:4.0/"):
		v, err := gocvss40.ParseVector(vector)
		if err != nil {
			return c, fmt.Errorf("CVSS vector %q: %w", vector, err)
		}
		c.Version, c.Score = "4.0", v.Score()
		get = func(k string) string { s, _ := v.Get(k); return s }
		c.Network = get("AV") == "N"
		c.Automatable = c.Network && get("AC") == "L" && get("AT") == "N" && get("PR") == "N" && get("UI") == "N"
		c.Impacts = highs(get, [3]string{"VC", "VI", "VA"}, "H")
	case strings.HasPrefix(vector, "CVSS:3.1/"):
		v, err := gocvss31.ParseVector(vector)
		if err != nil {
			return c, fmt.Errorf("CVSS vector %q: %w", vector, err)
		}
		c.Version, c.Score = "3.1", v.BaseScore()
		get = func(k string) string { s, _ := v.Get(k); return s }
	case strings.HasPrefix(vector, "CVSS:3.0/"):
		v, err := gocvss30.ParseVector(vector)
		if err != nil {
			return c, fmt.Errorf("CVSS vector %q: %w", vector, err)
		}
		c.Version, c.Score = "3.0", v.BaseScore()
		get = func(k string) string { s, _ := v.Get(k); return s }
	case strings.HasPrefix(vector, "AV:"):
		v, err := gocvss20.ParseVector(vector)
		if err != nil {
			return c, fmt.Errorf("CVSS vector %q: %w", vector, err)
		}
		c.Version, c.Score = "2.0", v.BaseScore()
		get = func(k string) string { s, _ := v.Get(k); return s }
		c.Network = get("AV") == "N"
		c.Automatable = c.Network && get("AC") == "L" && get("Au") == "N"
		c.Impacts = highs(get, [3]string{"C", "I", "A"}, "C")
	default:
		return c, fmt.Errorf("CVSS vector %q: %w", vector, ErrUnknownCVSS)
	}
	if c.Version == "3.0" || c.Version == "3.1" {
		c.Network = get("AV") == "N"
		c.Automatable = c.Network && get("AC") == "L" && get("PR") == "N" && get("UI") == "N"
		c.Impacts = highs(get, [3]string{"C", "I", "A"}, "H")
	}
	c.AttackVector = get("AV")
	c.HighImpact = len(c.Impacts) > 0
	c.Rating = Rating(c.Score)
	return c, nil
}

func highs(get func(string) string, keys [3]string, high string) []string {
	names := [3]string{"confidentiality", "integrity", "availability"}
	var out []string
	for i, k := range keys {
		if get(k) == high {
			out = append(out, names[i])
		}
	}
	return out
}

// Rating maps a score to the CVSS v3/v4 qualitative rating (also used for
// v2 scores, which have no "critical" band of their own).
func Rating(score float64) string {
	switch {
	case score == 0:
		return "none"
	case score < 4:
		return "low"
	case score < 7:
		return "medium"
	case score < 9:
		return "high"
	}
	return "critical"
}
