package policy

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"

	cdx "github.com/CycloneDX/cyclonedx-go"
	"github.com/package-url/packageurl-go"
	"github.com/patchbay/patchbay/fleet"
)

// pkgRef is a package an exception names: a bare name (any ecosystem,
// any version) or a package URL.
type pkgRef struct {
	ecosystem string // OSV ecosystem family ("Debian", "PyPI"); "" for any
	name      string
	version   string // "" for any
}

// purlEcosystems maps package URL types to OSV ecosystem families.
var purlEcosystems = map[string]string{
	"deb": "", "apk": "Alpine", "rpm": "", "golang": "Go", "pypi": "PyPI", "npm": "npm",
	"maven": "Maven", "cargo": "crates.io", "gem": "RubyGems", "nuget": "NuGet",
	"composer": "Packagist", "hex": "Hex", "pub": "Pub", "swift": "SwiftURL",
}

func parsePackageRef(s string) (pkgRef, error) {
	if !strings.HasPrefix(s, "pkg:") {
		if s == "" || strings.ContainsAny(s, " \t@") {
			return pkgRef{}, fmt.Errorf("%q: want a package name or a package URL (pkg:deb/debian/openssl)", s)
		}
		return pkgRef{name: s}, nil
	}
	p, err := packageurl.FromString(s)
	if err != nil {
		return pkgRef{}, fmt.Errorf("%q: not a package URL: %v", s, err)
	}
	eco, ok := purlEcosystems[p.Type]
	if !ok {
		return pkgRef{}, fmt.Errorf("%q: package URL type %q is not supported", s, p.Type)
	}
	switch p.Type {
	case "deb":
		eco = distroFamily(p.Namespace)
	case "rpm":
		eco = distroFamily(p.Namespace)
	}
	name := p.Name
	if p.Namespace != "" {
		switch p.Type {
		case "golang", "npm":
			name = p.Namespace + "/" + p.Name
		case "maven":
			name = p.Namespace + ":" + p.Name
		}
	}
	return pkgRef{ecosystem: eco, name: name, version: p.Version}, nil
}

func distroFamily(ns string) string {
	switch strings.ToLower(ns) {
	case "debian":
		return "Debian"
	case "ubuntu":
		return "Ubuntu"
	case "alpine":
		return "Alpine"
	case "redhat":
		return "Red Hat"
	case "rocky":
		return "Rocky Linux"
	case "almalinux":
		return "AlmaLinux"
	}
	return ""
}

func (r pkgRef) matches(ecosystem, name, version string) bool {
	if r.name != name {
		return false
	}
	if r.ecosystem != "" && ecosystem != r.ecosystem && !strings.HasPrefix(ecosystem, r.ecosystem+":") {
		return false
	}
	return r.version == "" || r.version == version
}

// IsVEX says whether data looks like an OpenVEX or CycloneDX document.
func IsVEX(data []byte) bool {
	head := data[:min(len(data), 4096)]
	return bytes.Contains(head, []byte("openvex")) || bytes.Contains(head, []byte(`"bomFormat"`))
}

// ParseVEX turns the not_affected statements of an OpenVEX or CycloneDX
// VEX document into Exceptions (state not_affected), one per statement,
// named after the document and statement so that importing it again
// changes nothing. Other statuses (affected, fixed, under investigation)
// say nothing the findings do not already say, and are skipped.
func ParseVEX(name string, data []byte) ([]*Document, error) {
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(data, &probe); err != nil {
		return nil, Errors{{Pos: Pos{File: name}, Message: "not a JSON VEX document: " + err.Error()}}
	}
	if _, ok := probe["bomFormat"]; ok {
		return parseCycloneDX(name, data)
	}
	if _, ok := probe["@context"]; ok {
		return parseOpenVEX(name, data)
	}
	return nil, Errors{{Pos: Pos{File: name}, Message: "not a VEX document: want OpenVEX (@context) or CycloneDX (bomFormat)"}}
}

type openVEX struct {
	Context    string `json:"@context"`
	ID         string `json:"@id"`
	Author     string `json:"author"`
	Statements []struct {
		Vulnerability   json.RawMessage `json:"vulnerability"`
		Products        []json.RawMessage
		Status          string `json:"status"`
		Justification   string `json:"justification"`
		ImpactStatement string `json:"impact_statement"`
	} `json:"statements"`
}

