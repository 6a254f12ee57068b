package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/patchbay/patchbay/advisory"
	"github.com/patchbay/patchbay/api"
	"github.com/patchbay/patchbay/duration"
	"github.com/patchbay/patchbay/internal/table"
	"github.com/patchbay/patchbay/inventory"
	"github.com/patchbay/patchbay/inventory/collect"
	"github.com/patchbay/patchbay/match"
	"github.com/patchbay/patchbay/patch"
	"github.com/patchbay/patchbay/report"
	"github.com/patchbay/patchbay/risk"
	"github.com/patchbay/patchbay/scan"
)

func newScanCmd(e *env) *cobra.Command {
	var (
		root, format, failOn, outFile string
		legacyFormat                  string
		strict, noPM, refresh, wide   bool
		upload                        bool
		service                       string
		srv                           clientConfig
		staleAfter                    = defaultStaleAfter
	)
	cmd := &cobra.Command{
		Use:   "scan [PATH...]",
		Args:  cobra.ArbitraryArgs,
		Short: "Find what is installed, match it against the advisory feeds, and say what to patch first",
		Long: `scan reads OS package databases under --root (dpkg, rpm, apk) and the
lockfiles, manifests, Go binaries, installed Python packages and SBOMs under
each PATH, matches them against the advisory feeds imported in the local
database (--data-dir, --db; built by feeds sync or feeds import, never
created by scan), and prints the patches to apply, most urgent first. It
warns when the feeds are stale (data older than --stale-after, 7 days).

--upload also sends the application packages to the server (--server or
PATCHBAY_SERVER, token in PATCHBAY_TOKEN) as --service's inventory; the
server matches them against its own feeds, and says what it found.

Exit status: 0, or 1 when --fail-on is given and a finding at or above that
priority exists, or 2 on errors (and, with --strict, when any input was
skipped).`,
		Example: `  patchbay feeds sync
  patchbay scan --root /
  patchbay scan -o json ./service
  patchbay scan --fail-on P2 -o sarif --output-file results.sarif .`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if root == "" && len(args) == 0 {
				return fmt.Errorf("nothing to scan: give --root DIR (--root / for this host) and/or PATH arguments")
			}
			if upload && service == "" {
				return fmt.Errorf("--upload: name the service the inventory belongs to with --service NAME")
			}
			var threshold risk.Priority
			if failOn != "" {
				p, err := risk.ParsePriority(failOn)
				if err != nil {
					return fmt.Errorf("--fail-on: %w", err)
				}
				threshold = p
			}
			if cmd.Flags().Changed("format") {
				var err error
				if format, outFile, err = legacyScanFormat(e, cmd.Flags().Changed("output"), legacyFormat, format, outFile); err != nil {
					return err
				}
			}
			if err := checkOutput(format, report.Formats); err != nil {
				return err
			}
			ctx := cmd.Context()
			now := time.Now()
			res, err := e.scan(ctx, root, args, !noPM, refresh, staleAfter, now)
			if err != nil {
				return err
			}
			inv := res.Inventory
			if upload {
				if err := e.uploadService(ctx, &srv, service, inv); err != nil {
					return err
				}
			}
			out := e.stdout
			var f *outputFile
			if outFile != "" && outFile != "-" {
				if f, err = createOutput(outFile); err != nil {
					return err
				}
				defer f.abort()
				out = f
			}
			bw := bufio.NewWriter(out)
			meta := report.Meta{ToolVersion: Version, GeneratedAt: now, Color: format == "table" && f == nil && e.isTerminal(e.stdout) && os.Getenv("NO_COLOR") == ""}
			if f == nil {
				meta.Width = e.tableWidth(wide)
			}
			if err := report.Write(bw, format, res, meta); err != nil {
				return err
			}
			if err := bw.Flush(); err != nil {
				return err
			}
			if f != nil {
				if err := f.commit(); err != nil {
					return err
				}
				fmt.Fprintf(e.stderr, "wrote the %s report to %s: %s\n", format, outFile, table.Plural(len(res.Findings), "finding"))
			}
			if format != "table" {
				for _, s := range inv.Skipped {
					fmt.Fprintf(e.stderr, "patchbay: skipped %s\n", s.Error())
				}
			}
			for _, w := range inv.Warnings {
				fmt.Fprintf(e.stderr, "patchbay: warning: %s\n", w)
			}
			var unreadable []inventory.Skip
			for _, s := range inv.Skipped {
				if s.Unreadable {
					unreadable = append(unreadable, s)
				}
			}
			if len(unreadable) > 0 {
				return fmt.Errorf("%s could not be read (first: %s); the report covers the rest", table.Plural(len(unreadable), "input"), unreadable[0].Error())
			}
			if strict && len(inv.Skipped) > 0 {
				return fmt.Errorf("--strict: %s skipped (first: %s)", table.Plural(len(inv.Skipped), "input"), inv.Skipped[0].Error())
			}
			if threshold > 0 {
				n := 0
				for _, f := range res.Findings {
					if f.Priority <= threshold {
						n++
					}
				}
				if n > 0 {
					return fmt.Errorf("%w: %s at %s or above", ErrThreshold, table.Plural(n, "finding"), threshold)
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&root, "root", "", "filesystem root whose OS package databases are scanned (/ for this host)")
	outputFlag(cmd.Flags(), &format, report.Formats)
	// --format was scan's format before -o was the format everywhere:
	// kept for CI pipelines, with a note on standard error.
	cmd.Flags().StringVarP(&legacyFormat, "format", "f", "table", "output format (deprecated: -o)")
	cmd.Flags().MarkDeprecated("format", "use -o/--output (-o json, -o sarif, …); --output-file names the file")
	// pflag writes the note to the flag set's output; cobra would copy it
	// to standard output, where the report goes.
	cmd.Flags().SetOutput(e.stderr)
	cmd.Flags().StringVar(&outFile, "output-file", "", "write the report to this file instead of standard output")
	wideFlag(cmd.Flags(), &wide)
	cmd.Flags().StringVar(&failOn, "fail-on", "", "exit 1 when a finding at or above this priority exists (P1..P4)")
	cmd.Flags().BoolVar(&strict, "strict", false, "fail (exit 2) when any input is skipped")
	cmd.Flags().BoolVar(&noPM, "no-package-manager", false, "do not ask the root's package manager (apt) for available updates")
	cmd.Flags().BoolVar(&refresh, "refresh", false, "refresh the package manager's lists (apt-get update) first")
	cmd.Flags().BoolVar(&upload, "upload", false, "upload the application inventory to the server as --service's (from CI); the server matches and prioritises it")
	cmd.Flags().StringVar(&service, "service", "", "with --upload: the Service the inventory belongs to")
	cmd.Flags().Var(durationFlag{&staleAfter}, "stale-after", staleAfterHelp)
	// Only --server: the CA and the pin come from the environment.
	srv.bind(cmd.Flags(), clientFlags{serverHelp: "with --upload: server URL (env PATCHBAY_SERVER; token in PATCHBAY_TOKEN, pin in PATCHBAY_PIN)"})
	return cmd
}

// legacyScanFormat reads scan's flags as they were before -o was the
// format: --format FORMAT [-o FILE]. A pipeline that wrote a file with
// them goes on writing it, with a note; -o naming a format beside
// --format is refused, as -o json once silently wrote a file named json.
func legacyScanFormat(e *env, oGiven bool, legacy, o, outFile string) (format, file string, err error) {
	if !oGiven {
		return legacy, outFile, nil
	}
	if containsStr(report.Formats, o) {
		return "", "", fmt.Errorf("--format %s with -o %s: -o is the format now (--format is its old name); give -o %s alone, and --output-file FILE for a file", legacy, o, o)
	}
	if outFile != "" {
		return "", "", fmt.Errorf("-o %q and --output-file %q: -o is the format; give --output-file alone", o, outFile)
	}
	fmt.Fprintf(e.stderr, "patchbay: -o FILE with --format is deprecated: write -o %s --output-file %s\n", legacy, o)
	return legacy, o, nil
}

// uploadService sends the application packages of a scan (the OS
// packages are the hosts' agents' to report) as a service's inventory.
func (e *env) uploadService(ctx context.Context, srv *clientConfig, service string, inv inventory.Result) error {
	c, err := srv.apiClient()
	if err != nil {
		return fmt.Errorf("--upload: %w", err)
	}
	req := api.ServiceInventory{Packages: []inventory.Package{}}
	for _, p := range inv.Packages {
		if p.Cycle() == patch.CycleApplication {
			req.Packages = append(req.Packages, p)
		}
	}
	var resp api.ServiceInventoryResponse
	if err := c.Do(ctx, http.MethodPut, api.Prefix+"/services/"+url.PathEscape(service)+"/inventory", req, &resp); err != nil {
		return fmt.Errorf("--upload: %w", err)
	}
	fmt.Fprintf(e.stderr, "uploaded %s of service %s to %s: %s there, matched against the server's feeds (%d new, %d closed)\n", table.Plural(resp.Packages, "package"), service,
		srv.server, table.Plural(resp.Open, "open finding"), resp.Opened, resp.Closed)
	return nil
}

func containsStr(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}

// noAdvisories is the source of a scan without a local database.
type noAdvisories struct{}

func (noAdvisories) Advisories(context.Context, []match.Key) ([]*advisory.Advisory, error) {
	return nil, nil
}

func (noAdvisories) Exploitation(context.Context, []string) (map[string]advisory.KEVEntry, map[string]advisory.EPSSScore, error) {
	return nil, nil, nil
}

// scan collects the inventory, matches it against the local database's
// feeds (warning when it has none, or stale ones) and, for a root, merges
// the package manager's available updates.
func (e *env) scan(ctx context.Context, root string, paths []string, usePM, refresh bool, staleAfter duration.Duration, now time.Time) (scan.Result, error) {
	inv, err := collect.Collect(ctx, collect.Options{Root: root, Paths: paths})
	if err != nil {
		return scan.Result{}, err
	}
	// The local database is read, never created: without one there is
	// nothing to match against, and the scan says so.
	var src scan.Source = noAdvisories{}
	db, err := e.openExistingDB(ctx)
	var missing *errNoLocalDB
	switch {
	case errors.As(err, &missing):
		fmt.Fprintf(e.stderr, "patchbay: warning: no advisory database at %s: nothing to match against; "+
			"run `patchbay feeds sync` or `patchbay feeds import PATH` (or give --data-dir DIR of one)\n", missing.path)
	case err != nil:
		return scan.Result{}, err
	default:
		defer db.Close()
		src = db
		srcs, err := db.Sources(ctx)
		if err != nil {
			return scan.Result{}, fmt.Errorf("feeds of %s: %w", e.dbName(), err)
		}
		if len(srcs) == 0 {
			fmt.Fprintf(e.stderr, "patchbay: warning: no advisory feeds imported in %s; run `patchbay feeds sync` or `patchbay feeds import`\n", e.dbName())
		} else if w := staleWarning(srcs, now, staleAfter, e.dbName()); w != "" {
			fmt.Fprintln(e.stderr, w)
		}
	}
	res, err := scan.Run(ctx, src, inv, now)
	if err != nil {
		return res, err
	}
	if root != "" && usePM {
		manager, ups, why := e.systemUpdates(ctx, root, inv.Distro, refresh)
		if why != "" {
			res.Inventory.Skipped = append(res.Inventory.Skipped, inventory.Skip{Path: root, Reason: manager + ": " + why})
		} else if manager != "" {
			if err := scan.AddUpdates(ctx, src, &res, manager, ups, now); err != nil {
				return res, err
			}
		}
	}
	return res, nil
}
