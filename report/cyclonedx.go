package report

import (
	"crypto/sha256"
	"fmt"
	"io"
	"strings"
	"time"

	cdx "github.com/CycloneDX/cyclonedx-go"

	"github.com/patchbay/patchbay/inventory"
	"github.com/patchbay/patchbay/scan"
)

// CycloneDX writes a CycloneDX 1.5 JSON BOM: every scanned package as a
// component and every finding in the vulnerabilities section, with ratings,
// aliases as references, the fix as recommendation and the priority and
// reasons as properties.
func CycloneDX(w io.Writer, res scan.Result, meta Meta) error {
	bom := cdx.NewBOM()
	bom.SerialNumber = "urn:uuid:" + uuidFrom(res, meta)
	bom.Metadata = &cdx.Metadata{
		Timestamp: meta.GeneratedAt.UTC().Format(time.RFC3339),
		Tools: &cdx.ToolsChoice{Components: &[]cdx.Component{{
			Type: cdx.ComponentTypeApplication, Name: "patchbay", Version: meta.ToolVersion,
		}}},
	}
	comps := []cdx.Component{}
	refs := map[string]string{} // finding key → bom-ref
	for _, p := range res.Inventory.Packages {
		ref := componentRef(p)
		if _, dup := refs[ref]; dup {
			continue
		}
		refs[ref] = ref
		c := cdx.Component{BOMRef: ref, Type: cdx.ComponentTypeLibrary, Name: p.Name, Version: p.Version, PackageURL: p.PURL}
		props := []cdx.Property{{Name: "patchbay:ecosystem", Value: p.Ecosystem}, {Name: "patchbay:location", Value: p.Location}}
		if p.SourceName != "" {
			props = append(props, cdx.Property{Name: "patchbay:source_package", Value: p.SourceName + " " + p.SourceVersion})
		}
		c.Properties = &props
		comps = append(comps, c)
	}
	bom.Components = &comps
	// Findings name the match package (source package for Debian); affect
	// every component that maps to it.
	byMatch := map[string][]string{}
	for _, p := range res.Inventory.Packages {
		k := p.Ecosystem + "\x00" + p.MatchName() + "\x00" + p.MatchVersion()
		ref := componentRef(p)
		if !containsStr(byMatch[k], ref) {
			byMatch[k] = append(byMatch[k], ref)
		}
	}
	vulns := []cdx.Vulnerability{}
	for _, f := range res.Findings {
		v := cdx.Vulnerability{
			BOMRef:      f.Ecosystem + "/" + f.Package + "@" + f.Version + "/" + f.Vulnerability,
			ID:          f.Vulnerability,
			Source:      sourceOf(f.Vulnerability, f.URL),
			Description: f.Summary,
		}
		var vrefs []cdx.VulnerabilityReference
		for _, a := range f.Aliases {
			vrefs = append(vrefs, cdx.VulnerabilityReference{ID: a, Source: sourceOf(a, "")})
		}
		if len(vrefs) > 0 {
			v.References = &vrefs
		}
		if f.CVSS != nil {
			method := map[string]cdx.ScoringMethod{"2.0": cdx.ScoringMethodCVSSv2, "3.0": cdx.ScoringMethodCVSSv3, "3.1": cdx.ScoringMethodCVSSv31, "4.0": cdx.ScoringMethodCVSSv4}[f.CVSS.Version]
			score := f.CVSS.Score
			v.Ratings = &[]cdx.VulnerabilityRating{{Score: &score, Severity: cdx.Severity(f.CVSS.Rating), Method: method, Vector: f.CVSS.Vector}}
		} else if f.Severity != "unknown" {
			v.Ratings = &[]cdx.VulnerabilityRating{{Severity: cdx.Severity(f.Severity), Method: cdx.ScoringMethodOther}}
		}
		if f.Fixed != "" {
			v.Recommendation = "Upgrade " + f.Package + " to " + f.Fixed + " or later."
		}
		props := []cdx.Property{
			{Name: "patchbay:priority", Value: f.Priority.String()},
			{Name: "patchbay:due", Value: f.Due.Format(time.DateOnly)},
			{Name: "patchbay:reasons", Value: strings.Join(f.Reasons, "; ")},
		}
		if f.KEV != nil {
			props = append(props, cdx.Property{Name: "patchbay:kev_date_added", Value: f.KEV.DateAdded.Format(time.DateOnly)})
		}
		if f.EPSS != nil {
			props = append(props, cdx.Property{Name: "patchbay:epss", Value: fmt.Sprintf("%.5f", f.EPSS.Probability)})
		}
		v.Properties = &props
		var affects []cdx.Affects
		for _, ref := range byMatch[f.Ecosystem+"\x00"+f.Package+"\x00"+f.Version] {
			affects = append(affects, cdx.Affects{Ref: ref})
		}
		if len(affects) > 0 {
			v.Affects = &affects
		}
		vulns = append(vulns, v)
	}
	bom.Vulnerabilities = &vulns
	enc := cdx.NewBOMEncoder(w, cdx.BOMFileFormatJSON)
	enc.SetPretty(true)
	return enc.EncodeVersion(bom, cdx.SpecVersion1_5)
}

func componentRef(p inventory.Package) string {
	return p.Ecosystem + "/" + p.Name + "@" + p.Version + "#" + p.Location
}

func containsStr(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}

func sourceOf(id, url string) *cdx.Source {
	name := id
	if i := strings.IndexByte(id, '-'); i > 0 {
		name = id[:i]
	}
	switch name {
	case "CVE":
		return &cdx.Source{Name: "NVD", URL: "https://nvd.nist.gov/vuln/detail/" + id}
	case "GHSA":
		return &cdx.Source{Name: "GitHub", URL: "https://github.com/advisories/" + id}
	}
	return &cdx.Source{Name: name, URL: url}
}

// uuidFrom derives a stable version-4-shaped UUID from the result, so the
// same scan at the same time gives the same serial number.
func uuidFrom(res scan.Result, meta Meta) string {
	h := sha256.New()
	fmt.Fprint(h, meta.GeneratedAt.UnixNano(), len(res.Inventory.Packages), len(res.Findings))
	for _, f := range res.Findings {
		fmt.Fprint(h, f.Package, f.Version, f.Vulnerability)
	}
	b := h.Sum(nil)[:16]
	b[6] = (b[6] & 0x0f) | 0x40
	b[8] = (b[8] & 0x3f) | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
