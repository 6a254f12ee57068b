package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/patchbay/patchbay/agent"
	"github.com/patchbay/patchbay/fleet"
	"github.com/patchbay/patchbay/internal/progress"
	"github.com/patchbay/patchbay/job"
	"github.com/patchbay/patchbay/pkgmgr"
)

// parseLabels parses k=v pairs.
func parseLabels(flag string, kvs []string) (map[string]string, error) {
	out := map[string]string{}
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, fmt.Errorf("%s %q: want key=value", flag, kv)
		}
		if err := fleet.ValidateLabel(k, v); err != nil {
			return nil, fmt.Errorf("%s: %w", flag, err)
		}
		out[k] = v
	}
	return out, nil
}

func newAgentCmd(e *env) *cobra.Command {
	var (
		srv                                        clientConfig
		enrollToken, root, stateDir, logLevel      string
		labels, paths                              []string
		interval                                   time.Duration
		once, noPM, refresh, noJobs, allowCommands bool
		jobWait                                    time.Duration
		rebootCmd                                  []string
	)
	cmd := &cobra.Command{
		Use:   "agent --server URL --enroll-token T",
		Short: "Report this host (or a chroot) to the server on an interval",
		Long: `agent enrolls the host with an enrollment token (once: the host credential it
gets is kept in the state dir, mode 0600), then checks in on a jittered
interval with the host's facts, its inventory (only a hash when unchanged)
and the updates the package manager offers. While the server is unreachable
it backs off with jitter and keeps its reports on disk; they are sent,
oldest first, when the server is back — after a restart too.

--root DIR reports a chroot instead of this machine: one machine can run
several agents, each with its own --root and state dir.

Beside the check-ins the agent long-polls the server for rollout jobs and
runs them: only jobs the server signed (its key comes with the enrollment)
for this host, each (job id, attempt) once — the journal in the state dir
remembers them across restarts. A job installs exact package versions
through the package manager (apt, dnf, apk), runs the strategy's health
checks (HTTP, TCP, systemd; commands only with --allow-check-commands),
rolls back to the previous versions when a post-check fails, and reboots
per the strategy's policy, only inside the maintenance window and only for
root /.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := srv.check(); err != nil {
				return err
			}
			prog := newProgress(e)
			log, err := newLogger(prog, logLevel)
			if err != nil {
				return err
			}
			lbl, err := parseLabels("--label", labels)
			if err != nil {
				return err
			}
			if stateDir == "" {
				stateDir = filepath.Join(root, "var/lib/patchbay/agent")
			}
			client, err := srv.client("patchbay-agent/" + Version)
			if err != nil {
				return err
			}
			a := &agent.Agent{
				Client:      client,
				EnrollToken: enrollToken, StateDir: stateDir, Interval: interval, Log: log,
				Collector: agent.Collector{Root: root, Paths: paths, Labels: lbl, CacheDir: filepath.Join(stateDir, "cache"),
					Refresh: refresh, NoPackageManager: noPM, Version: Version},
			}
			if once {
				// One report, with the CVEs of the changelogs: say so while
				// they download.
				var st *progress.Stage
				a.Collector.Progress = func(done, total int) {
					if st == nil {
						st = prog.Start("reading changelogs", "needs the Debian mirror deb.debian.org")
					}
					st.Update(done, total)
				}
				resp, err := a.Once(cmd.Context())
				if st != nil {
					st.End("done")
				}
				if err != nil {
					if n := a.Pending(); n > 0 {
						return fmt.Errorf("%w (%d report(s) kept in %s for the next run)", err, n, stateDir)
					}
					return err
				}
				fmt.Fprintf(e.stdout, "checked in as host %s: inventory %s, updates %s, %d open findings (%d opened, %d closed)\n",
					resp.HostID, resp.Inventory, resp.Updates, resp.Open, resp.Opened, resp.Closed)
				return nil
			}
			if noJobs {
				return a.Run(cmd.Context())
			}
			r := &pkgmgr.Runner{Root: root}
			drv, err := agent.DriverFor(r)
			if err != nil {
				return fmt.Errorf("%w (or run with --no-jobs)", err)
			}
			journal, err := job.OpenJournal(filepath.Join(stateDir, "jobs", "journal.json"))
			if err != nil {
				return err
			}
			x := &agent.Executor{Driver: drv, Runner: r, Reboot: &pkgmgr.Reboot{R: r}, Journal: journal, ResultDir: filepath.Join(stateDir, "jobs", "results"),
				AllowCommands: allowCommands, RebootCommand: rebootCmd, Log: log}
			if c := testClock(log, "agent"); c != nil {
				// Tests drive the server's and the agents' time with one file.
				x.Now, a.Now = c, c
			}
			ctx, cancel := context.WithCancel(cmd.Context())
			defer cancel()
			errc := make(chan error, 1)
			go func() { errc <- a.RunJobs(ctx, x, jobWait) }()
			err = a.Run(ctx)
			cancel()
			if jerr := <-errc; err == nil {
				err = jerr
			}
			return err
		},
	}
	f := cmd.Flags()
	srv.bind(f, clientFlags{trust: true})
	f.StringVar(&enrollToken, "enroll-token", os.Getenv("PATCHBAY_ENROLL_TOKEN"), "enrollment token, used once (env PATCHBAY_ENROLL_TOKEN)")
	f.StringVar(&root, "root", "/", "filesystem root of the host to report (a chroot)")
	f.StringVar(&stateDir, "state-dir", "", "where the credential and pending reports are kept (default ROOT/var/lib/patchbay/agent)")
	f.StringSliceVar(&labels, "label", nil, "label of this host, key=value (repeatable)")
	f.StringSliceVar(&paths, "path", nil, "application dependency file or directory to report too (repeatable)")
	spanVar(f, &interval, "interval", 5*time.Minute, "check-in interval (jittered; the server may ask for another)")
	f.BoolVar(&once, "once", false, "check in once and exit")
	f.BoolVar(&noPM, "no-package-manager", false, "do not ask the package manager for updates")
	f.BoolVar(&refresh, "refresh", false, "update the package manager's index first (apt-get update)")
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	f.BoolVar(&noJobs, "no-jobs", false, "do not poll for or run rollout jobs (inventory only)")
	spanVar(f, &jobWait, "job-wait", 30*time.Second, "long-poll wait for jobs (at most 60s)")
	f.BoolVar(&allowCommands, "allow-check-commands", false, "let health checks of rollout strategies run commands on this host")
	f.StringSliceVar(&rebootCmd, "reboot-command", []string{"systemctl", "reboot"}, "command that reboots the host when the reboot policy asks (root / only)")
	return cmd
}
