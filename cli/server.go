package cli

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/patchbay/patchbay/auth"
	"github.com/patchbay/patchbay/backup"
	"github.com/patchbay/patchbay/feeds/nvd"
	"github.com/patchbay/patchbay/kinds"
	"github.com/patchbay/patchbay/server"
	"github.com/patchbay/patchbay/store"
)

// serverOpts are the server's flags.
type serverOpts struct {
	listen          string
	tlsCert, tlsKey string
	tlsNames        []string
	plainHTTP       bool
	checkpointDir   string
	checkpointURL   string
	checkpointEvery time.Duration
	feedsDirs       []string
	feedsSync       bool
	feedsMirror     string
	nvdSync         bool
	nvdURL          string
	ecosystems      []string
	syncInterval    time.Duration
	checkin         time.Duration
	maxBody         int64
	largeBody       int64
	largeBodies     int
	bodyTimeout     time.Duration
	connsPerClient  int
	replicaID       string
	logLevel        string
	debugListen     string
	webhooks        []string
	teamWebhooks    bool
	stepInterval    time.Duration
	leaseTTL        time.Duration
	emergencyEvery  time.Duration
	fixEvery        time.Duration
	fixPollEvery    time.Duration
	notifyBackoff   time.Duration
	agentStale      time.Duration
	jobKey          string
	prometheusURL   string
	alertmanagerURL string
	alertWindow     time.Duration
	backupDir       string
	backupEvery     time.Duration
	backupKeep      int
	backupTo        []string
	ui              uiOpts
}

