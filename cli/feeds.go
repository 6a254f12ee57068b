package cli

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/patchbay/patchbay/api"
	"github.com/patchbay/patchbay/feeds"
	"github.com/patchbay/patchbay/feeds/nvd"
	"github.com/patchbay/patchbay/internal/table"
	"github.com/patchbay/patchbay/inventory"
	"github.com/patchbay/patchbay/server"
	"github.com/patchbay/patchbay/store"
)

func newFeedsCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "feeds",
		Short: "Import, sync and inspect advisory feeds (OSV, CISA KEV, EPSS, NVD, Debian urgencies)",
		Long: `feeds status shows the server's feeds when a server is configured (--server
or PATCHBAY_SERVER), or, with --local or when no server is configured, the
local database's (--data-dir, --db); feeds refresh asks the server to
refresh its feeds now.

feeds import and feeds sync build the local database that scan matches
against (creating it). With a server configured they refuse unless --local
is given: the server's feeds come from its own --feeds-dir, --feeds-sync or
--feeds-mirror, and feeds refresh.`,
	}
	m := &modeFlags{}
	m.bind(cmd)
	cmd.AddCommand(newFeedsImportCmd(e, m), newFeedsSyncCmd(e, m), newFeedsStatusCmd(e, m), newFeedsRefreshCmd(e, m))
	return cmd
}

// withLocalFeeds runs fn with the local database open, creating it: for
// the commands that write the local feeds (import, sync). With a server
// configured it refuses unless --local is given.
func (e *env) withLocalFeeds(cmd *cobra.Command, m *modeFlags, fn func(ctx context.Context, db *store.DB) error) error {
	if e.local && cmd.Flags().Changed("server") {
		return fmt.Errorf("--local and --server: give one (--local acts on the local database, --server on the server)")
	}
	if !e.local && m.server != "" {
		return fmt.Errorf("%s writes the local database, but a server is configured (%s): the server's feeds come from its "+
			"--feeds-dir, --feeds-sync or --feeds-mirror, and `patchbay feeds refresh` refreshes them now; "+
			"add --local to write the local database (%s)", cmd.CommandPath(), m.server, e.dbName())
	}
	fmt.Fprintf(e.stderr, "local database %s\n", e.dbName())
	return e.withDB(cmd, fn)
}

