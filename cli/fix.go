package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/patchbay/patchbay/duration"
	"github.com/patchbay/patchbay/internal/table"
	"github.com/patchbay/patchbay/inventory/collect"
	"github.com/patchbay/patchbay/remedy"
	"github.com/patchbay/patchbay/remedy/edit"
	"github.com/patchbay/patchbay/risk"
	"github.com/patchbay/patchbay/scan"
	"github.com/patchbay/patchbay/server"
)

// fixReport is fix's JSON document (schema patchbay.fix/v1).
type fixReport struct {
	Schema   string           `json:"schema"`
	Upgrades []remedy.Upgrade `json:"upgrades"`
	Changes  []edit.Change    `json:"changes"`
	Diff     string           `json:"diff"`
	Closed   []scan.Finding   `json:"closed"`
	Opened   []scan.Finding   `json:"opened"`
	Unfixed  []remedy.Unfixed `json:"unfixed"`
	Notes    []string         `json:"notes"`
	Applied  bool             `json:"applied"`
	// Withdrawn counts the rewritten files left out because their
	// re-scan opened a finding (the notes name them).
	Withdrawn int `json:"withdrawn"`
}

func newFixCmd(e *env) *cobra.Command {
	var (
		format, priority, strategy string
		apply, offline             bool
		minAge                     duration.Duration
		staleAfter                 = defaultStaleAfter
	)
	cmd := &cobra.Command{
		Use:   "fix PATH...",
		Args:  cobra.MinimumNArgs(1),
		Short: "Upgrade vulnerable application dependencies: the smallest fixing versions, as a re-scanned diff",
		Long: `fix scans the lockfiles and manifests under each PATH as scan does, and for
each vulnerable dependency proposes the smallest upgrade that the advisory
feeds say fixes it without opening another vulnerability (and says what
else it closes). It rewrites go.mod (go get in a temporary copy for go.sum
when go is installed; modfile alone with --offline), requirements*.txt pins,
and package.json/package-lock.json (the real npm client in a temporary
copy), re-scans the result, and prints a unified diff with the findings it
closes. Every finding it leaves open has a reason. Nothing is written
without --apply, which replaces the files atomically.

--strategy in-place keeps major versions; relax allows major upgrades.
--priority P2 fixes P1 and P2 findings only. --min-age holds back
versions younger than the age (the release-age gate), unless the finding
is known exploited (CISA KEV); offline no release dates are known.

Exit status: 0, or 2 on errors.`,
		Example: `  patchbay fix ./service
  patchbay fix --priority P2 --strategy relax --apply .`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(format, []string{"table", "json"}); err != nil {
				return err
			}
			strat, err := remedy.ParseStrategy(strategy)
			if err != nil {
				return fmt.Errorf("--strategy: %w", err)
			}
			var prio risk.Priority
			if priority != "" {
				if prio, err = risk.ParsePriority(priority); err != nil {
					return fmt.Errorf("--priority: %w", err)
				}
			}
			opts := fixOptions{
				remedy:     remedy.Options{Strategy: strat, Priority: prio, MinAge: time.Duration(minAge), Now: time.Now()},
				staleAfter: staleAfter,
			}
			if !offline {
				opts.edit.Go, _ = exec.LookPath("go")
				opts.edit.Npm, _ = exec.LookPath("npm")
			}
			rep, err := e.fix(cmd.Context(), args, opts)
			if err != nil {
				return err
			}
			if apply && len(rep.Changes) > 0 {
				if err := edit.Apply(rep.Changes); err != nil {
					return err
				}
				rep.Applied = true
			}
			bw := bufio.NewWriter(e.stdout)
			if format == "json" {
				err = printJSON(bw, rep)
			} else {
				err = writeFixTable(bw, rep, apply)
			}
			if err != nil {
				return err
			}
			return bw.Flush()
		},
	}
	outputFlag(cmd.Flags(), &format, []string{"table", "json"})
	cmd.Flags().StringVar(&priority, "priority", "", "fix findings at or above this priority only (P1..P4)")
	cmd.Flags().StringVar(&strategy, "strategy", string(remedy.InPlace), "in-place (keep major versions) or relax (major upgrades too)")
	cmd.Flags().BoolVar(&apply, "apply", false, "rewrite the files (atomically) instead of only printing the diff")
	cmd.Flags().BoolVar(&offline, "offline", false, "run neither go nor npm: go.mod by modfile alone (go.sum left), npm lockfiles left")
	cmd.Flags().Var(durationFlag{&minAge}, "min-age", "release-age gate: do not propose versions younger than this (7d), unless a finding is known exploited")
	cmd.Flags().Var(durationFlag{&staleAfter}, "stale-after", staleAfterHelp)
	return cmd
}