func (o *serverOpts) flags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&o.listen, "listen", ":8443", "address to listen on")
	f.StringVar(&o.tlsCert, "tls-cert", "", "TLS certificate (PEM); default a self-signed one made on first start in the data dir")
	f.StringVar(&o.tlsKey, "tls-key", "", "TLS private key (PEM) of --tls-cert")
	f.StringSliceVar(&o.tlsNames, "tls-name", nil, "extra DNS name or IP address for the self-signed certificate (repeatable)")
	f.BoolVar(&o.plainHTTP, "plain-http", false, "serve plain HTTP (behind a TLS-terminating proxy only)")
	f.StringVar(&o.checkpointDir, "checkpoint-dir", "", "where signed audit checkpoints are written (default DATA_DIR/checkpoints; better on another disk or host)")
	f.StringVar(&o.checkpointURL, "checkpoint-url", "", "webhook that receives each signed audit checkpoint (POST, JSON)")
	spanVar(f, &o.checkpointEvery, "checkpoint-every", 15*time.Minute, "how often the audit chain head is signed and exported (at most 15m)")
	f.StringSliceVar(&o.feedsDirs, "feeds-dir", nil, "import advisories from this directory or file (upstream layout) at every refresh (repeatable)")
	f.BoolVar(&o.feedsSync, "feeds-sync", false, "download advisories from upstream (or --feeds-mirror) at every refresh")
	f.StringVar(&o.feedsMirror, "feeds-mirror", "", "base URL of a feed mirror with the upstream layout (implies --feeds-sync)")
	f.BoolVar(&o.nvdSync, "nvd-sync", false, "with --feeds-sync: also fetch the NVD CVE records changed since the newest stored one at every refresh (NVD_API_KEY from the environment)")
	f.StringVar(&o.nvdURL, "nvd-url", "", "with --nvd-sync: the CVE API 2.0 endpoint (default "+nvd.Upstream+")")
	f.StringSliceVar(&o.ecosystems, "ecosystem", nil, "OSV ecosystems to sync (default: those already imported, else common ones)")
	spanVar(f, &o.syncInterval, "sync-interval", 6*time.Hour, "how often the leader refreshes the feeds")
	spanVar(f, &o.checkin, "checkin-interval", 5*time.Minute, "check-in interval asked of agents")
	f.Int64Var(&o.maxBody, "max-body", 64<<20, "largest request body accepted, in bytes, after decompression")
	f.Int64Var(&o.largeBody, "large-body", 1<<20, "a request body past this size (bytes, after decompression) needs one of --large-bodies slots; one per credential at a time")
	f.IntVar(&o.largeBodies, "large-bodies", 1, "large request bodies read at once: what bounds the memory of bodies (each costs about 2–4 × its size while decoded)")
	spanVar(f, &o.bodyTimeout, "body-timeout", time.Minute, "time a client has to send a request body")
	f.IntVar(&o.connsPerClient, "max-conns-per-client", 1024, "connections open at once from one client address (0: no limit; raise it for agents behind one NAT)")
	f.StringVar(&o.replicaID, "replica-id", "", "this process's name in the leader lease (default host:pid)")
	f.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	f.StringVar(&o.debugListen, "debug-listen", "", "serve Go's pprof profiles on this address (keep it on loopback)")
	f.StringSliceVar(&o.webhooks, "webhook", nil, "notify NAME=URL (generic JSON) or NAME=slack+URL (Slack-compatible) of plans awaiting approval, promotions, halts and completions, and of initiatives and scorecard level drops (repeatable)")
	f.BoolVar(&o.teamWebhooks, "team-webhooks", false, "also notify a team's own webhook (its Team document's spec.webhook, generic JSON) of its initiative reminders and scorecard level drops")
	spanVar(f, &o.stepInterval, "step-interval", time.Second, "how often the leader advances active rollouts")
	spanVar(f, &o.leaseTTL, "lease-ttl", 15*time.Second, "the leader lease's time to live: how long replicas wait for a leader that stopped answering")
	spanVar(f, &o.emergencyEvery, "emergency-every", time.Minute, "how often the leader looks for new emergency patches of the PatchSchedules with an emergency lane")
	spanVar(f, &o.fixEvery, "fix-every", 0, "how often the leader delivers the weekly fix of every Service with a repo (and the urgent one of a P1 patch); 0: only when asked")
	spanVar(f, &o.fixPollEvery, "fix-poll-every", 10*time.Minute, "how often the leader reads the forge's state (merged, closed) of proposed merge requests; 0: only when asked")
	spanVar(f, &o.agentStale, "agent-stale", 0, "a host not seen for this long has no active agent: rollouts report it as no_agent (default 3 check-in intervals, at least 15m)")
	f.StringVar(&o.jobKey, "job-key", "", "the job-signing key file (an Ed25519 seed, mode 0600; default DATA_DIR/job-signing.key, made on first start); every replica of one database needs the same file")
	spanVar(f, &o.notifyBackoff, "notify-backoff", 30*time.Second, "first webhook retry delay (doubled at each of up to 8 attempts)")
	f.StringVar(&o.prometheusURL, "prometheus-url", "", "Prometheus that rollout strategies' prometheus gates query (http://host:9090); without it those gates fail closed")
	f.StringVar(&o.alertmanagerURL, "alertmanager-url", "", "Alertmanager whose active alerts rollout strategies' alerts gates read (http://host:9093); without it those gates fail closed")
	spanVar(f, &o.alertWindow, "alert-window", server.DefaultAlertWindow, "an alert Alertmanager sends (POST /api/v1/alerts) that starts within this long after a job on its host is linked to the job")
	f.StringVar(&o.backupDir, "backup-dir", "", "the leader writes a verified backup archive here every --backup-every (docs/backup.md)")
	spanVar(f, &o.backupEvery, "backup-every", 24*time.Hour, "with --backup-dir: how often a backup is taken")
	f.IntVar(&o.backupKeep, "backup-keep", 14, "with --backup-dir: how many archives are kept (the oldest are removed)")
	f.StringSliceVar(&o.backupTo, "backup-recipient", nil, "with --backup-dir: encrypt archives to this age public key or file of them (repeatable); without one the keys are left out")
	o.ui.flags(f)
}

// running is a started server.
type running struct {
	srv         *server.Server
	db          *store.DB
	url         string
	fingerprint string
	adminToken  string // made on first start, shown once
	done        chan error
}

