package advisory

import (
	"archive/zip"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// sharedSeeds returns up to n members of a shared feed archive, when the
// shared data is present (fuzz seeds only: absent data means fewer seeds).
func sharedSeeds(rel string, n int) [][]byte {
	var out [][]byte
	for _, root := range []string{"../../shared", os.Getenv("PATCHBAY_SHARED")} {
		zr, err := zip.OpenReader(filepath.Join(root, rel))
		if err != nil {
			continue
		}
		defer zr.Close()
		for i, f := range zr.File {
			if i >= n {
				break
			}
			rc, err := f.Open()
			if err != nil {
				continue
			}
			b, _ := io.ReadAll(rc)
			rc.Close()
			out = append(out, b)
		}
		break
	}
	return out
}

func FuzzParseOSV(f *testing.F) {
	for _, rel := range []string{"feeds/osv/Go/all.zip", "feeds/osv/PyPI/all.zip", "feeds/osv/Debian/all.zip"} {
		for _, s := range sharedSeeds(rel, 20) {
			f.Add(s)
		}
	}
	f.Add([]byte(`{"id":"X-1","modified":"2024-01-01T00:00:00Z","affected":[{"package":{"ecosystem":"PyPI","name":"a"},"ranges":[{"type":"GIT","repo":"r","events":[{"introduced":"0"}]},{"type":"ECOSYSTEM","events":[{"introduced":"1"},{"last_affected":"2"}]}],"versions":["1"]}]}`))
	f.Add([]byte(`{"id":"X-2","withdrawn":"2024-01-01T00:00:00Z","severity":[{"type":"CVSS_V3","score":"CVSS:3.1/AV:N"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := ParseOSV(data)
		if err != nil {
			return
		}
		if a.ID == "" {
			t.Fatal("parsed a record without id")
		}
		for _, af := range a.Affected {
			if af.Name == "" || af.Ecosystem == "" {
				t.Fatal("affected entry without package")
			}
			for _, r := range af.Ranges {
				if r.Type != RangeSemver && r.Type != RangeEcosystem || len(r.Events) == 0 {
					t.Fatalf("kept range %+v", r)
				}
			}
		}
	})
}

func FuzzParseKEV(f *testing.F) {
	if b, err := os.ReadFile("../../shared/feeds/kev/known_exploited_vulnerabilities.json"); err == nil {
		// A prefix of the real catalog (truncated JSON is a seed too), and
		// its first entries closed into a valid catalog: the whole 1 MB
		// catalog as a seed makes every execution slow.
		head := b[:min(len(b), 6000)]
		f.Add(head)
		if i := bytes.LastIndex(head, []byte("},")); i > 0 {
			f.Add(append(append([]byte{}, head[:i+1]...), []byte("]}")...))
		}
	}
	f.Add([]byte(`{"catalogVersion":"1","dateReleased":"2025-08-25T17:04:19.9796Z","vulnerabilities":[{"cveID":"CVE-2025-48384","dateAdded":"2025-08-25","dueDate":"2025-09-15","knownRansomwareCampaignUse":"Known"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseKEV(bytes.NewReader(data))
		if err != nil {
			return
		}
		for _, e := range c.Entries {
			if CVEOf(e.CVE) != e.CVE || e.DateAdded.IsZero() {
				t.Fatalf("bad entry kept: %+v", e)
			}
		}
	})
}

func FuzzParseEPSS(f *testing.F) {
	if b, err := os.ReadFile("../feeds/testdata/epss_scores-sample.csv"); err == nil {
		f.Add(b)
	}
	f.Add([]byte("cve,epss,percentile\nCVE-2024-0001,0.5,0.9\n"))
	f.Add([]byte("#model_version:v1,score_date:bad\ncve,epss,percentile\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := ParseEPSS(bytes.NewReader(data))
		if err != nil {
			return
		}
		for _, s := range e.Scores {
			if s.Probability < 0 || s.Probability > 1 || s.Percentile < 0 || s.Percentile > 1 || CVEOf(s.CVE) != s.CVE {
				t.Fatalf("bad score kept: %+v", s)
			}
		}
	})
}

var cveRE = regexp.MustCompile(`^CVE-\d{4}-\d{4,}$`)

func FuzzCVEOf(f *testing.F) {
	for _, s := range []string{"CVE-2024-1234", "DEBCL-CVE-2011-0192-tiff", "GHSA-xxxx", "CVE-12-1", "CVE-2024-12345678", "xCVE-2024-1234y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c := CVEOf(s)
		if c == "" {
			return
		}
		if !cveRE.MatchString(c) || !strings.Contains(s, c) {
			t.Fatalf("CVEOf(%q) = %q", s, c)
		}
	})
}

func TestParseErrorsNameTheProblem(t *testing.T) {
	cases := []struct {
		name string
		run  func() error
		want string
	}{
		{"EPSS bad probability", func() error {
			_, err := ParseEPSS(strings.NewReader("cve,epss,percentile\nCVE-2024-0001,0.5,0.9\nCVE-2024-0002,1.5,0.9\n"))
			return err
		}, `line 3: epss "1.5" is not a probability`},
		{"EPSS bad header", func() error {
			_, err := ParseEPSS(strings.NewReader("#model_version:v1,score_date:2025-01-01T00:00:00+0000\ncve,score\n"))
			return err
		}, "line 2: header"},
		{"EPSS bad CVE", func() error {
			_, err := ParseEPSS(strings.NewReader("cve,epss,percentile\nCVE-XX,0.1,0.2\n"))
			return err
		}, `line 2: "CVE-XX" is not a CVE id`},
		{"KEV bad date", func() error {
			_, err := ParseKEV(strings.NewReader(`{"catalogVersion":"1","vulnerabilities":[{"cveID":"CVE-2024-0001","dateAdded":"yesterday"}]}`))
			return err
		}, "vulnerabilities[0] (CVE-2024-0001).dateAdded"},
		{"KEV truncated", func() error {
			_, err := ParseKEV(strings.NewReader(`{"catalogVersion":"1","vulnerabilities":[`))
			return err
		}, "parse KEV JSON"},
		{"KEV not a catalog", func() error {
			_, err := ParseKEV(strings.NewReader(`{"id":"GO-2024-1"}`))
			return err
		}, "not a CISA KEV catalog"},
		{"OSV unknown range type", func() error {
			_, err := ParseOSV([]byte(`{"id":"X","affected":[{"package":{"ecosystem":"Go","name":"m"},"ranges":[{"type":"UNSPECIFIED","events":[{"introduced":"0"}]}]}]}`))
			return err
		}, "affected[0].ranges[0].type"},
	}
	for _, c := range cases {
		err := c.run()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want it to contain %q", c.name, err, c.want)
		}
	}
}

func TestParseOSVKeepsWhatMatters(t *testing.T) {
	a, err := ParseOSV([]byte(`{"id":"GHSA-1","modified":"2024-05-01T10:00:00Z","aliases":["CVE-2024-1234","PYSEC-2024-9"],
	 "summary":"s","severity":[{"type":"CVSS_V3","score":"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}],
	 "database_specific":{"severity":"HIGH"},
	 "affected":[{"package":{"ecosystem":"PyPI","name":"x"},
	   "ranges":[{"type":"GIT","repo":"https://r","events":[{"introduced":"abc"}]},{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"1.2"}]}],
	   "versions":["1.0","1.1"]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if a.ID != "GHSA-1" || a.Modified.Format("2006-01-02T15:04") != "2024-05-01T10:00" || a.SeverityWord != "HIGH" || len(a.Severity) != 1 || a.Severity[0].Type != "CVSS_V3" {
		t.Errorf("%+v", a)
	}
	if got := a.CVEs(); len(got) != 1 || got[0] != "CVE-2024-1234" {
		t.Errorf("CVEs %v", got)
	}
	if len(a.Affected) != 1 || len(a.Affected[0].Ranges) != 1 || a.Affected[0].Ranges[0].Type != RangeEcosystem || len(a.Affected[0].Versions) != 2 {
		t.Errorf("affected %+v (GIT range must be dropped)", a.Affected)
	}
}
