package cli

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/patchbay/patchbay/agent"
	"github.com/patchbay/patchbay/api"
	"github.com/patchbay/patchbay/auth"
	"github.com/patchbay/patchbay/fleet"
	"github.com/patchbay/patchbay/internal/table"
	"github.com/patchbay/patchbay/risk"
	"github.com/patchbay/patchbay/scan"
	"github.com/patchbay/patchbay/server"
)

func newQuickstartCmd(e *env) *cobra.Command {
	o := &serverOpts{}
	var feedsDir, root string
	var noPM, exit bool
	var labels []string
	cmd := &cobra.Command{
		Use:   "quickstart",
		Short: "Start a server on the embedded database, report this host to it, print a summary, and keep serving",
		Long: `quickstart is the shortest way to a working patchbay: it starts the server on
the embedded database in the data dir, syncs the advisory feeds (or imports
--feeds DIR; offline it says so and goes on with the package manager's view),
enrolls an agent for this host, runs one check-in, prints a summary of the
fleet (hosts, findings by priority, top patches) and the URL, and keeps
serving until interrupted (or exits with --exit).`,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			log, err := newLogger(e.stderr, o.logLevel)
			if err != nil {
				return err
			}
			sctx, stop := context.WithCancel(ctx)
			defer stop()
			r, err := e.startServer(sctx, o, log)
			if err != nil {
				return err
			}
			fail := func(err error) error {
				stop()
				<-r.done
				return err
			}
			w := e.stdout
			fmt.Fprintf(w, "patchbay %s: server on %s (%s database in %s)\n", Version, r.url, r.db.Backend, e.dataDir)

			// Advisories: a directory, or a download; offline is not fatal.
			var refreshed server.RefreshResult
			if feedsDir != "" {
				r.srv.SetFeeds(server.FeedSource{Paths: []string{feedsDir}})
			} else {
				ecos, err := defaultEcosystems(ctx, r.db)
				if err != nil {
					return fail(err)
				}
				r.srv.SetFeeds(server.FeedSource{Sync: true, Mirror: o.feedsMirror, Ecosystems: ecos, KEV: true, EPSS: true, TempDir: filepath.Join(e.dataDir, "tmp")})
			}
			fmt.Fprintln(w, "feeds: refreshing …")
			refreshed, err = r.srv.RefreshFeeds(ctx, fleet.Fence{})
			switch {
			case err != nil && feedsDir != "":
				return fail(fmt.Errorf("--feeds %s: %w", feedsDir, err))
			case err != nil:
				why := err.Error()
				for _, o := range refreshed.Outcomes {
					if o.Err != "" {
						why += "; first: " + o.Source + ": " + o.Err
						break
					}
				}
				fmt.Fprintf(w, "feeds: offline or unreachable (%s); going on with what is imported and the package manager's view\n", why)
			default:
				fmt.Fprintf(w, "feeds: %d added, %d updated, %d removed, %d unchanged; KEV %d, EPSS %d\n",
					refreshed.Summary.Added, refreshed.Summary.Updated, refreshed.Summary.Removed, refreshed.Summary.Unchanged, refreshed.Summary.KEV, refreshed.Summary.EPSS)
			}

			// This host, through a real agent over the API.
			lbl, err := parseLabels("--label", labels)
			if err != nil {
				return fail(err)
			}
			stateDir := filepath.Join(e.dataDir, "agent")
			enroll := ""
			if c, _ := agent.LoadCredential(stateDir); c == nil {
				secret, id, hash, err := auth.NewSecret()
				if err != nil {
					return fail(err)
				}
				now := time.Now().UTC()
				t := auth.Token{ID: id, Kind: auth.KindEnrollment, Role: auth.Agent, Name: "quickstart: this host", Created: now, Expires: now.Add(time.Hour), UsesLeft: 1}
				if err := r.db.Tokens.Create(ctx, t, hash); err != nil {
					return fail(err)
				}
				if _, err := r.db.Audit.Append(ctx, actor(), "token.create", "token/"+id, t); err != nil {
					return fail(err)
				}
				enroll = secret
			}
			hc, err := api.NewHTTPClient("", r.fingerprint)
			if err != nil {
				return fail(err)
			}
			a := &agent.Agent{Client: &api.Client{Base: r.url, HTTP: hc, UserAgent: "patchbay-agent/" + Version}, EnrollToken: enroll, StateDir: stateDir, Log: log,
				Collector: agent.Collector{Root: root, Labels: lbl, CacheDir: filepath.Join(e.dataDir, "cache"), NoPackageManager: noPM, Version: Version}}
			resp, err := a.Once(ctx)
			if err != nil {
				return fail(fmt.Errorf("check-in of this host: %w", err))
			}
			if err := r.srv.FlushCheckins(ctx); err != nil {
				return fail(err)
			}
			fmt.Fprintf(w, "this host: enrolled as %s, inventory %s, %d open findings\n\n", resp.HostID, resp.Inventory, resp.Open)
			if err := e.fleetSummary(ctx, r); err != nil {
				return fail(err)
			}
			fmt.Fprintf(w, "\nAPI:   %s/api/v1 (OpenAPI: %s/api/v1/openapi.json)\n", r.url, r.url)
			if r.fingerprint != "" {
				fmt.Fprintf(w, "TLS:   self-signed; pin %s\n", r.fingerprint)
			}
			if r.adminToken != "" {
				fmt.Fprintf(w, "admin token (shown once): %s\n", r.adminToken)
				fmt.Fprintf(w, "try:   PATCHBAY_SERVER=%s PATCHBAY_PIN=%s PATCHBAY_TOKEN=<admin token> patchbay hosts list\n", r.url, r.fingerprint)
			}
			if exit {
				stop()
				return <-r.done
			}
			fmt.Fprintln(w, "serving; press Ctrl-C to stop")
			return <-r.done
		},
	}
	o.flags(cmd)
	cmd.Flags().Lookup("listen").DefValue = "127.0.0.1:8443"
	cmd.Flags().Set("listen", "127.0.0.1:8443")
	cmd.Flags().StringVar(&feedsDir, "feeds", "", "import advisories from this directory (upstream layout) instead of downloading them")
	cmd.Flags().BoolVar(&noPM, "no-package-manager", false, "do not ask this host's package manager for updates")
	cmd.Flags().BoolVar(&exit, "exit", false, "exit after the summary instead of serving")
	cmd.Flags().StringSliceVar(&labels, "label", nil, "label of this host, key=value (repeatable)")
	cmd.Flags().StringVar(&root, "root", "/", "filesystem root of the host to report (a chroot)")
	return cmd
}

