// Package nvd reads NVD CVE records in the CVE API 2.0 shape — a response
// page of the API (https://services.nvd.nist.gov/rest/json/cves/2.0) or a
// file of that shape — and fetches them from the paged API, all of it or
// what changed since a time (lastModStartDate/lastModEndDate).
//
// Records are converted to advisory.CVERecord at the boundary: the CVSS
// v4.0, v3.1, v3.0 and v2 metrics of every source (NVD, the CNA, ADPs) with
// their Primary/Secondary type, the CWEs, and the published and last
// modified times. Other metrics (SSVC) and the CPE configurations are not
// kept.
package nvd

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/patchbay/patchbay/advisory"
)

// Page is one parsed response page (or file).
type Page struct {
	ResultsPerPage int
	StartIndex     int
	TotalResults   int
	// Timestamp is when the page was produced (NVD's timestamp).
	Timestamp time.Time
	Records   []advisory.CVERecord
}

// ErrNotNVD is returned for JSON that is not an NVD CVE API 2.0 document.
var ErrNotNVD = errors.New("not an NVD CVE API 2.0 document (format NVD_CVE)")

type cveWire struct {
	ID               string                  `json:"id"`
	SourceIdentifier string                  `json:"sourceIdentifier"`
	Published        string                  `json:"published"`
	LastModified     string                  `json:"lastModified"`
	VulnStatus       string                  `json:"vulnStatus"`
	Metrics          map[string][]metricWire `json:"metrics"`
	Weaknesses       []struct {
		Description []struct {
			Value string `json:"value"`
		} `json:"description"`
	} `json:"weaknesses"`
}

type metricWire struct {
	Source   string `json:"source"`
	Type     string `json:"type"`
	CVSSData struct {
		Version      string   `json:"version"`
		VectorString string   `json:"vectorString"`
		BaseScore    *float64 `json:"baseScore"`
	} `json:"cvssData"`
}

// metricVersions maps NVD's metric keys to CVSS versions, newest first.
var metricVersions = []struct{ key, version string }{
	{"cvssMetricV40", "4.0"}, {"cvssMetricV31", "3.1"}, {"cvssMetricV30", "3.0"}, {"cvssMetricV2", "2.0"},
}

// Parse reads one API 2.0 document, streaming its records: a full-size
// file does not need to fit in memory as JSON. A record without an id or
// last-modified time, with a time that does not parse, or with a CVSS
// metric without a vector fails the document, naming the record: like the
// API's pages, a file is imported whole or not at all.
func Parse(r io.Reader) (*Page, error) {
	dec := json.NewDecoder(r)
	if err := expectDelim(dec, '{'); err != nil {
		return nil, fmt.Errorf("parse NVD: %w", err)
	}
	p := &Page{}
	format := ""
	sawVulns := false
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("parse NVD: %w", err)
		}
		key, _ := tok.(string)
		switch key {
		case "resultsPerPage":
			err = dec.Decode(&p.ResultsPerPage)
		case "startIndex":
			err = dec.Decode(&p.StartIndex)
		case "totalResults":
			err = dec.Decode(&p.TotalResults)
		case "format":
			err = dec.Decode(&format)
		case "timestamp":
			var s string
			if err = dec.Decode(&s); err == nil {
				if p.Timestamp, err = ParseTime(s); err != nil {
					err = fmt.Errorf("timestamp: %w", err)
				}
			}
		case "vulnerabilities":
			sawVulns = true
			if format != "" && format != "NVD_CVE" {
				return nil, fmt.Errorf("parse NVD: format %q: %w", format, ErrNotNVD)
			}
			err = p.records(dec)
		default:
			var skip json.RawMessage
			err = dec.Decode(&skip)
		}
		if err != nil {
			return nil, fmt.Errorf("parse NVD: %w", err)
		}
	}
	if format != "NVD_CVE" || !sawVulns {
		return nil, ErrNotNVD
	}
	return p, nil
}

func (p *Page) records(dec *json.Decoder) error {
	if err := expectDelim(dec, '['); err != nil {
		return fmt.Errorf("vulnerabilities: %w", err)
	}
	for i := 0; dec.More(); i++ {
		var item struct {
			CVE *cveWire `json:"cve"`
		}
		if err := dec.Decode(&item); err != nil {
			return fmt.Errorf("vulnerabilities[%d]: %w", i, err)
		}
		if item.CVE == nil {
			return fmt.Errorf("vulnerabilities[%d]: no cve object", i)
		}
		rec, err := convert(item.CVE)
		if err != nil {
			return fmt.Errorf("vulnerabilities[%d] (%s): %w", i, item.CVE.ID, err)
		}
		p.Records = append(p.Records, rec)
	}
	_, err := dec.Token() // ']'
	return err
}

func expectDelim(dec *json.Decoder, want json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != want {
		return fmt.Errorf("want %q, got %v", want, tok)
	}
	return nil
}

func convert(w *cveWire) (advisory.CVERecord, error) {
	r := advisory.CVERecord{ID: w.ID, Assigner: w.SourceIdentifier, Status: w.VulnStatus}
	if advisory.CVEOf(w.ID) != w.ID {
		return r, fmt.Errorf("id %q is not a CVE id", w.ID)
	}
	var err error
	if w.LastModified == "" {
		return r, errors.New("no lastModified")
	}
	if r.LastModified, err = ParseTime(w.LastModified); err != nil {
		return r, fmt.Errorf("lastModified: %w", err)
	}
	if w.Published != "" {
		if r.Published, err = ParseTime(w.Published); err != nil {
			return r, fmt.Errorf("published: %w", err)
		}
	}
	for _, mv := range metricVersions {
		for j, m := range w.Metrics[mv.key] {
			if m.CVSSData.VectorString == "" {
				return r, fmt.Errorf("metrics.%s[%d] (%s): no vectorString", mv.key, j, m.Source)
			}
			s := advisory.Score{Source: m.Source, Type: m.Type, Role: advisory.RoleOf(m.Source, w.SourceIdentifier),
				Version: mv.version, Vector: m.CVSSData.VectorString}
			if m.CVSSData.BaseScore != nil {
				s.Base = *m.CVSSData.BaseScore
			}
			r.Scores = append(r.Scores, s)
		}
	}
	for _, wk := range w.Weaknesses {
		for _, d := range wk.Description {
			if strings.HasPrefix(d.Value, "CWE-") && !contains(r.CWEs, d.Value) {
				r.CWEs = append(r.CWEs, d.Value)
			}
		}
	}
	sort.Strings(r.CWEs)
	return r, nil
}

func contains(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}

// ParseTime parses NVD's times: "2024-08-30T03:15:03.850", UTC without a
// zone, or with one (RFC 3339).
func ParseTime(s string) (time.Time, error) {
	for _, layout := range []string{"2006-01-02T15:04:05.999999999", time.RFC3339Nano} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not an NVD time", s)
}

// FormatTime renders a time as the API's lastModStartDate wants it.
func FormatTime(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000Z")
}