// startServer opens the database, makes the first admin token when there
// is none, and serves until ctx ends; done receives the outcome after a
// graceful shutdown.
func (e *env) startServer(ctx context.Context, o *serverOpts, log *slog.Logger) (*running, error) {
	if err := privateDataDir(e.dataDir, log); err != nil {
		return nil, err
	}
	db, err := e.openDB(ctx)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*running, error) {
		db.Close()
		return nil, err
	}
	// One server per SQLite file, before it touches a key or the data:
	// server.New checks again; this refuses before the keys are read.
	if err := db.LockForServer(); err != nil {
		return fail(err)
	}
	key, err := e.auditKey()
	if err != nil {
		return fail(err)
	}
	jobKeyPath := o.jobKey
	if jobKeyPath == "" {
		jobKeyPath = filepath.Join(e.dataDir, "job-signing.key")
	} else if err := privateFile(jobKeyPath, log); err != nil {
		return fail(err)
	}
	jobKey, migrated, err := server.LoadJobKey(ctx, db, jobKeyPath)
	if err != nil {
		return fail(err)
	}
	if migrated {
		log.Warn("job-signing key moved out of the database, where it was in clear, to its file", "file", jobKeyPath)
	}
	if o.replicaID == "" {
		h, _ := os.Hostname()
		o.replicaID = fmt.Sprintf("%s:%d", h, os.Getpid())
	}
	cpDir := o.checkpointDir
	if cpDir == "" {
		cpDir = filepath.Join(e.dataDir, "checkpoints")
	}
	if o.checkpointEvery > 15*time.Minute {
		return fail(fmt.Errorf("--checkpoint-every %s: at most 15m", o.checkpointEvery))
	}
	fs := server.FeedSource{Paths: o.feedsDirs, Sync: o.feedsSync || o.feedsMirror != "", Mirror: o.feedsMirror, Ecosystems: o.ecosystems,
		KEV: true, EPSS: true, TempDir: filepath.Join(e.dataDir, "tmp")}
	if o.nvdURL != "" && !o.nvdSync {
		return fail(errors.New("--nvd-url: only with --nvd-sync"))
	}
	if o.nvdSync {
		if !fs.Sync {
			return fail(errors.New("--nvd-sync: only with --feeds-sync or --feeds-mirror"))
		}
		fs.NVD, fs.NVDURL, fs.NVDAPIKey = true, o.nvdURL, os.Getenv("NVD_API_KEY")
		fs.NVDDelay = 6 * time.Second // NVD's pace without an API key
		if fs.NVDAPIKey != "" {
			fs.NVDDelay = 600 * time.Millisecond
		}
	}
	if fs.Sync && len(fs.Ecosystems) == 0 {
		ecos, err := defaultEcosystems(ctx, db)
		if err != nil {
			return fail(err)
		}
		fs.Ecosystems = ecos
	}
	var hooks []server.Webhook
	for _, w := range o.webhooks {
		h, err := server.ParseWebhook(w)
		if err != nil {
			return fail(fmt.Errorf("--webhook: %w", err))
		}
		hooks = append(hooks, h)
	}
	sched := server.BackupSchedule{Dir: o.backupDir, Every: o.backupEvery, Keep: o.backupKeep}
	if o.backupDir != "" {
		rs, err := recipientsOf(o.backupTo)
		if err != nil {
			return fail(fmt.Errorf("--backup-recipient: %w", err))
		}
		sched.Options = backup.Options{DataDir: e.dataDir, JobKey: o.jobKey, CheckpointDir: cpDir, Recipients: rs, TempDir: filepath.Join(e.dataDir, "tmp")}
		if store.IsPostgres(e.dsn) {
			sched.Options.DSN = e.dsn
		}
		if o.backupEvery <= 0 || o.backupKeep < 1 {
			return fail(errors.New("--backup-every must be positive and --backup-keep at least 1"))
		}
	} else if len(o.backupTo) > 0 {
		return fail(errors.New("--backup-recipient: only with --backup-dir"))
	}
	now := time.Now
	if c := testClock(log, "server"); c != nil {
		now = c
	}
	srv, err := server.New(server.Config{DB: db, Kinds: kinds.All(), Log: log, ReplicaID: o.replicaID, AuditKey: key, JobKey: jobKey,
		CheckpointDir: cpDir, CheckpointURL: o.checkpointURL, CheckpointEvery: o.checkpointEvery,
		Feeds: fs, SyncInterval: o.syncInterval, Checkin: o.checkin, MaxBody: o.maxBody, LargeBody: o.largeBody, LargeBodies: o.largeBodies, BodyTimeout: o.bodyTimeout,
		Webhooks: hooks, StepEvery: o.stepInterval, NotifyBackoff: o.notifyBackoff, AgentStale: o.agentStale, Now: now,
		PrometheusURL: o.prometheusURL, AlertmanagerURL: o.alertmanagerURL, AlertWindow: o.alertWindow, Backup: sched,
		LeaseTTL: o.leaseTTL, EmergencyEvery: o.emergencyEvery, TeamWebhooks: o.teamWebhooks,
		Fix: fixConfig(o.fixEvery, o.fixPollEvery)})
	if err != nil {
		return fail(err)
	}
	// A replica given another job key than the deployment's does not serve.
	if _, err := srv.JobKey(ctx); err != nil {
		return fail(fmt.Errorf("job-signing key %s: %w", jobKeyPath, err))
	}
	r := &running{srv: srv, db: db, done: make(chan error, 1)}
	if r.adminToken, err = e.bootstrapAdmin(ctx, db); err != nil {
		return fail(err)
	}
	handler, err := o.ui.handler(ctx, srv, db, log, now)
	if err != nil {
		return fail(err)
	}
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return fail(fmt.Errorf("--listen %s: %w", o.listen, err))
	}
	ln = server.LimitListener(ln, o.connsPerClient)
	hs := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 5 * time.Minute, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	hs.RegisterOnShutdown(srv.Drain)
	scheme := "https"
	if o.plainHTTP {
		scheme = "http"
	} else {
		var cert tls.Certificate
		if o.tlsCert != "" || o.tlsKey != "" {
			if o.tlsCert == "" || o.tlsKey == "" {
				ln.Close()
				return fail(errors.New("--tls-cert and --tls-key go together"))
			}
			cert, r.fingerprint, err = server.LoadCert(o.tlsCert, o.tlsKey)
		} else {
			cert, r.fingerprint, err = server.SelfSigned(e.dataDir, o.tlsNames)
		}
		if err != nil {
			ln.Close()
			return fail(err)
		}
		hs.TLSConfig = server.TLSConfig(cert)
		ln = tls.NewListener(ln, hs.TLSConfig)
	}
	r.url = scheme + "://" + urlHost(ln.Addr())
	if o.debugListen != "" {
		dmux := http.NewServeMux()
		dmux.HandleFunc("/debug/pprof/", pprof.Index)
		dmux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		dmux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		ds := &http.Server{Addr: o.debugListen, Handler: dmux, ReadHeaderTimeout: 10 * time.Second}
		go func() {
			<-ctx.Done()
			ds.Close()
		}()
		go func() {
			if err := ds.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Warn("debug listener", "err", err)
			}
		}()
	}
	bctx, cancelBG := context.WithCancel(context.WithoutCancel(ctx))
	bgDone := make(chan error, 1)
	go func() { bgDone <- srv.Run(bctx) }()
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	go func() {
		var err error
		select {
		case <-ctx.Done():
		case err = <-served:
		}
		// Drain: stop accepting, let requests in flight finish.
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if serr := hs.Shutdown(sctx); serr != nil && err == nil {
			err = fmt.Errorf("shutdown: %w", serr)
		}
		cancel()
		cancelBG()
		if berr := <-bgDone; berr != nil && err == nil {
			err = berr
		}
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		db.Close()
		log.Info("server stopped")
		r.done <- err
	}()
	log.Info("serving", "url", r.url, "backend", db.Backend, "replica", o.replicaID, "tls_fingerprint", r.fingerprint)
	return r, nil
}

