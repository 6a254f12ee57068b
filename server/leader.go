package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/patchbay/patchbay/audit"
	"github.com/patchbay/patchbay/feeds"
	"github.com/patchbay/patchbay/fleet"
	"github.com/patchbay/patchbay/leader"
	"github.com/patchbay/patchbay/match"
	"github.com/patchbay/patchbay/rollout"
)

// LeaseName is the lease of the work one replica runs for all.
const LeaseName = "scheduler"

// FeedSource says where the leader gets advisories: a directory in the
// upstream layout (imported), or a download (Sync) from upstream or a
// mirror. Empty: the leader does not refresh feeds.
type FeedSource struct {
	Paths      []string
	Sync       bool
	Mirror     string
	Ecosystems []string
	KEV, EPSS  bool
	// NVD, with Sync, fetches the NVD CVE records changed since the newest
	// stored one at every refresh (see feeds.SyncOptions).
	NVD       bool
	NVDURL    string
	NVDAPIKey string
	NVDDelay  time.Duration
	TempDir   string
}

func (f FeedSource) enabled() bool { return len(f.Paths) > 0 || f.Sync }

// Run runs the background work until ctx ends: check-in times are
// written every TouchEvery, and the leader election runs; the leader
// refreshes feeds with an incremental rematch every SyncInterval and
// exports a signed audit checkpoint every CheckpointEvery. On return the
// pending check-in times are written.
func (s *Server) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(s.cfg.TouchEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if err := s.touches.flush(ctx); err != nil && ctx.Err() == nil {
					s.log.Warn("record check-in times", "err", err)
				}
			}
		}
	}()
	if _, err := s.JobKey(ctx); err != nil {
		return fmt.Errorf("job-signing key: %w", err)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.runJobHub(ctx)
	}()
	el := &leader.Elector{Store: s.db.Leases, Name: LeaseName, ID: s.cfg.ReplicaID, TTL: s.cfg.LeaseTTL, Interval: s.cfg.ElectEvery, Now: s.cfg.Now}
	s.readyMu.Do(func() { close(s.ready) })
	err := el.Run(ctx, s.log, s.lead)
	wg.Wait()
	// Final flush on a fresh context: shutdown must not lose check-ins.
	fctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if ferr := s.touches.flush(fctx); ferr != nil {
		s.log.Error("record check-in times at shutdown", "err", ferr)
	}
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// FlushCheckins writes the pending check-in times now.
func (s *Server) FlushCheckins(ctx context.Context) error { return s.touches.flush(ctx) }

