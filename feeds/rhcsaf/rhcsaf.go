// Package rhcsaf reads Red Hat's CSAF 2.0 VEX documents (OASIS CSAF 2.0,
// category csaf_vex; one per CVE, published at
// https://security.access.redhat.com/data/csaf/v2/vex/YEAR/cve-YYYY-NNNN.json)
// and keeps Red Hat's severity of the CVE in each of its RPM packages as a
// vendor rating.
//
// The rating of a package is the impact threat (vulnerabilities[].threats[]
// of category "impact", details "Low", "Moderate", "Important" or
// "Critical") whose product_ids name it: a product id resolves, through the
// product tree's relationships, to a product whose package URL is an rpm
// (pkg:rpm/redhat/NAME); products of other kinds (containers, middleware
// archives) are not RPM packages and are skipped. A CVE none of whose
// threats names an RPM package, but for which the document names RPM
// packages at all, is rated in every package by document.aggregate_severity.
// The ratings' ecosystem is "Red Hat": they apply to the RPM distributions
// built from Red Hat's sources (Red Hat, Rocky Linux, AlmaLinux; see
// advisory.VendorRating.AppliesTo).
package rhcsaf

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/package-url/packageurl-go"
	"github.com/patchbay/patchbay/advisory"
)

// Vendor is the ratings' vendor.
const Vendor = "Red Hat"

// Ecosystem is the ratings' ecosystem family.
const Ecosystem = "Red Hat"

// ErrNotCSAF is returned for JSON that is not a CSAF VEX document.
var ErrNotCSAF = errors.New("not a CSAF 2.0 VEX document")

// severities are Red Hat's impact ratings
// (https://access.redhat.com/security/updates/classification), lowered.
var severities = map[string]bool{"low": true, "moderate": true, "important": true, "critical": true}

var rank = map[string]int{"low": 1, "moderate": 2, "important": 3, "critical": 4}

type text struct {
	Text string `json:"text"`
}

type product struct {
	Name      string `json:"name"`
	ProductID string `json:"product_id"`
	Helper    *struct {
		PURL string `json:"purl"`
	} `json:"product_identification_helper"`
}

type branch struct {
	Category string    `json:"category"`
	Name     string    `json:"name"`
	Product  *product  `json:"product"`
	Branches []*branch `json:"branches"`
}

type document struct {
	Document *struct {
		Category          string `json:"category"`
		CSAFVersion       string `json:"csaf_version"`
		AggregateSeverity *text  `json:"aggregate_severity"`
		Tracking          struct {
			ID                 string `json:"id"`
			CurrentReleaseDate string `json:"current_release_date"`
		} `json:"tracking"`
	} `json:"document"`
	ProductTree struct {
		Branches      []*branch `json:"branches"`
		Relationships []struct {
			Category        string  `json:"category"`
			FullProductName product `json:"full_product_name"`
			ProductRef      string  `json:"product_reference"`
			RelatesTo       string  `json:"relates_to_product_reference"`
		} `json:"relationships"`
	} `json:"product_tree"`
	Vulnerabilities []struct {
		CVE     string `json:"cve"`
		Threats []struct {
			Category   string   `json:"category"`
			Details    string   `json:"details"`
			ProductIDs []string `json:"product_ids"`
		} `json:"threats"`
		ProductStatus map[string][]string `json:"product_status"`
	} `json:"vulnerabilities"`
}

// FieldError is a document's field that does not have CSAF's shape or
// Red Hat's values.
type FieldError struct {
	Field string // the JSON path: "vulnerabilities[0].threats[1].details"
	Err   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Err }

// Document is what one VEX document says: the CVEs it describes and Red
// Hat's ratings of them in RPM packages, one per CVE and package (the
// worst when several threats name a package). A CVE may have no rating
// (it concerns no RPM package): the document still describes it.
type Document struct {
	CVEs    []string
	Ratings []advisory.VendorRating
	// Released is the document's current release (zero when it has none).
	Released time.Time
}