// privateDataDir makes the data dir mode 0700 and what it holds directly
// private (files 0600, directories 0700) whatever the umask: the database,
// the audit, TLS and job-signing keys. Wider modes found are narrowed with
// a warning naming the file; a mode that cannot be narrowed stops the
// start.
func privateDataDir(dir string, log *slog.Logger) error {
	if log == nil {
		log = slog.Default()
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	if err := narrow(dir, 0o700, log); err != nil {
		return err
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	for _, de := range ents {
		p := filepath.Join(dir, de.Name())
		switch {
		case de.Type().IsRegular():
			err = narrow(p, 0o600, log)
		case de.IsDir():
			err = narrow(p, 0o700, log)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// privateFile narrows a key file given outside the data dir to 0600.
func privateFile(path string, log *slog.Logger) error {
	if log == nil {
		log = slog.Default()
	}
	if _, err := os.Lstat(path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return narrow(path, 0o600, log)
}

// narrow sets path's mode to want when group or others have any access.
func narrow(path string, want os.FileMode, log *slog.Logger) error {
	st, err := os.Lstat(path)
	if err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	old := st.Mode().Perm()
	if old&0o077 == 0 {
		return nil
	}
	if err := os.Chmod(path, want); err != nil {
		return fmt.Errorf("%s is mode %04o, readable by other users, and cannot be made %04o: %w", path, old, want, err)
	}
	log.Warn("narrowed the mode of a data dir file readable by other users", "file", path, "old_mode", fmt.Sprintf("%04o", old), "new_mode", fmt.Sprintf("%04o", want))
	return nil
}

func urlHost(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// bootstrapAdmin makes an admin token when no usable one exists, and
// returns its secret (shown once).
func (e *env) bootstrapAdmin(ctx context.Context, db *store.DB) (string, error) {
	toks, err := db.Tokens.List(ctx)
	if err != nil {
		return "", err
	}
	now := time.Now().UTC()
	for _, t := range toks {
		if t.Kind == auth.KindAPI && t.Role == auth.Admin && t.Check(now) == nil {
			return "", nil
		}
	}
	secret, id, hash, err := auth.NewSecret()
	if err != nil {
		return "", err
	}
	t := auth.Token{ID: id, Kind: auth.KindAPI, Role: auth.Admin, Name: "first admin (made on first start)", Created: now, UsesLeft: -1}
	if err := db.Tokens.Create(ctx, t, hash); err != nil {
		return "", err
	}
	if _, err := db.Audit.Append(ctx, "server", "token.create", "token/"+id, t); err != nil {
		return "", err
	}
	return secret, nil
}

func newLogger(w interface{ Write([]byte) (int, error) }, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}

func newServerCmd(e *env) *cobra.Command {
	o := &serverOpts{}
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Serve the API for agents, people and automation",
		Long: `server keeps the inventory and findings of every enrolled host and serves
the JSON API under /api/v1 (OpenAPI at /api/v1/openapi.json), /healthz,
/readyz and Prometheus /metrics.

The database is the embedded SQLite file in the data dir, or PostgreSQL with
--db postgres://…, where several server processes share one database; one of
them, holding a lease, refreshes feeds, rematches and exports audit
checkpoints.

On first start it prints a one-time admin token; TLS uses --tls-cert/--tls-key
or a self-signed certificate whose fingerprint agents pin with --pin.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			log, err := newLogger(e.stderr, o.logLevel)
			if err != nil {
				return err
			}
			r, err := e.startServer(cmd.Context(), o, log)
			if err != nil {
				return err
			}
			if r.adminToken != "" {
				fmt.Fprintf(e.stderr, "\nfirst start: admin token (shown once, only its hash is kept):\n\n    %s\n\n", r.adminToken)
			}
			if r.fingerprint != "" {
				fmt.Fprintf(e.stderr, "TLS certificate fingerprint (agents: --pin %s)\n", r.fingerprint)
			}
			fmt.Fprintf(e.stderr, "serving %s\n", r.url)
			return <-r.done
		},
	}
	o.flags(cmd)
	cmd.AddCommand(newFingerprintCmd(e))
	return cmd
}
