// Package debsec reads the Debian security tracker's JSON export
// (https://security-tracker.debian.org/tracker/data/json): per source
// package, per CVE, per release the status, fixed version and urgency.
// patchbay keeps the urgency, Debian's own rating of the CVE in that
// package and release ("unimportant", "low", "medium", "high"), as a vendor
// rating; "not yet assigned" and "end-of-life" say nothing about the CVE
// and are skipped, as are entries that are not CVEs (TEMP-…) and releases
// without a version number (sid).
package debsec

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/patchbay/patchbay/advisory"
)

// Releases maps Debian codenames to their version, as OSV ecosystems name
// them ("Debian:12").
var Releases = map[string]string{
	"buster": "10", "bullseye": "11", "bookworm": "12", "trixie": "13", "forky": "14",
}

// ErrNotTracker is returned for JSON that is not the tracker's export.
var ErrNotTracker = errors.New("not the Debian security tracker's JSON export")

type cveWire struct {
	Releases map[string]struct {
		Urgency string `json:"urgency"`
	} `json:"releases"`
}

// Parse reads the export, streaming it package by package. An entry that
// does not have the export's shape fails the document, naming the package
// and CVE.
func Parse(r io.Reader) ([]advisory.VendorRating, error) {
	dec := json.NewDecoder(r)
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("parse Debian security tracker JSON: %w", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, ErrNotTracker
	}
	var out []advisory.VendorRating
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("parse Debian security tracker JSON: %w", err)
		}
		pkg, _ := tok.(string)
		var cves map[string]cveWire
		if err := dec.Decode(&cves); err != nil {
			return nil, fmt.Errorf("parse Debian security tracker JSON: package %s: %w", pkg, err)
		}
		for id, c := range cves {
			if advisory.CVEOf(id) != id {
				continue
			}
			for rel, st := range c.Releases {
				v, ok := Releases[rel]
				u := Urgency(st.Urgency)
				if !ok || u == "" {
					continue
				}
				out = append(out, advisory.VendorRating{CVE: id, Vendor: "Debian", Ecosystem: "Debian:" + v, Package: pkg, Rating: u})
			}
		}
	}
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("parse Debian security tracker JSON: %w", err)
	}
	return out, nil
}

// Urgency normalises a tracker urgency: "low**" (a guess, marked by the
// tracker) is "low"; values that do not rate the CVE are "".
func Urgency(s string) string {
	s = strings.ToLower(strings.TrimRight(strings.TrimSpace(s), "*"))
	switch s {
	case "unimportant", "low", "medium", "high":
		return s
	}
	return ""
}