// Parse reads one CSAF VEX document.
func Parse(r io.Reader) (*Document, error) {
	var d document
	dec := json.NewDecoder(r)
	if err := dec.Decode(&d); err != nil {
		return nil, fmt.Errorf("parse CSAF JSON: %w", err)
	}
	if d.Document == nil || d.Document.CSAFVersion == "" {
		return nil, ErrNotCSAF
	}
	if d.Document.CSAFVersion != "2.0" {
		return nil, &FieldError{"document.csaf_version", fmt.Sprintf("%q: only CSAF 2.0 is read", d.Document.CSAFVersion)}
	}
	if d.Document.Category != "csaf_vex" {
		return nil, &FieldError{"document.category", fmt.Sprintf("%q: want csaf_vex (Red Hat's per-CVE VEX documents)", d.Document.Category)}
	}
	aggregate := ""
	if a := d.Document.AggregateSeverity; a != nil {
		aggregate = strings.ToLower(strings.TrimSpace(a.Text))
		if !severities[aggregate] {
			return nil, &FieldError{"document.aggregate_severity.text", fmt.Sprintf("%q is not a Red Hat severity (Low, Moderate, Important, Critical)", a.Text)}
		}
	}
	// What every product id is: the rpm package it names ("" for other
	// products), through the branches and the relationships.
	pkgs := map[string]string{}
	var walk func(bs []*branch, path string) error
	walk = func(bs []*branch, path string) error {
		for i, b := range bs {
			at := fmt.Sprintf("%s[%d]", path, i)
			if p := b.Product; p != nil {
				if p.ProductID == "" {
					return &FieldError{at + ".product.product_id", "missing"}
				}
				name, err := rpmName(p)
				if err != nil {
					return &FieldError{at + ".product.product_identification_helper.purl", err.Error()}
				}
				pkgs[p.ProductID] = name
			}
			if err := walk(b.Branches, at+".branches"); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(d.ProductTree.Branches, "product_tree.branches"); err != nil {
		return nil, err
	}
	for i, rel := range d.ProductTree.Relationships {
		at := fmt.Sprintf("product_tree.relationships[%d]", i)
		id := rel.FullProductName.ProductID
		if id == "" {
			return nil, &FieldError{at + ".full_product_name.product_id", "missing"}
		}
		name, ok := pkgs[rel.ProductRef]
		if !ok {
			return nil, &FieldError{at + ".product_reference", fmt.Sprintf("%q is not a product of the product tree", rel.ProductRef)}
		}
		pkgs[id] = name
	}
	type key struct{ cve, pkg string }
	worst := map[key]string{}
	out := &Document{}
	if s := d.Document.Tracking.CurrentReleaseDate; s != "" {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return nil, &FieldError{"document.tracking.current_release_date", fmt.Sprintf("%q is not an RFC 3339 time", s)}
		}
		out.Released = t.UTC()
	}
	for i, v := range d.Vulnerabilities {
		at := fmt.Sprintf("vulnerabilities[%d]", i)
		if v.CVE == "" {
			continue // a vulnerability without a CVE id: nothing to key it by
		}
		if advisory.CVEOf(v.CVE) != v.CVE {
			return nil, &FieldError{at + ".cve", fmt.Sprintf("%q is not a CVE id", v.CVE)}
		}
		out.CVEs = append(out.CVEs, v.CVE)
		rated := false
		for j, t := range v.Threats {
			if t.Category != "impact" {
				continue
			}
			tat := fmt.Sprintf("%s.threats[%d]", at, j)
			w := strings.ToLower(strings.TrimSpace(t.Details))
			if !severities[w] {
				return nil, &FieldError{tat + ".details", fmt.Sprintf("%q is not a Red Hat severity (Low, Moderate, Important, Critical)", t.Details)}
			}
			for k, id := range t.ProductIDs {
				name, ok := pkgs[id]
				if !ok {
					return nil, &FieldError{fmt.Sprintf("%s.product_ids[%d]", tat, k), fmt.Sprintf("%q is not a product of the product tree", id)}
				}
				if name == "" {
					continue
				}
				rated = true
				if kk := (key{v.CVE, name}); rank[w] > rank[worst[kk]] {
					worst[kk] = w
				}
			}
		}
		if rated || aggregate == "" {
			continue
		}
		for _, ids := range v.ProductStatus {
			for _, id := range ids {
				if pkgs[id] != "" {
					rated = true
				}
			}
		}
		if rated {
			worst[key{v.CVE, ""}] = aggregate
		}
	}
	rs := make([]advisory.VendorRating, 0, len(worst))
	for k, w := range worst {
		rs = append(rs, advisory.VendorRating{CVE: k.cve, Vendor: Vendor, Ecosystem: Ecosystem, Package: k.pkg, Rating: w})
	}
	sort.Slice(rs, func(i, j int) bool {
		if rs[i].CVE != rs[j].CVE {
			return rs[i].CVE < rs[j].CVE
		}
		return rs[i].Package < rs[j].Package
	})
	out.Ratings = rs
	return out, nil
}

// rpmName is the rpm package a product's package URL names ("" when the
// product is not an rpm).
func rpmName(p *product) (string, error) {
	if p.Helper == nil || p.Helper.PURL == "" {
		return "", nil
	}
	u, err := packageurl.FromString(p.Helper.PURL)
	if err != nil {
		return "", fmt.Errorf("%q: %v", p.Helper.PURL, err)
	}
	if u.Type != "rpm" {
		return "", nil
	}
	return u.Name, nil
}