// lead is the leader's loop, cancelled when leadership is lost.
func (s *Server) lead(ctx context.Context, term int64) {
	s.log.Info("leading", "lease", LeaseName, "term", term, "replica", s.cfg.ReplicaID)
	s.term.Store(term)
	s.metrics.leader.Set(1)
	defer func() {
		s.term.CompareAndSwap(term, 0)
		s.metrics.leader.Set(0)
	}()
	fence := fleet.Fence{Lease: LeaseName, Term: term}
	syncT := time.NewTicker(s.cfg.SyncInterval)
	defer syncT.Stop()
	cpT := time.NewTicker(s.cfg.CheckpointEvery)
	defer cpT.Stop()
	reconcileT := time.NewTicker(s.cfg.ReconcileEvery)
	defer reconcileT.Stop()
	stepT := time.NewTicker(s.cfg.StepEvery)
	defer stepT.Stop()
	rfence := rollout.Fence{Lease: LeaseName, Term: term}
	snapT := time.NewTicker(time.Hour)
	defer snapT.Stop()
	backupT := time.NewTicker(backupCheckEvery(s.cfg.Backup.Every))
	defer backupT.Stop()
	var backups sync.WaitGroup // a backup ends before the leader does
	defer backups.Wait()
	fixC, fixStop := tickerOrNever(s.cfg.Fix.Every)
	defer fixStop()
	fixPollC, fixPollStop := tickerOrNever(s.cfg.Fix.PollEvery)
	defer fixPollStop()
	if s.feedSource().enabled() {
		// Not again when this process has just refreshed (quickstart does
		// before its first summary).
		if _, _, err := s.RefreshFeedsIfStale(ctx, fence); err != nil && ctx.Err() == nil {
			s.log.Warn("feed refresh", "err", err)
		}
	} else {
		// Exploitation data may have been imported by `feeds import`.
		s.reassessLogged(ctx)
	}
	s.reconcileLogged(ctx)
	s.checkpointLogged(ctx)
	s.scheduleLogged(ctx, rfence)
	s.stepLogged(ctx, rfence)
	s.snapshotLogged(ctx)
	var scores scoreState
	s.scoreIfMarked(ctx, &scores)
	for {
		select {
		case <-ctx.Done():
			s.log.Info("no longer leading", "term", term)
			return
		case <-syncT.C:
			if s.feedSource().enabled() {
				s.refreshLogged(ctx, fence)
			}
		case <-reconcileT.C:
			s.reconcileLogged(ctx)
		case <-cpT.C:
			s.checkpointLogged(ctx)
		case <-stepT.C:
			s.scheduleLogged(ctx, rfence)
			s.stepLogged(ctx, rfence)
			s.scoreIfMarked(ctx, &scores)
			if err := s.DeliverNotifications(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("notifications", "err", err)
			}
		case <-s.stepNow:
			s.stepLogged(ctx, rfence)
		case <-snapT.C:
			s.snapshotLogged(ctx)
		case <-backupT.C:
			// In its own goroutine: the steps go on while it runs
			// (RunBackup runs one at a time).
			backups.Go(func() { s.backupTick(ctx) })
		case <-fixC:
			if _, err := s.DeliverFixes(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("scheduled fixes", "err", err)
			}
		case <-fixPollC:
			if _, err := s.PollFixes(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("merge request states", "err", err)
			}
		}
	}
}

// tickerOrNever ticks every d, or never when d is not positive.
func tickerOrNever(d time.Duration) (<-chan time.Time, func()) {
	if d <= 0 {
		return nil, func() {}
	}
	t := time.NewTicker(d)
	return t.C, t.Stop
}

func (s *Server) stepLogged(ctx context.Context, fence rollout.Fence) {
	// StepRollouts logged each rollout's error with its ids.
	if err := s.StepRollouts(ctx, fence); err != nil && ctx.Err() == nil && !errors.As(err, new(rolloutErrors)) {
		s.log.Warn("rollout step", "err", err)
	}
}

func (s *Server) reconcileLogged(ctx context.Context) {
	rr, err := s.Reconcile(ctx)
	if err != nil && ctx.Err() == nil {
		s.log.Warn("policy reconcile", "err", err)
	}
	if rr.Changed > 0 {
		s.markScores(ctx, "findings")
	}
}

func (s *Server) reassessLogged(ctx context.Context) {
	if _, err := s.ReassessExploitation(ctx); err != nil && ctx.Err() == nil {
		s.log.Warn("exploitation reassessment", "err", err)
	}
}

func (s *Server) refreshLogged(ctx context.Context, fence fleet.Fence) {
	if _, err := s.RefreshFeeds(ctx, fence); err != nil && ctx.Err() == nil {
		s.log.Warn("feed refresh", "err", err)
	}
}

func (s *Server) checkpointLogged(ctx context.Context) {
	if _, err := s.Checkpoint(ctx); err != nil && ctx.Err() == nil {
		s.log.Warn("audit checkpoint", "err", err)
	}
}

// RefreshResult is what a feed refresh did.
type RefreshResult struct {
	Summary  feeds.Summary       `json:"summary"`
	Outcomes []feeds.SyncOutcome `json:"outcomes,omitempty"`
	Rematch  fleet.RematchResult `json:"rematch"`
	// Reprioritized says what new exploitation evidence changed, in
	// ReprioritizeSeconds.
	Reprioritized       fleet.ReprioritizeResult `json:"reprioritized"`
	ReprioritizeSeconds float64                  `json:"reprioritize_seconds"`
	// RematchSeconds is the time of the rematch alone; Took of it all.
	RematchSeconds float64       `json:"rematch_seconds"`
	Took           time.Duration `json:"took_ns"`
}

