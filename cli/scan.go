package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/patchbay/patchbay/advisory"
	"github.com/patchbay/patchbay/api"
	"github.com/patchbay/patchbay/duration"
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
		root, format, failOn, output string
		strict, noPM, refresh        bool
		upload                       bool
		service                      string
		srv                          clientConfig
		staleAfter                   = defaultStaleAfter
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
  patchbay scan --format json ./service
  patchbay scan --fail-on P2 --format sarif -o results.sarif .`,
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
			if !containsStr(report.Formats, format) {
				return fmt.Errorf("--format %q: want one of %s", format, strings.Join(report.Formats, ", "))
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
			var f *os.File
			if output != "" && output != "-" {
				if f, err = os.Create(output); err != nil {
					return fmt.Errorf("--output: %w", err)
				}
				defer f.Close()
				out = f
			}
			bw := bufio.NewWriter(out)
			meta := report.Meta{ToolVersion: Version, GeneratedAt: now, Color: format == "table" && f == nil && e.isTerminal(e.stdout) && os.Getenv("NO_COLOR") == ""}
			if err := report.Write(bw, format, res, meta); err != nil {
				return err
			}
			if err := bw.Flush(); err != nil {
				return err
			}
			if f != nil {
				if err := f.Close(); err != nil {
					return fmt.Errorf("--output: %w", err)
				}
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
				return fmt.Errorf("%s could not be read (first: %s); the report covers the rest", plural(len(unreadable), "input", "inputs"), unreadable[0].Error())
			}
			if strict && len(inv.Skipped) > 0 {
				return fmt.Errorf("--strict: %s skipped (first: %s)", plural(len(inv.Skipped), "input", "inputs"), inv.Skipped[0].Error())
			}
			if threshold > 0 {
				n := 0
				for _, f := range res.Findings {
					if f.Priority <= threshold {
						n++
					}
				}
				if n > 0 {
					return fmt.Errorf("%w: %d findings at %s or above", ErrThreshold, n, threshold)
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&root, "root", "", "filesystem root whose OS package databases are scanned (/ for this host)")
	cmd.Flags().StringVarP(&format, "format", "f", "table", "output format: "+strings.Join(report.Formats, ", "))
	cmd.Flags().StringVar(&failOn, "fail-on", "", "exit 1 when a finding at or above this priority exists (P1..P4)")
	cmd.Flags().StringVarP(&output, "output", "o", "", "write the report to this file instead of standard output")
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
	fmt.Fprintf(e.stderr, "uploaded %d packages of service %s to %s: %d open findings there, matched against the server's feeds (%d new, %d closed)\n",
		resp.Packages, service, srv.server, resp.Open, resp.Opened, resp.Closed)
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
