package report

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

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
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "PRIORITY\tPACKAGE\tECOSYSTEM\tINSTALLED\tFIXED\tVULNERABILITIES\tTOP REASON")
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
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", color(prioColor[p.Priority], p.Priority.String()), p.Package, p.Ecosystem, p.Installed, fixed, strings.Join(ids, ", "), reason)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	c := CountByPriority(res.Findings)
	fmt.Fprintf(w, "\n%d packages scanned in %d files; %d findings (P1 %d, P2 %d, P3 %d, P4 %d) fixed by %d patches.\n",
		len(res.Inventory.Packages), len(res.Inventory.Files), len(res.Findings), c["P1"], c["P2"], c["P3"], c["P4"], len(patches))
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
		fmt.Fprintf(w, "%d updates available from the package manager (%d security); `patchbay patches` lists them.\n", n, sec)
	}
	if n := len(res.Inventory.Skipped); n > 0 {
		fmt.Fprintf(w, "Skipped %d inputs:\n", n)
		for _, s := range res.Inventory.Skipped {
			fmt.Fprintf(w, "  %s\n", s.Error())
		}
	}
	return nil
}
