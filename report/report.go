// Package report renders scan results: a table for people (grouped by
// patch), a stable JSON document, SARIF 2.1.0 for code-scanning upload and
// CycloneDX 1.5 with a vulnerabilities section.
package report

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/patchbay/patchbay/inventory"
	"github.com/patchbay/patchbay/risk"
	"github.com/patchbay/patchbay/scan"
)

// Formats lists the output formats.
var Formats = []string{"table", "json", "sarif", "cyclonedx"}

// Meta describes the run that produced a result.
type Meta struct {
	ToolVersion string
	GeneratedAt time.Time
	// Color enables ANSI colour in the table (only on a terminal).
	Color bool
	// Width fits the table to this many columns, cutting the cells that
	// give way with an ellipsis (0: no limit).
	Width int
}

// Write renders res in the named format.
func Write(w io.Writer, format string, res scan.Result, meta Meta) error {
	switch format {
	case "table":
		return Table(w, res, meta)
	case "json":
		return JSON(w, res, meta)
	case "sarif":
		return SARIF(w, res, meta)
	case "cyclonedx":
		return CycloneDX(w, res, meta)
	}
	return fmt.Errorf("unknown format %q (want %s)", format, strings.Join(Formats, ", "))
}

// Patch is one upgrade: a package to a version, and what it closes.
type Patch struct {
	Ecosystem string
	Package   string
	Binaries  []string
	Installed string
	// Fixed is the version that closes every fixable finding; "" when no
	// finding has a fix.
	Fixed    string
	Priority risk.Priority
	Findings []scan.Finding // most urgent first
	Unfixed  int            // findings with no known fix
}

// Patches groups findings by package, most urgent patch first.
func Patches(fs []scan.Finding) []Patch {
	idx := map[string]int{}
	var out []Patch
	for _, f := range fs {
		k := f.Ecosystem + "\x00" + f.Package + "\x00" + f.Version
		i, ok := idx[k]
		if !ok {
			i = len(out)
			idx[k] = i
			out = append(out, Patch{Ecosystem: f.Ecosystem, Package: f.Package, Binaries: f.Binaries, Installed: f.Version, Priority: f.Priority})
		}
		p := &out[i]
		p.Findings = append(p.Findings, f)
		if f.Priority < p.Priority {
			p.Priority = f.Priority
		}
		if f.Fixed == "" {
			p.Unfixed++
		} else {
			p.Fixed = scan.MaxVersion(f.Ecosystem, p.Fixed, f.Fixed)
		}
	}
	for i := range out {
		scan.SortFindings(out[i].Findings)
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Priority != b.Priority {
			return a.Priority < b.Priority
		}
		if len(a.Findings) != len(b.Findings) {
			return len(a.Findings) > len(b.Findings)
		}
		return a.Package < b.Package
	})
	return out
}

// CountByPriority counts findings per priority.
func CountByPriority(fs []scan.Finding) map[string]int {
	out := map[string]int{"P1": 0, "P2": 0, "P3": 0, "P4": 0}
	for _, f := range fs {
		out[f.Priority.String()]++
	}
	return out
}

func distroName(d *inventory.Distro) string {
	if d == nil {
		return ""
	}
	if d.PrettyName != "" {
		return d.PrettyName
	}
	return d.ID + " " + d.VersionID
}