type fixOptions struct {
	remedy     remedy.Options
	edit       edit.Options
	staleAfter duration.Duration
}

// fix plans, rewrites and re-scans; it writes nothing.
func (e *env) fix(ctx context.Context, paths []string, opts fixOptions) (fixReport, error) {
	rep := fixReport{Schema: "patchbay.fix/v1"}
	db, err := e.openExistingDB(ctx)
	var missing *errNoLocalDB
	if errors.As(err, &missing) {
		return rep, fmt.Errorf("no advisory database at %s: fix needs the feeds; run `patchbay feeds sync` or `patchbay feeds import PATH` (or give --data-dir DIR of one)", missing.path)
	}
	if err != nil {
		return rep, err
	}
	defer db.Close()
	srcs, err := db.Sources(ctx)
	if err != nil {
		return rep, fmt.Errorf("feeds of %s: %w", e.dbName(), err)
	}
	if w := staleWarning(srcs, opts.remedy.Now, opts.staleAfter, e.dbName()); w != "" {
		fmt.Fprintln(e.stderr, w)
	}
	inv, err := collect.Collect(ctx, collect.Options{Paths: paths})
	if err != nil {
		return rep, err
	}
	for _, s := range inv.Skipped {
		fmt.Fprintf(e.stderr, "patchbay: skipped %s\n", s.Error())
	}
	before, err := scan.Run(ctx, db, inv, opts.remedy.Now)
	if err != nil {
		return rep, err
	}
	return fixPlan(ctx, db, before, opts)
}

// fixPlan is fix after the scan: propose, rewrite, re-scan, and the
// reasons of what is left.
func fixPlan(ctx context.Context, src scan.Source, before scan.Result, opts fixOptions) (fixReport, error) {
	rep := fixReport{Schema: "patchbay.fix/v1"}
	plan, err := remedy.Propose(ctx, src, before, opts.remedy)
	if err != nil {
		return rep, err
	}
	rw, err := edit.Rewrite(ctx, plan, opts.edit)
	if err != nil {
		return rep, err
	}
	chk, err := edit.Verify(ctx, src, before, rw, opts.remedy.Now)
	if err != nil {
		return rep, err
	}
	rep.Notes = rw.Notes
	rep.Unfixed = plan.Unfixed
	for _, f := range chk.Toolchain {
		rep.Notes = append(rep.Notes, fmt.Sprintf("%s: go get raised the go directive to %s, whose standard library has %s: build with a patched Go toolchain (fixed in %s)",
			strings.Join(f.Locations, ", "), f.Version, f.Vulnerability, f.Fixed))
	}
	// A file whose rewrite opens a finding is withdrawn, with the files
	// rewritten beside it.
	withdrawn := map[string]string{}
	for path, fc := range chk.Files {
		if len(fc.Opened) > 0 {
			withdrawn[filepath.Dir(path)] = fmt.Sprintf("the rewrite of %s was withdrawn: it opens %s (%s %s)", path, fc.Opened[0].Vulnerability, fc.Opened[0].Package, fc.Opened[0].Version)
		}
	}
	closed := map[string]bool{}
	for path, fc := range chk.Files {
		if withdrawn[filepath.Dir(path)] != "" {
			continue
		}
		for _, f := range fc.Closed {
			closed[path+"\x00"+f.Package+"\x00"+f.Vulnerability] = true
			rep.Closed = append(rep.Closed, f)
		}
	}
	for _, c := range rw.Changes {
		if withdrawn[filepath.Dir(c.Path)] == "" {
			rep.Changes = append(rep.Changes, c)
		}
	}
	skipped := map[string]string{}
	for _, s := range rw.Skipped {
		skipped[s.Path+"\x00"+s.Upgrade.Package+"\x00"+s.Upgrade.From] = s.Reason
	}
	newLock := map[string][]byte{}
	for _, c := range rw.Changes {
		newLock[c.Path] = c.New
	}
	for _, u := range plan.Upgrades {
		rep.Upgrades = append(rep.Upgrades, u)
		for _, f := range u.Closes {
			for _, loc := range f.Locations {
				if closed[loc+"\x00"+f.Package+"\x00"+f.Vulnerability] {
					continue
				}
				reason := skipped[loc+"\x00"+u.Package+"\x00"+u.From]
				switch {
				case reason != "":
				case withdrawn[filepath.Dir(loc)] != "":
					reason = withdrawn[filepath.Dir(loc)]
				case filepath.Base(loc) == "package-lock.json" && newLock[loc] != nil:
					parents, _ := edit.Parents(newLock[loc], f.Package, f.Version)
					if len(parents) > 0 {
						reason = fmt.Sprintf("fixed in %s, but a parent pins it: %s", u.To, strings.Join(parents, ", "))
					} else {
						reason = fmt.Sprintf("fixed in %s, but npm kept %s %s", u.To, f.Package, f.Version)
					}
				default:
					reason = fmt.Sprintf("fixed in %s, but the re-scan of %s still finds it", u.To, loc)
				}
				g := f
				g.Locations = []string{loc}
				rep.Unfixed = append(rep.Unfixed, remedy.Unfixed{Finding: g, Reason: reason})
			}
		}
	}
	scan.SortFindings(rep.Closed)
	for _, r := range withdrawn {
		rep.Notes = append(rep.Notes, r)
	}
	rep.Withdrawn = len(withdrawn)
	rep.Opened = []scan.Finding{}
	if rep.Upgrades == nil {
		rep.Upgrades = []remedy.Upgrade{}
	}
	if rep.Changes == nil {
		rep.Changes = []edit.Change{}
	}
	if rep.Closed == nil {
		rep.Closed = []scan.Finding{}
	}
	rep.Diff = edit.Diff(rep.Changes)
	return rep, nil
}

