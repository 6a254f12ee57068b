package risk

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/patchbay/patchbay/advisory"
)

var update = flag.Bool("update", false, "rewrite golden files")

func TestParseCVSS(t *testing.T) {
	cases := []struct {
		vector              string
		version             string
		score               float64
		rating              string
		automatable, impact bool
	}{
		// CVE-2021-44228 (Log4Shell), NVD.
		{"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H", "3.1", 10.0, "critical", true, true},
		// CVE-2023-49083 (cryptography), PyPA.
		{"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H", "3.1", 7.5, "high", true, true},
		// A v3.0 XSS: user interaction, low impacts.
		{"CVSS:3.0/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N", "3.0", 6.1, "medium", false, false},
		// Local privilege escalation.
		{"CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H", "3.1", 7.8, "high", false, true},
		// CVSS v2, partial impacts.
		{"AV:N/AC:L/Au:N/C:P/I:P/A:P", "2.0", 7.5, "high", true, false},
		// CVSS v2, complete impacts.
		{"AV:N/AC:L/Au:N/C:C/I:C/A:C", "2.0", 10.0, "critical", true, true},
		// CVSS v4.0 (the specification's example of a critical base vector).
		{"CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N", "4.0", 9.3, "critical", true, true},
		{"CVSS:4.0/AV:N/AC:L/AT:P/PR:N/UI:N/VC:L/VI:N/VA:N/SC:N/SI:N/SA:N", "4.0", 6.3, "medium", false, false},
	}
	for _, c := range cases {
		got, err := ParseCVSS(c.vector)
		if err != nil {
			t.Errorf("%s: %v", c.vector, err)
			continue
		}
		if got.Version != c.version || got.Score != c.score || got.Rating != c.rating || got.Automatable != c.automatable || got.HighImpact != c.impact {
			t.Errorf("%s: %+v; want %s %.1f %s automatable=%v impact=%v", c.vector, got, c.version, c.score, c.rating, c.automatable, c.impact)
		}
	}
	for _, bad := range []string{"", "CVSS:3.1/AV:N", "CVSS:9.9/AV:N", "AV:X/AC:L/Au:N/C:P/I:P/A:P", "hello"} {
		if _, err := ParseCVSS(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

// grid is every combination of the inputs the table looks at.
func grid() []struct {
	name string
	in   Input
} {
	kev := &advisory.KEVEntry{CVE: "CVE-2024-0001", DateAdded: time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC), DueDate: time.Date(2024, 3, 22, 0, 0, 0, 0, time.UTC)}
	exploits := []struct {
		name string
		kev  *advisory.KEVEntry
		epss *advisory.EPSSScore
	}{
		{"kev", kev, nil},
		{"epss-0.42", nil, &advisory.EPSSScore{Probability: 0.42, Percentile: 0.97}},
		{"epss-0.01", nil, &advisory.EPSSScore{Probability: 0.01, Percentile: 0.4}},
		{"none", nil, nil},
	}
	vectors := []struct {
		name    string
		vectors []string
		words   []string
	}{
		{"auto-total", []string{"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}, nil},
		{"auto-partial", []string{"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:L/I:N/A:N"}, nil},
		{"net-total", []string{"CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:N"}, nil},
		{"local-partial", []string{"CVSS:3.1/AV:L/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N"}, nil},
		{"word-critical", nil, []string{"CRITICAL"}},
		{"word-moderate", nil, []string{"MODERATE"}},
		{"nothing", nil, nil},
	}
	var out []struct {
		name string
		in   Input
	}
	for _, e := range exploits {
		for _, v := range vectors {
			out = append(out, struct {
				name string
				in   Input
			}{e.name + "/" + v.name, Input{Vectors: v.vectors, SeverityWords: v.words, KEV: e.kev, EPSS: e.epss}})
		}
	}
	return out
}

func TestTableGolden(t *testing.T) {
	var b strings.Builder
	for _, g := range grid() {
		a := Assess(g.in)
		fmt.Fprintf(&b, "%-28s %s  %s\n", g.name, a.Priority, strings.Join(a.Reasons, "; "))
	}
	const golden = "testdata/table.golden"
	if *update {
		os.MkdirAll("testdata", 0o755)
		if err := os.WriteFile(golden, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test ./risk -update to create it)", err)
	}
	if b.String() != string(want) {
		t.Errorf("decisions differ from %s (go test ./risk -update, then review the diff):\n%s", golden, b.String())
	}
}

// TestTableMonotone: more exploitation evidence, automatable or total impact
// never lowers a priority.
func TestTableMonotone(t *testing.T) {
	order := []Exploitation{ExploitNone, ExploitLikely, ExploitActive}
	for i, e := range order {
		for _, auto := range []bool{false, true} {
			for _, total := range []bool{false, true} {
				p := Decide(e, auto, total)
				if i > 0 && Decide(order[i-1], auto, total) < p {
					t.Errorf("%s→%s lowers priority (auto=%v total=%v)", order[i-1], e, auto, total)
				}
				if !auto && Decide(e, true, total) > p {
					t.Errorf("automatable lowers priority (%s total=%v)", e, total)
				}
				if !total && Decide(e, auto, true) > p {
					t.Errorf("total impact lowers priority (%s auto=%v)", e, auto)
				}
			}
		}
	}
}

func TestDueDate(t *testing.T) {
	seen := time.Date(2024, 3, 10, 12, 0, 0, 0, time.UTC)
	kevSoon := &advisory.KEVEntry{DueDate: time.Date(2024, 3, 12, 0, 0, 0, 0, time.UTC)}
	kevLate := &advisory.KEVEntry{DueDate: time.Date(2024, 4, 30, 0, 0, 0, 0, time.UTC)}
	cases := []struct {
		p    Priority
		kev  *advisory.KEVEntry
		want time.Time
	}{
		{P1, nil, seen.AddDate(0, 0, 7)},
		{P1, kevSoon, kevSoon.DueDate},
		{P1, kevLate, seen.AddDate(0, 0, 7)},
		{P2, kevSoon, seen.AddDate(0, 0, 30)},
		{P3, nil, seen.AddDate(0, 0, 90)},
		{P4, nil, seen.AddDate(0, 0, 180)},
	}
	for _, c := range cases {
		if got := DueDate(c.p, seen, c.kev); !got.Equal(c.want) {
			t.Errorf("%s kev=%v: %v, want %v", c.p, c.kev != nil, got, c.want)
		}
	}
}

func TestAssessPicksHighestVectorAndReportsBadOnes(t *testing.T) {
	a := Assess(Input{Vectors: []string{"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:L/I:N/A:N", "garbage", "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H"}})
	if a.CVSS == nil || a.CVSS.Score != 10 || a.Priority != P2 || len(a.Problems) != 1 {
		t.Errorf("%+v", a)
	}
}

// TestPrecedence: the advisory's own vector, then the CNA's, then NVD's,
// then an ADP's, then the vendor's rating decide, and the reasons name
// which; a vendor's "unimportant" lowers the CVSS decision points but
// never the exploitation evidence.
func TestPrecedence(t *testing.T) {
	const (
		critical = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H" // 9.8
		local    = "CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H" // 7.8
		medium   = "CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:U/C:L/I:L/A:N" // 5.4
		v4       = "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N"
	)
	rec := &advisory.CVERecord{ID: "CVE-2024-0001", Assigner: "secalert@redhat.com", Scores: []advisory.Score{
		{Source: "nvd@nist.gov", Type: "Primary", Role: advisory.RoleNVD, Version: "3.1", Vector: critical},
		{Source: "secalert@redhat.com", Type: "Secondary", Role: advisory.RoleCNA, Version: "3.1", Vector: local},
		{Source: advisory.CISAADPSource, Type: "Secondary", Role: advisory.RoleADP, Version: "3.1", Vector: medium},
	}}
	nvdOnly := &advisory.CVERecord{ID: "CVE-2024-0002", Scores: []advisory.Score{
		{Source: "nvd@nist.gov", Type: "Primary", Role: advisory.RoleNVD, Version: "2.0", Vector: "AV:N/AC:L/Au:N/C:P/I:P/A:P"},
		{Source: "nvd@nist.gov", Type: "Primary", Role: advisory.RoleNVD, Version: "3.1", Vector: medium},
	}}
	adpOnly := &advisory.CVERecord{ID: "CVE-2024-0003", Scores: []advisory.Score{
		{Source: advisory.CISAADPSource, Type: "Secondary", Role: advisory.RoleADP, Version: "3.1", Vector: medium}}}
	cnaV4 := &advisory.CVERecord{ID: "CVE-2024-0004", Assigner: "cna@python.org", Scores: []advisory.Score{
		{Source: "cna@python.org", Type: "Secondary", Role: advisory.RoleCNA, Version: "3.1", Vector: medium},
		{Source: "cna@python.org", Type: "Secondary", Role: advisory.RoleCNA, Version: "4.0", Vector: v4}}}
	unimportant := []advisory.VendorRating{{Vendor: "Debian", Package: "linux", Rating: "unimportant"}}
	kev := &advisory.KEVEntry{CVE: "CVE-2024-0001", DateAdded: time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)}
	cases := []struct {
		name     string
		in       Input
		by       string
		priority Priority
		reason   string
	}{
		{"advisory first", Input{Vectors: []string{medium}, Records: []*advisory.CVERecord{rec}}, "the advisory", P4, "CVSS 3.1 5.4 medium from the advisory, network-reachable but not automatable"},
		{"CNA before NVD", Input{Records: []*advisory.CVERecord{rec}}, "the CNA (secalert@redhat.com)", P3, "CVSS 3.1 7.8 high from the CNA (secalert@redhat.com), needs local access"},
		{"NVD, newest version", Input{Records: []*advisory.CVERecord{nvdOnly}}, "NVD", P4, "CVSS 3.1 5.4 medium from NVD, network-reachable but not automatable"},
		{"CNA's v4.0", Input{Records: []*advisory.CVERecord{cnaV4}}, "the CNA (cna@python.org)", P2, "CVSS 4.0 9.3 critical from the CNA (cna@python.org), network-reachable without privileges or user interaction"},
		{"ADP last", Input{Records: []*advisory.CVERecord{adpOnly}}, "CISA ADP", P4, "CVSS 3.1 5.4 medium from CISA ADP, network-reachable but not automatable"},
		{"vendor when no CVSS", Input{Vendors: []advisory.VendorRating{{Vendor: "Ubuntu", Package: "curl", Rating: "high"}, {Vendor: "Ubuntu", Package: "curl", Rating: "low"}}},
			"Ubuntu priority", P3, "no CVSS vector; Ubuntu priority high in curl: total impact"},
		{"vendor before database word", Input{SeverityWords: []string{"low"}, Vendors: []advisory.VendorRating{{Vendor: "Debian", Package: "expat", Rating: "medium"}}},
			"Debian urgency", P4, "no CVSS vector; Debian urgency medium in expat: partial impact"},
		{"unimportant lowers CVSS points", Input{Vectors: []string{critical}, Vendors: unimportant}, "the advisory", P4,
			"Debian rates it unimportant in linux: treated as not automatable with partial impact (exploitation evidence still counts)"},
		{"unimportant keeps exploitation", Input{Vectors: []string{critical}, Vendors: unimportant, KEV: kev}, "the advisory", P2,
			"Debian rates it unimportant in linux: treated as not automatable with partial impact (exploitation evidence still counts)"},
		{"nothing", Input{}, "", P4, "no CVSS vector or severity in the advisories, NVD or the vendors"},
	}
	for _, c := range cases {
		a := Assess(c.in)
		if a.ScoredBy != c.by || a.Priority != c.priority || !contains(a.Reasons, c.reason) {
			t.Errorf("%s: scored by %q, %s, reasons %q; want %q, %s, %q", c.name, a.ScoredBy, a.Priority, a.Reasons, c.by, c.priority, c.reason)
		}
	}
	// A bad vector from NVD is a problem naming the record and source;
	// the next source decides.
	bad := &advisory.CVERecord{ID: "CVE-2024-0009", Scores: []advisory.Score{
		{Source: "nvd@nist.gov", Role: advisory.RoleNVD, Version: "3.1", Vector: "CVSS:3.1/AV:N"},
		{Source: advisory.CISAADPSource, Role: advisory.RoleADP, Version: "3.1", Vector: medium}}}
	a := Assess(Input{Records: []*advisory.CVERecord{bad}})
	if a.ScoredBy != "CISA ADP" || len(a.Problems) != 1 || !strings.Contains(a.Problems[0], "CVE-2024-0009 score by nvd@nist.gov") {
		t.Errorf("bad NVD vector: scored by %q, problems %q", a.ScoredBy, a.Problems)
	}
}

func contains(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}