func newFeedsImportCmd(e *env, m *modeFlags) *cobra.Command {
	var strict, force bool
	cmd := &cobra.Command{
		Use:   "import PATH...",
		Short: "Import OSV all.zip archives, OSV JSON files or directories, the KEV catalog, EPSS CSV(.gz), NVD CVE files, the Debian tracker's JSON, Red Hat's CSAF VEX",
		Long: `import reads OSV all.zip archives, OSV JSON records, directories of these,
the CISA KEV catalog (JSON), EPSS scores (CSV, optionally gzipped), files
of NVD CVE records in the CVE API 2.0 shape (JSON, optionally gzipped:
scores by NVD, the CNA and ADPs, CWEs, dates), the Debian security
tracker's JSON export (Debian's urgency per release and source package)
and Red Hat's CSAF 2.0 VEX documents (Red Hat's severity per CVE and RPM
package, for Red Hat, Rocky Linux and AlmaLinux findings).

Everything given is applied in one transaction: OSV, KEV, EPSS, NVD and
vendor ratings together (an import that fails or is interrupted changes
nothing; readers see the old data or all of the new). NVD records are
added or replaced by newer copies, never removed; a tracker export
replaces Debian's ratings; a CSAF document replaces Red Hat's ratings of
its CVE (the others are kept).

An all.zip is the snapshot of one ecosystem's collection (osv/<Ecosystem>),
named by the ecosystem its records name, not by the file name; records of
that collection it lacks are removed. An archive mixing ecosystems is
refused, and so is one with a member that does not read back (a failed
CRC): whole, before anything is applied.

A KEV catalog, EPSS file or all.zip with fewer than half the records its
source holds (an empty catalog replacing 1,404 entries) is refused unless
--force. Malformed records are skipped and named (--strict: exit 2).`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return e.withLocalFeeds(cmd, m, func(ctx context.Context, db *store.DB) error {
				im := &feeds.Importer{Store: db, Force: force}
				start := time.Now()
				sum, err := im.ImportPaths(ctx, args)
				if err != nil {
					return err
				}
				for _, p := range sum.Problems {
					fmt.Fprintf(e.stderr, "patchbay: skipped malformed record %s\n", p.String())
				}
				for _, f := range sum.NotImported {
					fmt.Fprintf(e.stderr, "patchbay: not imported: %s (gzipped JSON that is not NVD CVE records)\n", f)
				}
				if _, err := db.Audit.Append(ctx, actor(), "feeds.import", strings.Join(args, " "), sum); err != nil {
					return err
				}
				fmt.Fprintf(e.stdout, "imported in %s: %s\n", time.Since(start).Round(time.Millisecond), sum)
				if strict && sum.Malformed > 0 {
					return fmt.Errorf("--strict: %d malformed records skipped", sum.Malformed)
				}
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&strict, "strict", false, "fail (exit 2) when any record is skipped as malformed")
	cmd.Flags().BoolVar(&force, "force", false, "import a feed even when it holds fewer than half the records its source holds")
	return cmd
}

func newFeedsSyncCmd(e *env, m *modeFlags) *cobra.Command {
	var (
		ecosystems, sources []string
		mirror, nvdURL      string
	)
	cmd := &cobra.Command{
		Use:   "sync",
		Short: "Download the feeds from upstream or a mirror and apply them atomically",
		Long: `sync downloads, for each OSV ecosystem, the bucket's all.zip, and the CISA
KEV catalog and the EPSS scores, with conditional requests (unchanged feeds
are not downloaded again), and applies each in one transaction. A download
with fewer than half the records its source holds is refused (failed); to
accept it, download it and run ` + "`patchbay feeds import --force`" + `.

--sources nvd also fetches NVD's CVE records (scores by NVD, the CNA and
ADPs) from the paged CVE API 2.0: every record on the first sync (about
300,000, in pages of 2,000, 6 s apart as NVD asks without an API key:
about 15 minutes), then only those changed since the newest stored one
(lastModStartDate). NVD_API_KEY, when set, is sent as the apiKey header
and the pause drops to 0.6 s. --nvd-url points at another server with the
same API.

Without --ecosystem, the ecosystems already in the index are synced, or on a
first sync: ` + strings.Join(feeds.DefaultEcosystems, ", ") + `, plus this host's distro.
--mirror points at a server with the upstream layout (osv/<Ecosystem>/all.zip,
kev/known_exploited_vulnerabilities.json, epss/epss_scores-current.csv.gz),
for air-gapped sites.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return e.withLocalFeeds(cmd, m, func(ctx context.Context, db *store.DB) error {
				opts := feeds.SyncOptions{Mirror: mirror, TempDir: filepath.Join(e.dataDir, "tmp")}
				for _, s := range sources {
					switch s {
					case "osv":
					case "kev":
						opts.KEV = true
					case "epss":
						opts.EPSS = true
					case "nvd":
						opts.NVD, opts.NVDURL = true, nvdURL
						opts.NVDAPIKey = os.Getenv("NVD_API_KEY")
						opts.NVDDelay = 6 * time.Second
						if opts.NVDAPIKey != "" {
							opts.NVDDelay = 600 * time.Millisecond
						}
					default:
						return fmt.Errorf("--sources: unknown source %q (want osv, kev, epss, nvd)", s)
					}
				}
				if containsStr(sources, "osv") {
					opts.Ecosystems = ecosystems
					if len(opts.Ecosystems) == 0 {
						ecos, err := defaultEcosystems(ctx, db)
						if err != nil {
							return err
						}
						opts.Ecosystems = ecos
					}
				}
				if e.isTerminal(e.stderr) {
					opts.Progress = func(source string, done, total int64) {
						fmt.Fprintf(e.stderr, "\r\x1b[K%s", progressLine(source, done, total))
					}
				}
				im := &feeds.Importer{Store: db}
				outcomes, err := im.Sync(ctx, opts)
				if _, aerr := db.Audit.Append(ctx, actor(), "feeds.sync", mirror, outcomes); aerr != nil {
					return aerr
				}
				if opts.Progress != nil {
					fmt.Fprint(e.stderr, "\r\x1b[K")
				}
				for _, o := range outcomes {
					switch o.Status {
					case "failed":
						fmt.Fprintf(e.stdout, "%-14s failed: %s\n", o.Source, o.Err)
					case "updated":
						fmt.Fprintf(e.stdout, "%-14s updated: %s\n", o.Source, o.Summary)
					default:
						fmt.Fprintf(e.stdout, "%-14s %s\n", o.Source, o.Status)
					}
				}
				return err
			})
		},
	}
	cmd.Flags().StringSliceVar(&ecosystems, "ecosystem", nil, "OSV ecosystem to sync (repeatable): Go, PyPI, npm, Debian, …")
	cmd.Flags().StringSliceVar(&sources, "sources", []string{"osv", "kev", "epss"}, "feeds to sync: osv, kev, epss, nvd")
	cmd.Flags().StringVar(&mirror, "mirror", "", "base URL of a mirror with the upstream layout")
	cmd.Flags().StringVar(&nvdURL, "nvd-url", "", "with --sources nvd: the CVE API 2.0 endpoint (default "+nvd.Upstream+")")
	return cmd
}

// defaultEcosystems are the OSV collections already imported, or on a first
// sync the common language ecosystems and this host's distro.
func defaultEcosystems(ctx context.Context, db *store.DB) ([]string, error) {
	srcs, err := db.Sources(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, s := range srcs {
		if strings.HasPrefix(s.Source, feeds.SourceOSVPrefix) && s.Source != feeds.LocalCollection {
			out = append(out, strings.TrimPrefix(s.Source, feeds.SourceOSVPrefix))
		}
	}
	if len(out) > 0 {
		return out, nil
	}
	out = append(out, feeds.DefaultEcosystems...)
	if d, err := inventory.ReadDistro("/"); err == nil && d.Ecosystem != "" {
		out = append(out, inventory.BaseEcosystem(d.Ecosystem))
	}
	return out, nil
}

func progressLine(source string, done, total int64) string {
	mb := func(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }
	if total <= 0 {
		return fmt.Sprintf("%s %s", source, mb(done))
	}
	const width = 30
	fill := int(float64(width) * float64(done) / float64(total))
	if fill > width {
		fill = width
	}
	return fmt.Sprintf("%-14s [%s%s] %s / %s %3d%%", source, strings.Repeat("=", fill), strings.Repeat(" ", width-fill), mb(done), mb(total), done*100/total)
}

func newFeedsStatusCmd(e *env, m *modeFlags) *cobra.Command {
	var output string
	var wide bool
	staleAfter := defaultStaleAfter
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show each feed source and ecosystem: record counts, age, and which are stale",
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output, dataFormats); err != nil {
				return err
			}
			tg, err := e.open(cmd, m)
			if err != nil {
				return err
			}
			defer tg.close()
			ctx := cmd.Context()
			var st struct {
				Sources    []feeds.SourceState `json:"sources"`
				Ecosystems map[string]int      `json:"ecosystems"`
			}
			if tg.api != nil {
				if err := tg.api.Do(ctx, http.MethodGet, api.Prefix+"/feeds", nil, &st); err != nil {
					return fmt.Errorf("feeds status: %w", err)
				}
			} else {
				if st.Sources, err = tg.db.Sources(ctx); err != nil {
					return fmt.Errorf("feeds status: %w", err)
				}
				if st.Ecosystems, err = tg.db.EcosystemCounts(ctx); err != nil {
					return fmt.Errorf("feeds status: %w", err)
				}
			}
			now := time.Now()
			stale := staleNames(st.Sources, now, staleAfter)
			if output != "table" {
				if stale == nil {
					stale = []string{}
				}
				return printData(e.stdout, output, map[string]any{"sources": st.Sources, "ecosystems": st.Ecosystems, "stale": stale, "stale_after": staleAfter.String()})
			}
			if len(st.Sources) == 0 {
				if tg.api != nil {
					fmt.Fprintln(e.stdout, "the server has no feeds imported; start it with --feeds-dir, --feeds-sync or --feeds-mirror")
				} else {
					fmt.Fprintln(e.stdout, "no feeds imported; run `patchbay feeds sync` or `patchbay feeds import PATH`")
				}
				return nil
			}
			tb := table.New(table.Column{Name: "SOURCE"}, right("RECORDS"), table.Column{Name: "IMPORTED", Drop: 1}, table.Column{Name: "DATA AS OF"},
				table.Column{Name: "STATE"}, table.Column{Name: "FROM", Shrink: 1, Min: 16, CutLeft: true, Drop: 2})
			for _, s := range st.Sources {
				state := "fresh"
				if isStale(s, now, staleAfter) {
					state = "STALE"
				}
				tb.Row(s.Source, strconv.Itoa(s.Records), age(now, s.ImportedAt), age(now, s.DataTime), state, s.Origin)
			}
			if err := e.writeTable(tb, wide); err != nil {
				return err
			}
			ecos := make([]string, 0, len(st.Ecosystems))
			for k := range st.Ecosystems {
				ecos = append(ecos, k)
			}
			sort.Strings(ecos)
			fmt.Fprintln(e.stdout)
			tb = table.New(table.Column{Name: "ECOSYSTEM"}, right("ADVISORIES"))
			total := 0
			for _, k := range ecos {
				tb.Row(k, strconv.Itoa(st.Ecosystems[k]))
				total += st.Ecosystems[k]
			}
			if err := e.writeTable(tb, wide); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "\n%s in %s\n", table.Plural(total, "advisory", "advisories"), table.Plural(len(ecos), "ecosystem"))
			if len(stale) > 0 {
				how := "patchbay feeds sync (or feeds import PATH)"
				if tg.api != nil {
					how = "patchbay feeds refresh (from the server's feed source)"
				}
				fmt.Fprintf(e.stdout, "%d stale (data older than %s): %s\nrefresh them: %s\n", len(stale), staleAfter, strings.Join(stale, ", "), how)
			}
			return nil
		},
	}
	outputFlag(cmd.Flags(), &output, dataFormats)
	wideFlag(cmd.Flags(), &wide)
	cmd.Flags().Var(durationFlag{&staleAfter}, "stale-after", staleAfterHelp)
	return cmd
}

func newFeedsRefreshCmd(e *env, m *modeFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "refresh",
		Short: "Ask the server to refresh its feeds now (from its --feeds-dir, --feeds-sync or --feeds-mirror) and rematch",
		RunE: func(cmd *cobra.Command, args []string) error {
			if e.local {
				return fmt.Errorf("--local: feeds refresh asks the server; for the local database run `patchbay feeds sync` or `patchbay feeds import`")
			}
			c, err := m.apiClient()
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stderr, "server %s\n", m.server)
			var r server.RefreshResult
			if err := c.Do(cmd.Context(), http.MethodPost, api.Prefix+"/feeds/refresh", nil, &r); err != nil {
				return fmt.Errorf("feeds refresh: %w", err)
			}
			for _, o := range r.Outcomes {
				if o.Status == "failed" {
					fmt.Fprintf(e.stdout, "%-14s failed: %s\n", o.Source, o.Err)
				}
			}
			fmt.Fprintf(e.stdout, "refreshed in %s: %s; rematched %s: %s opened, %d closed\n",
				r.Took.Round(time.Millisecond), r.Summary, table.Plural(r.Rematch.Hosts, "host"), table.Plural(r.Rematch.Opened, "finding"), r.Rematch.Closed)
			return nil
		},
	}
}

// age renders how long ago t was: "3h ago (2026-11-22 16:00 UTC)".
func age(now, t time.Time) string {
	if t.IsZero() || t.Year() < 1971 {
		return "unknown"
	}
	d := now.Sub(t)
	var s string
	switch {
	case d < time.Minute:
		s = "just now"
	case d < time.Hour:
		s = fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		s = fmt.Sprintf("%dh ago", int(d.Hours()))
	default:
		s = fmt.Sprintf("%dd ago", int(d.Hours()/24))
	}
	return s + " (" + t.UTC().Format("2006-01-02 15:04") + " UTC)"
}
