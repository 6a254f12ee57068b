package report

import (
	"fmt"
	"io"
	"strings"

	"github.com/patchbay/patchbay/internal/table"
	"github.com/patchbay/patchbay/risk"
	"github.com/patchbay/patchbay/scan"
)

const (
	ansiReset  = "\x1b[0m"
	ansiRed    = "\x1b[1;31m"
	ansiYellow = "\x1b[33m"
	ansiCyan   = "\x1b[36m"
	ansiDim    = "\x1b[2m"
)

// Table writes the patches, most urgent first: one row per package with the
// installed and fixed version, the vulnerabilities it closes, the priority
// and the top reason; then a summary and what was skipped.
func Table(w io.Writer, res scan.Result, meta Meta) error {
	color := func(code, s string) string {
		if !meta.Color || code == "" {
			return s
		}
		return code + s + ansiReset
	}
	prioColor := map[risk.Priority]string{risk.P1: ansiRed, risk.P2: ansiYellow, risk.P3: ansiCyan, risk.P4: ansiDim}
	if d := distroName(res.Inventory.Distro); d != "" {
		fmt.Fprintf(w, "%s (%s)\n", d, res.Inventory.Distro.Ecosystem)
	}
	patches := Patches(res.Findings)
	if len(patches) > 0 {
		// A file column when the findings come from more than one file:
		// the same package in two lockfiles is two rows, or one naming both.
		files := map[string]bool{}
		for _, f := range res.Findings {
			for _, l := range f.Locations {
				files[l] = true
			}
		}
		cols := []table.Column{
			{Name: "PRIORITY"},
			{Name: "PACKAGE", Shrink: 3, Min: 11},
			{Name: "ECOSYSTEM", Shrink: 2, Min: 4, Drop: 1},
			{Name: "INSTALLED", Shrink: 4, Min: 8},
			{Name: "FIXED", Shrink: 5, Min: 8},
			{Name: "VULNERABILITIES", Shrink: 6, Min: 15},
			{Name: "TOP REASON", Shrink: 8, Min: 12, Drop: 2},
		}
		withFiles := len(files) > 1
		var under string // the directory every file is under, said once
		if withFiles {
			cols = append(cols[:6], table.Column{Name: "FILE", Shrink: 7, Min: 20, CutLeft: true}, cols[6])
			if under = commonDir(files); under == "/" {
				under = ""
			}
		}
		tb := table.New(cols...)
		for _, p := range patches {
			fixed := p.Fixed
			if fixed == "" {
				fixed = "no fix"
			} else if p.Unfixed > 0 {
				fixed += fmt.Sprintf(" (%d unfixed)", p.Unfixed)
			}
			ids := make([]string, 0, 3)
			for i, f := range p.Findings {
				if i == 3 {
					ids = append(ids, fmt.Sprintf("+%d more", len(p.Findings)-3))
					break
				}
				ids = append(ids, f.Vulnerability)
			}
			reason := ""
			if rs := p.Findings[0].Reasons; len(rs) > 0 {
				reason = rs[0]
			}
			row := []string{color(prioColor[p.Priority], p.Priority.String()), p.Package, p.Ecosystem, p.Installed, fixed, strings.Join(ids, ", ")}
			if withFiles {
				fs := patchFiles(p)
				for i := range fs {
					fs[i] = strings.TrimPrefix(fs[i], under)
				}
				row = append(row, strings.Join(fs, ", "))
			}
			tb.Row(append(row, reason)...)
		}
		if err := tb.Write(w, meta.Width); err != nil {
			return err
		}
		if under != "" {
			fmt.Fprintf(w, "(files under %s)\n", under)
		}
	}
	c := CountByPriority(res.Findings)
	fmt.Fprintf(w, "\n%s scanned in %s; %s (P1 %d, P2 %d, P3 %d, P4 %d) fixed by %s.\n",
		table.Plural(len(res.Inventory.Packages), "package"), table.Plural(len(res.Inventory.Files), "file"), table.Plural(len(res.Findings), "finding"),
		c["P1"], c["P2"], c["P3"], c["P4"], table.Plural(len(patches), "patch", "patches"))
	if n := len(res.Updates); n > 0 {
		sec := 0
		for _, u := range res.Updates {
			for _, t := range u.Types {
				if t == "security" {
					sec++
					break
				}
			}
		}
		fmt.Fprintf(w, "%s available from the package manager (%d security); `patchbay patches` lists them.\n", table.Plural(n, "update"), sec)
	}
	if n := len(res.Inventory.Skipped); n > 0 {
		fmt.Fprintf(w, "%s skipped:\n", table.Plural(n, "input"))
		for _, s := range res.Inventory.Skipped {
			fmt.Fprintf(w, "  %s\n", s.Error())
		}
	}
	return nil
}

// patchFiles are the files a patch's package was found in, each once, in
// the order found.
func patchFiles(p Patch) []string {
	var out []string
	seen := map[string]bool{}
	for _, f := range p.Findings {
		for _, l := range f.Locations {
			if !seen[l] {
				seen[l] = true
				out = append(out, l)
			}
		}
	}
	return out
}

// commonDir is the directory, ending in a slash, that every file is
// under ("" when none is common): the table's file column leaves it out.
func commonDir(files map[string]bool) string {
	prefix, first := "", true
	for f := range files {
		d := f[:strings.LastIndex(f, "/")+1]
		if first {
			prefix, first = d, false
			continue
		}
		for !strings.HasPrefix(d, prefix) {
			i := strings.LastIndex(strings.TrimSuffix(prefix, "/"), "/")
			prefix = prefix[:i+1]
		}
	}
	return prefix
}
