package report

import (
	"encoding/json"
	"io"
	"time"

	"github.com/patchbay/patchbay/inventory"
	"github.com/patchbay/patchbay/scan"
)

// JSONSchema names the version of the JSON document. It changes only when a
// field is removed or changes meaning; new fields may appear at any time.
const JSONSchema = "patchbay.scan/v1"

// Document is the `--format json` output, documented in docs/scan-json.md.
type Document struct {
	Schema      string            `json:"schema"`
	Tool        Tool              `json:"tool"`
	GeneratedAt time.Time         `json:"generated_at"`
	Distro      *inventory.Distro `json:"distro"`
	Summary     Summary           `json:"summary"`
	Findings    []scan.Finding    `json:"findings"`
	Patches     []PatchDoc        `json:"patches"`
	Files       []string          `json:"files"`
	Skipped     []inventory.Skip  `json:"skipped"`
	Problems    []string          `json:"problems"`
}

// Tool names the producer.
type Tool struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// Summary counts the result.
type Summary struct {
	Packages   int            `json:"packages"`
	Findings   int            `json:"findings"`
	Patches    int            `json:"patches"`
	ByPriority map[string]int `json:"by_priority"`
}

// PatchDoc is one upgrade and what it closes.
type PatchDoc struct {
	Ecosystem       string   `json:"ecosystem"`
	Package         string   `json:"package"`
	Binaries        []string `json:"binaries,omitempty"`
	Installed       string   `json:"installed"`
	Fixed           string   `json:"fixed"`
	Priority        string   `json:"priority"`
	Vulnerabilities []string `json:"vulnerabilities"`
	Unfixed         int      `json:"unfixed"`
}

// NewDocument builds the JSON document of a result.
func NewDocument(res scan.Result, meta Meta) Document {
	patches := Patches(res.Findings)
	doc := Document{
		Schema:      JSONSchema,
		Tool:        Tool{Name: "patchbay", Version: meta.ToolVersion},
		GeneratedAt: meta.GeneratedAt.UTC(),
		Distro:      res.Inventory.Distro,
		Summary:     Summary{Packages: len(res.Inventory.Packages), Findings: len(res.Findings), Patches: len(patches), ByPriority: CountByPriority(res.Findings)},
		Findings:    res.Findings,
		Patches:     []PatchDoc{},
		Files:       res.Inventory.Files,
		Skipped:     res.Inventory.Skipped,
		Problems:    res.Problems,
	}
	for _, p := range patches {
		pd := PatchDoc{Ecosystem: p.Ecosystem, Package: p.Package, Binaries: p.Binaries, Installed: p.Installed, Fixed: p.Fixed, Priority: p.Priority.String(), Unfixed: p.Unfixed}
		for _, f := range p.Findings {
			pd.Vulnerabilities = append(pd.Vulnerabilities, f.Vulnerability)
		}
		doc.Patches = append(doc.Patches, pd)
	}
	if doc.Files == nil {
		doc.Files = []string{}
	}
	if doc.Skipped == nil {
		doc.Skipped = []inventory.Skip{}
	}
	if doc.Problems == nil {
		doc.Problems = []string{}
	}
	return doc
}

// JSON writes the JSON document.
func JSON(w io.Writer, res scan.Result, meta Meta) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(NewDocument(res, meta))
}
