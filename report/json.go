package report

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/patchbay/patchbay/inventory"
	"github.com/patchbay/patchbay/patch"
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
	// Updates are the package manager's available updates (system cycle).
	Updates []patch.Update `json:"updates"`
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
	doc.Updates = res.Updates
	if doc.Updates == nil {
		doc.Updates = []patch.Update{}
	}
	return doc
}

// JSON writes the JSON document. Findings are encoded one at a time, so
// memory does not grow with a second copy of the whole result.
func JSON(w io.Writer, res scan.Result, meta Meta) error {
	doc := NewDocument(res, meta)
	bw := bufio.NewWriterSize(w, 64<<10)
	field := func(name string, v any, last bool) error {
		b, err := json.MarshalIndent(v, "  ", "  ")
		if err != nil {
			return fmt.Errorf("encode %s: %w", name, err)
		}
		fmt.Fprintf(bw, "  %q: %s", name, b)
		if !last {
			bw.WriteString(",")
		}
		bw.WriteString("\n")
		return nil
	}
	bw.WriteString("{\n")
	for _, f := range []struct {
		name string
		v    any
	}{{"schema", doc.Schema}, {"tool", doc.Tool}, {"generated_at", doc.GeneratedAt}, {"distro", doc.Distro}, {"summary", doc.Summary}} {
		if err := field(f.name, f.v, false); err != nil {
			return err
		}
	}
	bw.WriteString("  \"findings\": [")
	for i := range doc.Findings {
		b, err := json.MarshalIndent(&doc.Findings[i], "    ", "  ")
		if err != nil {
			return fmt.Errorf("encode finding %s: %w", doc.Findings[i].String(), err)
		}
		if i > 0 {
			bw.WriteString(",")
		}
		bw.WriteString("\n    ")
		bw.Write(b)
	}
	if len(doc.Findings) > 0 {
		bw.WriteString("\n  ")
	}
	bw.WriteString("],\n")
	for i, f := range []struct {
		name string
		v    any
	}{{"patches", doc.Patches}, {"updates", doc.Updates}, {"files", doc.Files}, {"skipped", doc.Skipped}, {"problems", doc.Problems}} {
		if err := field(f.name, f.v, i == 4); err != nil {
			return err
		}
	}
	bw.WriteString("}\n")
	return bw.Flush()
}