func writeFixTable(w io.Writer, rep fixReport, apply bool) error {
	if len(rep.Upgrades) > 0 {
		fmt.Fprintf(w, "%s:\n", table.Plural(len(rep.Upgrades), "upgrade"))
		for _, u := range rep.Upgrades {
			ids := make([]string, 0, len(u.Closes))
			for _, f := range u.Closes {
				ids = append(ids, f.Vulnerability)
			}
			extra := ""
			if u.Major {
				extra += " (major)"
			}
			if u.AgeBypass != "" {
				extra += " (release-age gate bypassed: " + u.AgeBypass + " is known exploited)"
			}
			fmt.Fprintf(w, "  %-2s %s %s → %s%s (%s) closes %s\n", u.Priority(), u.Package, u.From, u.To, extra, u.Ecosystem, strings.Join(ids, ", "))
		}
		fmt.Fprintln(w)
	}
	if rep.Diff != "" {
		io.WriteString(w, rep.Diff)
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "re-scan of the rewritten files: closes %s, opens none\n", table.Plural(len(rep.Closed), "finding"))
	if rep.Withdrawn > 0 {
		fmt.Fprintf(w, "(%s withdrawn because they would open findings: see the notes)\n", table.Plural(rep.Withdrawn, "rewrite"))
	}
	if len(rep.Unfixed) > 0 {
		fmt.Fprintf(w, "\n%s left open:\n", table.Plural(len(rep.Unfixed), "finding"))
		for _, l := range rep.Unfixed {
			f := l.Finding
			fmt.Fprintf(w, "  %-2s %s %s %s (%s): %s\n", f.Priority, f.Vulnerability, f.Package, f.Version, strings.Join(f.Locations, ", "), l.Reason)
		}
	}
	for _, n := range rep.Notes {
		fmt.Fprintf(w, "\nnote: %s\n", n)
	}
	switch {
	case rep.Applied:
		fmt.Fprintf(w, "\napplied: %s rewritten\n", table.Plural(len(rep.Changes), "file"))
	case len(rep.Changes) > 0 && !apply:
		fmt.Fprintf(w, "\nnothing written: --apply rewrites %s\n", table.Plural(len(rep.Changes), "file"))
	}
	return nil
}

// fixConfigFromEnv is the server's fix delivery configuration: the forge
// tokens from PATCHBAY_GITHUB_TOKEN and PATCHBAY_GITLAB_TOKEN (kept in
// memory, never in the database), and the go and npm commands when
// installed.
// fixConfig is fixConfigFromEnv with the leader's cadences.
func fixConfig(every, poll time.Duration) server.FixConfig {
	c := fixConfigFromEnv()
	c.Every, c.PollEvery = every, poll
	return c
}

func fixConfigFromEnv() server.FixConfig {
	c := server.FixConfig{Tokens: map[string]string{}}
	for forge, env := range map[string]string{"github": "PATCHBAY_GITHUB_TOKEN", "gitlab": "PATCHBAY_GITLAB_TOKEN"} {
		if v := os.Getenv(env); v != "" {
			c.Tokens[forge] = v
		}
	}
	c.Tools.Go, _ = exec.LookPath("go")
	c.Tools.Npm, _ = exec.LookPath("npm")
	return c
}