// fleetSummary prints hosts, findings by priority and the top patches.
func (e *env) fleetSummary(ctx context.Context, r *running) error {
	w := e.stdout
	hosts, err := r.db.Fleet.Hosts(ctx, fleet.HostFilter{})
	if err != nil {
		return err
	}
	total := map[string]int{}
	for _, h := range hosts {
		for p, n := range h.Open {
			total[p] += n
		}
	}
	fmt.Fprintf(w, "fleet: %s; open findings P1 %d, P2 %d, P3 %d, P4 %d\n", table.Plural(len(hosts), "host"), total["P1"], total["P2"], total["P3"], total["P4"])
	type patch struct {
		eco, pkg, fixed string
		priority        risk.Priority
		vulns           int
		hosts           map[string]bool
	}
	patches := map[string]*patch{}
	f := fleet.FindingFilter{Status: fleet.StatusOpen, Limit: 1000, Sort: fleet.SortPriority}
	for {
		page, err := r.db.Findings.Query(ctx, f, nil)
		if err != nil {
			return err
		}
		for _, x := range page.Findings {
			if x.Fixed == "" {
				continue
			}
			k := x.Ecosystem + "\x00" + x.Package
			p := patches[k]
			if p == nil {
				p = &patch{eco: x.Ecosystem, pkg: x.Package, priority: x.Priority, hosts: map[string]bool{}}
				patches[k] = p
			}
			p.vulns++
			p.hosts[x.HostID] = true
			if x.Priority < p.priority {
				p.priority = x.Priority
			}
			p.fixed = scan.MaxVersion(x.Ecosystem, p.fixed, x.Fixed)
		}
		if page.Next == "" {
			break
		}
		f.After = page.Next
	}
	list := make([]*patch, 0, len(patches))
	for _, p := range patches {
		list = append(list, p)
	}
	sort.Slice(list, func(i, j int) bool {
		a, b := list[i], list[j]
		if a.priority != b.priority {
			return a.priority < b.priority
		}
		if a.vulns != b.vulns {
			return a.vulns > b.vulns
		}
		return a.pkg < b.pkg
	})
	if len(list) == 0 {
		fmt.Fprintln(w, "no patch fixes an open finding")
		return nil
	}
	fmt.Fprintln(w, "top patches:")
	tb := table.New(table.Column{Name: "PRIORITY"}, table.Column{Name: "PACKAGE"}, table.Column{Name: "ECOSYSTEM"}, table.Column{Name: "UPGRADE TO"},
		right("FIXES"), right("HOSTS"))
	tb.Indent = "  "
	for _, p := range list[:table.Limit(len(list), 10)] {
		tb.Row(p.priority.String(), p.pkg, p.eco, p.fixed, strconv.Itoa(p.vulns), strconv.Itoa(len(p.hosts)))
	}
	return tb.Write(w, 0)
}