func parseOpenVEX(name string, data []byte) ([]*Document, error) {
	var v openVEX
	if err := json.Unmarshal(data, &v); err != nil {
		return nil, Errors{{Pos: Pos{File: name}, Message: "OpenVEX: " + err.Error()}}
	}
	if !strings.Contains(v.Context, "openvex") {
		return nil, Errors{{Pos: Pos{File: name}, Path: "@context", Message: fmt.Sprintf("%q is not an OpenVEX context", v.Context)}}
	}
	var docs []*Document
	var errs Errors
	for i, st := range v.Statements {
		at := fmt.Sprintf("statements[%d]", i)
		vuln := stringOrField(st.Vulnerability, "name")
		if vuln == "" {
			errs = append(errs, &FieldError{Pos: Pos{File: name}, Path: at + ".vulnerability", Message: "missing"})
			continue
		}
		if st.Status != "not_affected" {
			continue
		}
		var pkgs []string
		for _, p := range st.Products {
			if id := stringOrField(p, "@id"); id != "" {
				pkgs = append(pkgs, id)
			}
		}
		just := st.Justification
		if st.ImpactStatement != "" {
			just = strings.TrimSpace(just + ": " + st.ImpactStatement)
		}
		d, err := vexException(name, at, v.ID, v.Author, vuln, pkgs, just)
		if err != nil {
			errs = append(errs, err...)
			continue
		}
		docs = append(docs, d)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return docs, nil
}

// stringOrField reads a JSON string, or the string field of an object.
func stringOrField(raw json.RawMessage, field string) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var m map[string]any
	if json.Unmarshal(raw, &m) == nil {
		if s, ok := m[field].(string); ok {
			return s
		}
	}
	return ""
}

func parseCycloneDX(name string, data []byte) ([]*Document, error) {
	var bom cdx.BOM
	if err := cdx.NewBOMDecoder(bytes.NewReader(data), cdx.BOMFileFormatJSON).Decode(&bom); err != nil {
		return nil, Errors{{Pos: Pos{File: name}, Message: "CycloneDX: " + err.Error()}}
	}
	purls := map[string]string{}
	if bom.Components != nil {
		var walk func([]cdx.Component)
		walk = func(cs []cdx.Component) {
			for _, c := range cs {
				if c.BOMRef != "" && c.PackageURL != "" {
					purls[c.BOMRef] = c.PackageURL
				}
				if c.Components != nil {
					walk(*c.Components)
				}
			}
		}
		walk(*bom.Components)
	}
	author := ""
	if bom.Metadata != nil && bom.Metadata.Authors != nil && len(*bom.Metadata.Authors) > 0 {
		author = (*bom.Metadata.Authors)[0].Name
	}
	var docs []*Document
	var errs Errors
	if bom.Vulnerabilities == nil {
		return nil, nil
	}
	for i, v := range *bom.Vulnerabilities {
		at := fmt.Sprintf("vulnerabilities[%d]", i)
		if v.Analysis == nil || v.Analysis.State != cdx.IASNotAffected {
			continue
		}
		var pkgs []string
		if v.Affects != nil {
			for _, a := range *v.Affects {
				ref := a.Ref
				if p, ok := purls[ref]; ok {
					ref = p
				} else if _, after, ok := strings.Cut(ref, "#"); ok && strings.HasPrefix(after, "pkg:") {
					ref = after
				}
				if strings.HasPrefix(ref, "pkg:") {
					pkgs = append(pkgs, ref)
				} else {
					errs = append(errs, &FieldError{Pos: Pos{File: name}, Path: at + ".affects", Message: fmt.Sprintf("%q names no component with a package URL", a.Ref)})
				}
			}
		}
		just := string(v.Analysis.Justification)
		if v.Analysis.Detail != "" {
			just = strings.TrimSpace(just + ": " + v.Analysis.Detail)
		}
		d, err := vexException(name, at, bom.SerialNumber, author, v.ID, pkgs, just)
		if err != nil {
			errs = append(errs, err...)
			continue
		}
		docs = append(docs, d)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return docs, nil
}

func vexException(file, at, docID, author, vuln string, pkgs []string, justification string) (*Document, Errors) {
	if justification == "" {
		justification = "not affected (no justification given)"
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s", docID, vuln, strings.Join(pkgs, "\x00"))
	name := "vex-" + strings.ToLower(hex.EncodeToString(h.Sum(nil))[:16])
	src := docID
	if src == "" {
		src = file
	}
	spec := &ExceptionSpec{Vulnerabilities: []string{vuln}, Packages: pkgs, State: fleet.StateNotAffected,
		Justification: justification, ApprovedBy: author, Source: src}
	doc := &Document{APIVersion: APIVersion, Kind: KindException, Metadata: Metadata{Name: name}, Spec: spec,
		Source: Pos{File: file}, paths: map[string]Pos{}}
	c := &checker{doc: doc}
	spec.Check(c)
	for _, e := range c.errs {
		e.Path = at + " → " + e.Path
	}
	return doc, c.errs
}
