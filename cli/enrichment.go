package cli

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/patchbay/patchbay/advisory"
	"github.com/patchbay/patchbay/internal/table"
)

// writeEnrichment prints a CVE's scores, each with its source, its CWEs
// and dates, and the vendors' ratings (vulns show).
func writeEnrichment(w io.Writer, e *advisory.Enrichment) error {
	if e == nil {
		fmt.Fprintln(w, "  scores: none imported (no NVD record or vendor rating; `patchbay feeds sync --sources nvd` or feeds import an NVD file)")
		return nil
	}
	if r := e.Record; r != nil {
		fmt.Fprintf(w, "  NVD: %s, published %s, last modified %s", statusOrNone(r.Status), day(r.Published), day(r.LastModified))
		if len(r.CWEs) > 0 {
			fmt.Fprintf(w, "; %s", strings.Join(r.CWEs, ", "))
		}
		fmt.Fprintln(w)
		if len(r.Scores) == 0 {
			fmt.Fprintln(w, "  scores: none in the NVD record")
		} else {
			fmt.Fprintln(w, "  scores (the advisory's own, then the CNA's, NVD's, an ADP's decide, in that order):")
			tb := table.New(table.Column{Name: "CVSS"}, right("SCORE"), table.Column{Name: "SOURCE"}, table.Column{Name: "TYPE"}, table.Column{Name: "VECTOR"})
			tb.Indent = "    "
			for _, s := range r.Scores {
				tb.Row(s.Version, fmt.Sprintf("%.1f", s.Base), s.SourceName(), s.Type, s.Vector)
			}
			if err := tb.Write(w, 0); err != nil {
				return err
			}
		}
	}
	for _, v := range e.Vendors {
		where := v.Package
		if where == "" {
			where = "every package"
		}
		if v.Ecosystem != "" {
			where += " (" + v.Ecosystem + ")"
		}
		fmt.Fprintf(w, "  %s rating: %s in %s\n", v.Vendor, v.Rating, where)
	}
	return nil
}

func statusOrNone(s string) string {
	if s == "" {
		return "no status"
	}
	return s
}

func day(t time.Time) string {
	if t.IsZero() {
		return "unknown"
	}
	return t.Format(time.DateOnly)
}