// RefreshFeeds imports or downloads the feeds and rematches, incrementally,
// the hosts with software the changed advisories name. Its writes are
// fenced by the lease term (zero: not fenced). The server itself is the
// actor of its audit entry (server:REPLICA).
func (s *Server) RefreshFeeds(ctx context.Context, fence fleet.Fence) (RefreshResult, error) {
	return s.refreshFeedsAs(ctx, fence, s.actor())
}

// refreshFeedsAs is RefreshFeeds on behalf of actor: the caller of
// POST /feeds/refresh is recorded as who refreshed.
func (s *Server) refreshFeedsAs(ctx context.Context, fence fleet.Fence, actor string) (RefreshResult, error) {
	s.refreshMu.Lock()
	defer s.refreshMu.Unlock()
	return s.refreshFeeds(ctx, fence, actor)
}

// actor names this server process in the audit log, for the work it
// does on its own (the leader's scheduled refreshes, rollout steps).
func (s *Server) actor() string { return "server:" + s.cfg.ReplicaID }

// RefreshFeedsIfStale refreshes the feeds unless this process refreshed
// them successfully less than SyncInterval ago; then it returns that
// refresh's result and false. Two callers at once refresh once.
func (s *Server) RefreshFeedsIfStale(ctx context.Context, fence fleet.Fence) (RefreshResult, bool, error) {
	s.refreshMu.Lock()
	defer s.refreshMu.Unlock()
	if !s.refreshed.IsZero() && time.Since(s.refreshed) < s.cfg.SyncInterval {
		return s.refreshResult, false, nil
	}
	r, err := s.refreshFeeds(ctx, fence, s.actor())
	return r, true, err
}

func (s *Server) refreshFeeds(ctx context.Context, fence fleet.Fence, actor string) (RefreshResult, error) {
	start := time.Now()
	var r RefreshResult
	im := &feeds.Importer{Store: s.db, Now: s.cfg.Now}
	var err error
	switch f := s.feedSource(); {
	case len(f.Paths) > 0:
		r.Summary, err = im.ImportPaths(ctx, f.Paths)
	case f.Sync:
		r.Outcomes, err = im.Sync(ctx, feeds.SyncOptions{Ecosystems: f.Ecosystems, KEV: f.KEV, EPSS: f.EPSS, Mirror: f.Mirror, TempDir: f.TempDir,
			NVD: f.NVD, NVDURL: f.NVDURL, NVDAPIKey: f.NVDAPIKey, NVDDelay: f.NVDDelay})
		for _, o := range r.Outcomes {
			r.Summary.Added += o.Summary.Added
			r.Summary.Updated += o.Summary.Updated
			r.Summary.Removed += o.Summary.Removed
			r.Summary.Unchanged += o.Summary.Unchanged
			r.Summary.KEV += o.Summary.KEV
			r.Summary.EPSS += o.Summary.EPSS
			r.Summary.CVERecords += o.Summary.CVERecords
			r.Summary.Changed = append(r.Summary.Changed, o.Summary.Changed...)
		}
	default:
		return r, nil
	}
	s.index.Invalidate()
	if err != nil && len(r.Summary.Changed) == 0 {
		return r, err
	}
	// A partial sync still rematches what it changed.
	rstart := time.Now()
	rr, rerr := s.Rematch(ctx, r.Summary.Changed, fence)
	r.Rematch, r.RematchSeconds = rr, time.Since(rstart).Seconds()
	if rerr != nil {
		return r, rerr
	}
	if rr.Opened+rr.Closed > 0 || r.Summary.KEV > 0 {
		s.markScores(ctx, "findings")
	}
	if r.Summary.KEV+r.Summary.EPSS > 0 {
		pstart := time.Now()
		if r.Reprioritized, rerr = s.ReassessExploitation(ctx); rerr != nil {
			return r, rerr
		}
		r.ReprioritizeSeconds = time.Since(pstart).Seconds()
	}
	r.Took = time.Since(start)
	if r.Summary.Added+r.Summary.Updated+r.Summary.Removed+r.Summary.KEV+r.Summary.EPSS+r.Summary.CVERecords+r.Summary.VendorRatings > 0 {
		if _, aerr := s.db.Audit.Append(ctx, actor, "feeds.refresh", "feeds",
			map[string]any{"added": r.Summary.Added, "updated": r.Summary.Updated, "removed": r.Summary.Removed, "kev": r.Summary.KEV, "epss": r.Summary.EPSS,
				"cve_records": r.Summary.CVERecords, "vendor_ratings": r.Summary.VendorRatings,
				"rematched_hosts": rr.Hosts, "opened": rr.Opened, "closed": rr.Closed}); aerr != nil {
			return r, aerr
		}
	}
	if err == nil {
		s.refreshed, s.refreshResult = time.Now(), r
	}
	s.log.Info("feeds refreshed", "added", r.Summary.Added, "updated", r.Summary.Updated, "removed", r.Summary.Removed,
		"changed_keys", len(r.Summary.Changed), "rematched_hosts", rr.Hosts, "opened", rr.Opened, "closed", rr.Closed, "took", r.Took)
	return r, err
}

