package forge

import (
	"fmt"
	"sort"
	"strings"

	"github.com/patchbay/patchbay/remedy"
	"github.com/patchbay/patchbay/risk"
	"github.com/patchbay/patchbay/scan"
)

// Title is a merge request's title: the service and its upgrades.
func Title(service string, ups []remedy.Upgrade) string {
	if len(ups) == 1 {
		u := ups[0]
		return fmt.Sprintf("patchbay: %s: upgrade %s to %s", service, u.Package, u.To)
	}
	return fmt.Sprintf("patchbay: %s: upgrade %d vulnerable dependencies", service, len(ups))
}

// Body is a merge request's description: the upgrades, then the findings
// they close grouped by priority, most urgent first, each with its SLA
// due date, then the findings left open with their reasons.
func Body(service string, ups []remedy.Upgrade, left []remedy.Unfixed) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Upgrades of %s's vulnerable dependencies, proposed by patchbay and re-scanned: they close the findings below and open none.\n\n", service)
	b.WriteString("| package | from | to | closes |\n| --- | --- | --- | --- |\n")
	for _, u := range ups {
		fmt.Fprintf(&b, "| `%s` (%s) | %s | %s | %d |\n", u.Package, u.Ecosystem, u.From, u.To, len(u.Closes))
	}
	byPrio := map[risk.Priority][]scan.Finding{}
	seen := map[string]bool{}
	for _, u := range ups {
		for _, f := range u.Closes {
			k := f.Package + "\x00" + f.Vulnerability
			if seen[k] {
				continue
			}
			seen[k] = true
			byPrio[f.Priority] = append(byPrio[f.Priority], f)
		}
	}
	prios := make([]risk.Priority, 0, len(byPrio))
	for p := range byPrio {
		prios = append(prios, p)
	}
	sort.Slice(prios, func(i, j int) bool {
		if prios[i] == 0 || prios[j] == 0 {
			return prios[j] == 0 && prios[i] != 0
		}
		return prios[i] < prios[j]
	})
	for _, p := range prios {
		fs := byPrio[p]
		sort.SliceStable(fs, func(i, j int) bool {
			if !fs[i].Due.Equal(fs[j].Due) {
				return fs[i].Due.Before(fs[j].Due)
			}
			return fs[i].Vulnerability < fs[j].Vulnerability
		})
		name := p.String()
		if name == "" {
			name = "unprioritised"
		}
		fmt.Fprintf(&b, "\n### %s: %d finding%s closed\n\n", name, len(fs), plural(len(fs)))
		for _, f := range fs {
			due := "no SLA"
			if !f.Due.IsZero() {
				due = "due " + f.Due.UTC().Format("2006-01-02")
			}
			fmt.Fprintf(&b, "- %s in `%s` %s (%s)\n", f.Vulnerability, f.Package, f.Version, due)
		}
	}
	if len(left) > 0 {
		fmt.Fprintf(&b, "\n### Left open (%d)\n\n", len(left))
		for _, l := range left {
			fmt.Fprintf(&b, "- %s %s in `%s` %s: %s\n", l.Finding.Priority, l.Finding.Vulnerability, l.Finding.Package, l.Finding.Version, l.Reason)
		}
	}
	return b.String()
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
