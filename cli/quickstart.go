package cli

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/patchbay/patchbay/agent"
	"github.com/patchbay/patchbay/api"
	"github.com/patchbay/patchbay/auth"
	"github.com/patchbay/patchbay/fleet"
	"github.com/patchbay/patchbay/internal/progress"
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
			// What can be checked before anything is made, is.
			if feedsDir != "" {
				if st, err := os.Stat(feedsDir); err != nil {
					return fmt.Errorf("--feeds: %w (nothing was created)", err)
				} else if !st.IsDir() {
					return fmt.Errorf("--feeds %s: not a directory (want the upstream layout: osv/<Ecosystem>/all.zip, kev/…; nothing was created)", feedsDir)
				}
			}
			if root != "" {
				if _, err := os.Stat(root); err != nil {
					return fmt.Errorf("--root: %w (nothing was created)", err)
				}
			}
			// Log lines and the progress line share stderr without mixing.
			prog := newProgress(e)
			log, err := newLogger(prog, o.logLevel)
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
			fmt.Fprintf(w, "patchbay quickstart: server on %s (%s database in %s; version %s)\n", r.url, r.db.Backend, e.dataDir, Version)

			// Advisories: a directory, or a download; offline is not fatal.
			var refreshed server.RefreshResult
			stageName, needs := "importing advisories from "+feedsDir, ""
			if feedsDir != "" {
				r.srv.SetFeeds(server.FeedSource{Paths: []string{feedsDir}})
			} else {
				ecos, err := defaultEcosystems(ctx, r.db)
				if err != nil {
					return fail(err)
				}
				r.srv.SetFeeds(server.FeedSource{Sync: true, Mirror: o.feedsMirror, Ecosystems: ecos, KEV: true, EPSS: true, TempDir: filepath.Join(e.dataDir, "tmp")})
				stageName, needs = "downloading advisories", "needs the network: OSV, CISA KEV, FIRST EPSS; offline, use --feeds DIR"
				if o.feedsMirror != "" {
					needs = "needs the network: the mirror " + o.feedsMirror
				}
			}
			// One refresh: the server's leader, starting alongside, does not
			// refresh again what this one just did.
			st := prog.Start(stageName, needs)
			refreshed, _, err = r.srv.RefreshFeedsIfStale(ctx, fleet.Fence{})
			switch {
			case err != nil && feedsDir != "":
				st.End("failed")
				return fail(fmt.Errorf("--feeds %s: %w", feedsDir, err))
			case err != nil:
				st.End("offline or unreachable")
				why := err.Error()
				for _, o := range refreshed.Outcomes {
					if o.Err != "" {
						why += "; first: " + o.Source + ": " + o.Err
						break
					}
				}
				fmt.Fprintf(w, "feeds: offline or unreachable (%s); going on with what is imported and the package manager's view\n", why)
			default:
				st.End("done")
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
			// The first check-in lists the updates as apt has them, without
			// waiting for their changelogs; the CVEs follow in a second one.
			st = prog.Start("checking in this host", "")
			resp, pending, err := a.FirstCheckin(ctx)
			if err != nil {
				st.End("failed")
				return fail(fmt.Errorf("check-in of this host: %w", err))
			}
			st.End("done")
			if err := r.srv.FlushCheckins(ctx); err != nil {
				return fail(err)
			}
			fmt.Fprintf(w, "this host: enrolled as %s, inventory %s, %d open findings\n\n", resp.HostID, resp.Inventory, resp.Open)
			if err := e.fleetSummary(ctx, r); err != nil {
				return fail(err)
			}
			pb := patchbayCommand(os.Args[0])
			if pending > 0 {
				fmt.Fprintf(w, "\nthis host's %d updates are listed without the CVEs their changelogs name yet: reading the changelogs now\n"+
					"(needs the network: the archive apt names, deb.debian.org on a stock Debian; offline the updates stay listed without them)\n", pending)
			}
			fmt.Fprintf(w, "\nAPI:   %s/api/v1 (OpenAPI: %s/api/v1/openapi.json)\n", r.url, r.url)
			users := pb + " users add NAME --role operator"
			if e.dataDirNamed {
				users = pb + " --data-dir " + e.dataDir + " users add NAME --role operator"
			}
			fmt.Fprintf(w, "UI:    %s/ (people log in as users: %s)\n", r.url, users)
			if r.fingerprint != "" {
				fmt.Fprintf(w, "TLS:   self-signed; pin %s\n", r.fingerprint)
			}
			token := r.adminToken
			if token != "" {
				fmt.Fprintf(w, "admin token (shown once): %s\n", token)
			} else {
				// A re-run: the first token was shown at the first start;
				// a developer gets a fresh one.
				if token, err = quickstartToken(ctx, r); err != nil {
					return fail(err)
				}
				fmt.Fprintf(w, "admin token (new at this start, shown once, valid %d days; earlier ones still work): %s\n", int(quickstartTokenTTL.Hours()/24), token)
			}
			fmt.Fprintln(w, "try, in another shell:")
			fmt.Fprintf(w, "  export PATCHBAY_SERVER=%s\n", r.url)
			if r.fingerprint != "" {
				fmt.Fprintf(w, "  export PATCHBAY_PIN=%s\n", r.fingerprint)
			}
			fmt.Fprintf(w, "  export PATCHBAY_TOKEN=%s\n", token)
			fmt.Fprintf(w, "  %s hosts list\n", pb)
			fmt.Fprintf(w, "  %s hosts show %s\n", pb, resp.HostID)

			if exit {
				// The changelogs' CVEs first, then stop.
				var err error
				if pending > 0 {
					err = e.enrichHost(sctx, r, a, prog, pb, resp.HostID)
				}
				stop()
				if derr := <-r.done; err == nil {
					err = derr
				}
				return err
			}
			fmt.Fprintln(w, "serving; press Ctrl-C to stop")
			enriched := make(chan struct{})
			go func() {
				defer close(enriched)
				if pending == 0 {
					return
				}
				if err := e.enrichHost(sctx, r, a, prog, pb, resp.HostID); err != nil && sctx.Err() == nil {
					log.Error("this host's changelogs", "err", err)
				}
			}()
			err = <-r.done
			stop()
			<-enriched
			return err
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

// quickstartTokenTTL is how long the admin token a quickstart re-run
// prints stays valid.
const quickstartTokenTTL = 7 * 24 * time.Hour

// quickstartToken makes a fresh admin API token for a quickstart re-run.
func quickstartToken(ctx context.Context, r *running) (string, error) {
	secret, id, hash, err := auth.NewSecret()
	if err != nil {
		return "", err
	}
	now := time.Now().UTC()
	t := auth.Token{ID: id, Kind: auth.KindAPI, Role: auth.Admin, Name: "quickstart " + now.Format("2006-01-02 15:04"), Created: now, Expires: now.Add(quickstartTokenTTL), UsesLeft: -1}
	if err := r.db.Tokens.Create(ctx, t, hash); err != nil {
		return "", fmt.Errorf("admin token: %w", err)
	}
	if _, err := r.db.Audit.Append(ctx, actor(), "token.create", "token/"+id, t); err != nil {
		return "", fmt.Errorf("admin token: %w", err)
	}
	return secret, nil
}

// enrichHost reads the changelogs of this host's updates and checks in
// again with their CVEs, then says what changed.
func (e *env) enrichHost(ctx context.Context, r *running, a *agent.Agent, prog *progress.Reporter, pb, hostID string) error {
	st := prog.Start("reading changelogs", "needs the Debian mirror deb.debian.org")
	a.Collector.Progress = st.Update
	resp, err := a.Once(ctx)
	a.Collector.Progress = nil
	if err != nil {
		st.End("failed")
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("check-in of this host with the changelogs' CVEs: %w", err)
	}
	if err := r.srv.FlushCheckins(ctx); err != nil {
		return err
	}
	v, err := e.hostUpdates(ctx, r, hostID)
	if err != nil {
		return err
	}
	outcome := fmt.Sprintf("%d of %d updates name CVEs in their changelogs", v.withCVEs, v.total)
	if n, why := a.Unread(); n > 0 {
		outcome += fmt.Sprintf("; %d changelogs could not be read, their updates are listed without CVEs (first: %s)", n, why)
	}
	st.End(outcome)
	fmt.Fprintf(e.stdout, "this host: updates checked in again with their CVEs; %d open findings (%s hosts show %s)\n", resp.Open, pb, hostID)
	return nil
}

type updatesView struct{ total, withCVEs int }

// hostUpdates counts the host's updates as the server has them.
func (e *env) hostUpdates(ctx context.Context, r *running, hostID string) (updatesView, error) {
	var v updatesView
	ups, err := r.db.Fleet.Updates(ctx, hostID)
	if err != nil {
		return v, fmt.Errorf("updates of %s: %w", hostID, err)
	}
	for _, u := range ups {
		v.total++
		if len(u.CVEs) > 0 {
			v.withCVEs++
		}
	}
	return v, nil
}

// patchbayCommand is how to run patchbay again as this process was run:
// `go run ./cmd/patchbay` when the binary is go run's (in the go-build
// cache), the bare name when PATH finds this very binary, else its path.
func patchbayCommand(arg0 string) string {
	if strings.Contains(filepath.ToSlash(arg0), "/go-build") {
		return "go run ./cmd/patchbay"
	}
	if !strings.Contains(arg0, "/") {
		return arg0
	}
	abs, err := filepath.Abs(arg0)
	if err != nil {
		return arg0
	}
	if p, err := exec.LookPath(filepath.Base(arg0)); err == nil {
		if pa, err := filepath.Abs(p); err == nil && pa == abs {
			return filepath.Base(arg0)
		}
	}
	return abs
}

// newProgress reports long work on stderr: redrawn on a terminal, one
// line per stage start and end otherwise.
func newProgress(e *env) *progress.Reporter {
	return progress.New(e.stderr, e.isTerminal(e.stderr))
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