// Rematch recomputes the findings of the packages keys name, on the hosts
// that have them.
func (s *Server) Rematch(ctx context.Context, keys []match.Key, fence fleet.Fence) (fleet.RematchResult, error) {
	start := time.Now()
	tr, err := s.triage(ctx)
	if err != nil {
		return fleet.RematchResult{}, err
	}
	r, err := s.matcher(tr).Rematch(ctx, keys, s.cfg.Now().UTC(), fence, "advisories changed")
	if err == nil && len(keys) > 0 {
		s.metrics.rematchSeconds.Observe(time.Since(start).Seconds())
	}
	return r, err
}

// Checkpoint signs the audit chain head and exports it outside the
// database: a file in CheckpointDir (the latest, and a line in a history
// file) and, when set, a POST to CheckpointURL.
func (s *Server) Checkpoint(ctx context.Context) (audit.Checkpoint, error) {
	var cp audit.Checkpoint
	if s.cfg.AuditKey == nil || (s.cfg.CheckpointDir == "" && s.cfg.CheckpointURL == "") {
		return cp, nil
	}
	es, err := s.db.Audit.Entries(ctx)
	if err != nil {
		return cp, err
	}
	if err := audit.Verify(es, nil); err != nil {
		return cp, fmt.Errorf("refusing to checkpoint a broken chain: %w", err)
	}
	cp = audit.NewCheckpoint(es, s.cfg.Now().UTC(), s.cfg.AuditKey)
	b, err := json.Marshal(cp)
	if err != nil {
		return cp, err
	}
	if d := s.cfg.CheckpointDir; d != "" {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return cp, err
		}
		tmp := filepath.Join(d, ".audit-checkpoint.json.tmp")
		if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
			return cp, err
		}
		if err := os.Rename(tmp, filepath.Join(d, "audit-checkpoint.json")); err != nil {
			return cp, err
		}
		f, err := os.OpenFile(filepath.Join(d, "audit-checkpoints.jsonl"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			return cp, err
		}
		_, werr := f.Write(append(b, '\n'))
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			return cp, werr
		}
	}
	if u := s.cfg.CheckpointURL; u != "" {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(b))
		if err != nil {
			return cp, err
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return cp, fmt.Errorf("checkpoint webhook: %w", err)
		}
		resp.Body.Close()
		if resp.StatusCode >= 300 {
			return cp, fmt.Errorf("checkpoint webhook %s: %s", u, resp.Status)
		}
	}
	s.metrics.checkpoints.Inc()
	return cp, nil
}

// SetFeeds changes where the feeds come from.
func (s *Server) SetFeeds(f FeedSource) {
	s.feedsMu.Lock()
	defer s.feedsMu.Unlock()
	s.cfg.Feeds = f
}

func (s *Server) feedSource() FeedSource {
	s.feedsMu.Lock()
	defer s.feedsMu.Unlock()
	return s.cfg.Feeds
}
