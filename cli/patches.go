package cli

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/patchbay/patchbay/internal/table"
	"github.com/patchbay/patchbay/patch"
	"github.com/patchbay/patchbay/pkgmgr"
	"github.com/patchbay/patchbay/report"
	"github.com/patchbay/patchbay/scan"
)

// PatchRow is one available patch in `patchbay patches`.
type PatchRow struct {
	Cycle     patch.Cycle  `json:"cycle"`
	Types     []patch.Type `json:"types"`
	Ecosystem string       `json:"ecosystem"`
	Package   string       `json:"package"`
	Binary    string       `json:"binary,omitempty"`
	Installed string       `json:"installed"`
	Candidate string       `json:"candidate"`
	Origin    string       `json:"origin"`
	CVEs      []string     `json:"cves"`
	Held      bool         `json:"held,omitempty"`
}

// patchRows lists the system cycle's updates from the package manager and
// the application cycle's fixes from the feeds, security first.
func patchRows(res scan.Result) []PatchRow {
	var rows []PatchRow
	for _, u := range res.Updates {
		rows = append(rows, PatchRow{Cycle: u.Cycle, Types: u.Types, Ecosystem: u.Ecosystem, Package: u.SourceOf(), Binary: u.Name,
			Installed: u.Installed, Candidate: u.Candidate, Origin: u.Origin, CVEs: u.CVEs, Held: u.Held})
	}
	for _, p := range report.Patches(res.Findings) {
		if p.Fixed == "" || p.Findings[0].Cycle != patch.CycleApplication {
			continue
		}
		r := PatchRow{Cycle: patch.CycleApplication, Types: []patch.Type{patch.Security}, Ecosystem: p.Ecosystem, Package: p.Package,
			Installed: p.Installed, Candidate: p.Fixed, Origin: "advisories", CVEs: []string{}}
		for _, f := range p.Findings {
			r.CVEs = append(r.CVEs, f.Vulnerability)
		}
		rows = append(rows, r)
	}
	sort.SliceStable(rows, func(i, j int) bool {
		a, b := rows[i], rows[j]
		if a.Cycle != b.Cycle {
			return a.Cycle > b.Cycle // system first
		}
		if sa, sb := a.Types[0] == patch.Security, b.Types[0] == patch.Security; sa != sb {
			return sa
		}
		if a.Package != b.Package {
			return a.Package < b.Package
		}
		return a.Binary < b.Binary
	})
	return rows
}

func newPatchesCmd(e *env) *cobra.Command {
	var (
		root, output  string
		refresh, wide bool
		staleAfter    = defaultStaleAfter
	)
	cmd := &cobra.Command{
		Use:   "patches [--root DIR] [PATH...]",
		Args:  cobra.ArbitraryArgs,
		Short: "List available patches by cycle (system, application) and type",
		Long: `patches lists what can be installed: for --root, the updates the package
manager offers (apt: with the archive they come from and the CVEs their
changelogs name), classified as security, bugfix, feature, compatibility,
performance, regulatory or localization; for PATH arguments, the versions that
fix the application dependencies' vulnerabilities.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output, dataFormats); err != nil {
				return err
			}
			if root == "" && len(args) == 0 {
				return fmt.Errorf("nothing to list: give --root DIR (--root / for this host) and/or PATH arguments")
			}
			res, err := e.scan(cmd.Context(), root, args, true, refresh, staleAfter, time.Now())
			if err != nil {
				return err
			}
			rows := patchRows(res)
			var reboot *pkgmgr.RebootStatus
			if root != "" {
				st, err := (&pkgmgr.Reboot{R: &pkgmgr.Runner{Root: root}}).Status(cmd.Context())
				if err != nil {
					return err
				}
				reboot = &st
			}
			if output != "table" {
				return printData(e.stdout, output, map[string]any{"patches": rows, "reboot": reboot, "skipped": res.Inventory.Skipped})
			}
			tb := table.New(table.Column{Name: "CYCLE"}, table.Column{Name: "TYPES", Shrink: 1, Min: 8}, table.Column{Name: "PACKAGE", Shrink: 3, Min: 12},
				table.Column{Name: "INSTALLED", Shrink: 4, Min: 10}, table.Column{Name: "CANDIDATE", Shrink: 5, Min: 10}, table.Column{Name: "ORIGIN", Shrink: 6, Min: 10},
				table.Column{Name: "CVES", Shrink: 7, Min: 15})
			for _, r := range rows {
				types := make([]string, len(r.Types))
				for i, t := range r.Types {
					types[i] = string(t)
				}
				name := r.Package
				if r.Binary != "" && r.Binary != r.Package {
					name = r.Binary + " (" + r.Package + ")"
				}
				cves := strings.Join(r.CVEs, ", ")
				if len(r.CVEs) > 3 {
					cves = strings.Join(r.CVEs[:3], ", ") + fmt.Sprintf(", +%d more", len(r.CVEs)-3)
				}
				origin := r.Origin
				if r.Held {
					origin += " (held)"
				}
				tb.Row(string(r.Cycle), strings.Join(types, ","), name, r.Installed, r.Candidate, origin, cves)
			}
			if err := e.writeTable(tb, wide); err != nil {
				return err
			}
			if reboot != nil {
				if reboot.Required {
					fmt.Fprintf(e.stdout, "\nReboot required: %s\n", strings.Join(reboot.Reasons, "; "))
				}
				for _, p := range reboot.Stale {
					unit := p.Unit
					if unit == "" {
						unit = "no unit"
					}
					fmt.Fprintf(e.stdout, "Restart needed: pid %d %s (%s) maps replaced %s\n", p.PID, p.Command, unit, strings.Join(p.Libraries, ", "))
				}
			}
			for _, s := range res.Inventory.Skipped {
				fmt.Fprintf(e.stderr, "patchbay: skipped %s\n", s.Error())
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&root, "root", "", "filesystem root whose package manager is asked (/ for this host)")
	outputFlag(cmd.Flags(), &output, dataFormats)
	wideFlag(cmd.Flags(), &wide)
	cmd.Flags().BoolVar(&refresh, "refresh", false, "refresh the package manager's lists (apt-get update) first")
	cmd.Flags().Var(durationFlag{&staleAfter}, "stale-after", staleAfterHelp)
	return cmd
}
