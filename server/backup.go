package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/patchbay/patchbay/api"
	"github.com/patchbay/patchbay/backup"
	"github.com/patchbay/patchbay/rollout"
)

// BackupSchedule is the leader's scheduled backups: an archive into Dir
// every Every, the newest Keep kept, each verified as it is written.
type BackupSchedule struct {
	Dir   string
	Every time.Duration
	Keep  int
	// Options are the archive's: data dir, keys, recipients (DB and Now
	// are the server's).
	Options backup.Options
}

// backups runs one backup at a time and keeps its metrics.
type backups struct {
	mu          sync.Mutex // held while a backup runs
	stateMu     sync.Mutex
	running     bool
	lastSuccess time.Time
	lastErr     string
	lastErrAt   time.Time
	success     prometheus.Gauge
	duration    prometheus.Gauge
	size        prometheus.Gauge
	failures    prometheus.Counter
}

func newBackups(reg *prometheus.Registry) *backups {
	b := &backups{
		success:  prometheus.NewGauge(prometheus.GaugeOpts{Name: "patchbay_backup_last_success_timestamp_seconds", Help: "When the last scheduled or requested backup was written and verified (Unix time)."}),
		duration: prometheus.NewGauge(prometheus.GaugeOpts{Name: "patchbay_backup_duration_seconds", Help: "Time the last successful backup took, verification included."}),
		size:     prometheus.NewGauge(prometheus.GaugeOpts{Name: "patchbay_backup_size_bytes", Help: "Size of the last successful backup archive."}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{Name: "patchbay_backup_failures_total", Help: "Backups that failed to be written or verified."}),
	}
	reg.MustRegister(b.success, b.duration, b.size, b.failures)
	return b
}

const backupPrefix, backupSuffix = "patchbay-", ".pbk"

// ErrBackupRunning is returned while another backup runs.
var ErrBackupRunning = errors.New("a backup is running")

// RunBackup writes an archive into the backup dir now, verifies it and
// prunes the oldest beyond the retention. A failure counts in the
// metrics, is audited and raises a webhook notification.
func (s *Server) RunBackup(ctx context.Context, actor string) (api.BackupArchive, error) {
	b := s.backups
	if s.cfg.Backup.Dir == "" {
		return api.BackupArchive{}, errors.New("no backup dir: start the server with --backup-dir")
	}
	if !b.mu.TryLock() {
		return api.BackupArchive{}, ErrBackupRunning
	}
	defer b.mu.Unlock()
	b.setRunning(true)
	defer b.setRunning(false)
	start := time.Now()
	now := s.cfg.Now().UTC()
	a, err := s.writeBackup(ctx, now)
	a.Duration = time.Since(start).Seconds()
	if err != nil {
		b.failures.Inc()
		b.stateMu.Lock()
		b.lastErr, b.lastErrAt = err.Error(), now
		b.stateMu.Unlock()
		s.log.Error("backup failed", "err", err)
		payload := map[string]any{"event": "backup.failed", "error": err.Error(), "at": now, "dir": s.cfg.Backup.Dir}
		ev := rollout.Event{Actor: actor, Action: "backup.fail", Object: "backup/" + a.Name, Change: map[string]any{"error": err.Error()},
			Notify: "backup.failed", Payload: payload, Targets: s.notifyTargets()}
		if rerr := s.db.Rollouts.Record(context.WithoutCancel(ctx), "backup", now, ev); rerr != nil {
			s.log.Error("backup failure notification", "err", rerr)
		}
		return a, err
	}
	b.stateMu.Lock()
	b.lastSuccess, b.lastErr = now, ""
	b.stateMu.Unlock()
	b.success.Set(float64(now.Unix()))
	b.duration.Set(a.Duration)
	b.size.Set(float64(a.Size))
	if _, err := s.db.Audit.Append(ctx, actor, "backup.create", "backup/"+a.Name, map[string]any{"size": a.Size, "sha256": a.SHA256, "audit_head": a.AuditHead}); err != nil {
		s.log.Warn("backup audit entry", "err", err)
	}
	s.pruneBackups()
	s.log.Info("backup written and verified", "archive", a.Name, "bytes", a.Size, "seconds", a.Duration)
	return a, nil
}

func (b *backups) setRunning(v bool) {
	b.stateMu.Lock()
	b.running = v
	b.stateMu.Unlock()
}

// writeBackup writes the archive through a temp file, verifying the
// unencrypted stream as it is written and the file's bytes once on disk,
// then renames it into place with its verification record beside it.
func (s *Server) writeBackup(ctx context.Context, now time.Time) (api.BackupArchive, error) {
	dir := s.cfg.Backup.Dir
	a := api.BackupArchive{Name: backupPrefix + now.Format("20060102T150405Z") + backupSuffix, Created: now}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return a, err
	}
	// Two backups in one second get distinct names.
	for n := 2; ; n++ {
		if _, err := os.Lstat(filepath.Join(dir, a.Name)); errors.Is(err, os.ErrNotExist) {
			break
		}
		a.Name = fmt.Sprintf("%s%s-%d%s", backupPrefix, now.Format("20060102T150405Z"), n, backupSuffix)
	}
	f, err := os.CreateTemp(dir, "."+a.Name+".tmp-")
	if err != nil {
		return a, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	pr, pw := io.Pipe()
	type checked struct {
		c   *backup.Checked
		err error
	}
	done := make(chan checked, 1)
	go func() {
		c, err := backup.VerifyStream(ctx, pr, filepath.Join(dir, ".verify"))
		io.Copy(io.Discard, pr) // let the writer finish whatever happened
		done <- checked{c, err}
	}()
	h := sha256.New()
	o := s.cfg.Backup.Options
	o.DB, o.Now, o.Tee = s.db, s.cfg.Now, pw
	m, err := backup.Create(ctx, io.MultiWriter(f, h), o)
	pw.CloseWithError(err)
	v := <-done
	if v.c != nil {
		defer v.c.Close()
		defer os.Remove(filepath.Join(dir, ".verify"))
	}
	if err != nil {
		return a, err
	}
	if v.err != nil {
		return a, fmt.Errorf("verify: %w", v.err)
	}
	if err := f.Sync(); err != nil {
		return a, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return a, err
	}
	back := sha256.New()
	n, err := io.Copy(back, f)
	if err != nil {
		return a, fmt.Errorf("verify: read back: %w", err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if hex.EncodeToString(back.Sum(nil)) != sum {
		return a, fmt.Errorf("verify: %s reads back differently from what was written", f.Name())
	}
	a.Size, a.SHA256, a.Backend, a.Schema, a.AuditHead, a.Encrypted, a.Keys = n, sum, m.Backend, m.Schema, m.AuditHead.Seq, m.Encrypted, m.KeysIncluded
	a.Verified, a.VerifiedAt = true, s.cfg.Now().UTC()
	rec, err := json.MarshalIndent(a, "", "  ")
	if err != nil {
		return a, err
	}
	if err := os.WriteFile(filepath.Join(dir, a.Name+".json"), rec, 0o600); err != nil {
		return a, err
	}
	if err := f.Close(); err != nil {
		return a, err
	}
	if err := os.Rename(f.Name(), filepath.Join(dir, a.Name)); err != nil {
		os.Remove(filepath.Join(dir, a.Name+".json"))
		return a, err
	}
	return a, nil
}

// archives lists the backup dir's archives, newest first, with their
// verification records.
func (s *Server) archives() ([]api.BackupArchive, error) {
	ents, err := os.ReadDir(s.cfg.Backup.Dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []api.BackupArchive
	for _, e := range ents {
		name := e.Name()
		if !e.Type().IsRegular() || !strings.HasPrefix(name, backupPrefix) || !strings.HasSuffix(name, backupSuffix) {
			continue
		}
		a := api.BackupArchive{Name: name}
		if b, err := os.ReadFile(filepath.Join(s.cfg.Backup.Dir, name+".json")); err == nil {
			if err := json.Unmarshal(b, &a); err != nil {
				a.Error = "verification record: " + err.Error()
			}
		} else {
			a.Error = "no verification record"
		}
		if st, err := e.Info(); err == nil {
			if a.Size != st.Size() && a.Verified {
				a.Verified, a.Error = false, fmt.Sprintf("the file is %d bytes, %d when verified", st.Size(), a.Size)
			}
			a.Size = st.Size()
			if a.Created.IsZero() {
				a.Created = st.ModTime().UTC()
			}
		}
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name > out[j].Name })
	return out, nil
}

// pruneBackups removes the archives beyond the newest Keep.
func (s *Server) pruneBackups() {
	keep := s.cfg.Backup.Keep
	if keep <= 0 {
		return
	}
	as, err := s.archives()
	if err != nil {
		s.log.Warn("backup retention", "err", err)
		return
	}
	for _, a := range as[min(keep, len(as)):] {
		for _, p := range []string{a.Name, a.Name + ".json"} {
			if err := os.Remove(filepath.Join(s.cfg.Backup.Dir, p)); err != nil && !errors.Is(err, os.ErrNotExist) {
				s.log.Warn("backup retention", "err", err)
			}
		}
	}
}

// backupDue says whether the newest archive is older than Every (or there
// is none): the schedule survives restarts and leader changes.
func (s *Server) backupDue(now time.Time) bool {
	as, err := s.archives()
	if err != nil || len(as) == 0 {
		return true
	}
	for _, a := range as {
		if a.Verified {
			return now.Sub(a.Created) >= s.cfg.Backup.Every
		}
	}
	return true
}

// BackupIfDue takes a scheduled backup when one is due (the leader
// looks every minute); it says whether it took one.
func (s *Server) BackupIfDue(ctx context.Context) (bool, error) {
	if s.cfg.Backup.Dir == "" || s.cfg.Backup.Every <= 0 || !s.backupDue(s.cfg.Now().UTC()) {
		return false, nil
	}
	_, err := s.RunBackup(ctx, s.actor())
	if errors.Is(err, ErrBackupRunning) {
		return false, nil
	}
	return err == nil, err
}

func (s *Server) backupTick(ctx context.Context) {
	if _, err := s.BackupIfDue(ctx); err != nil && ctx.Err() == nil {
		s.log.Warn("scheduled backup", "err", err)
	}
}

// backupStatus is the schedule, the last outcome and the archives.
func (s *Server) backupStatus() (api.BackupStatus, error) {
	b := s.backups
	b.stateMu.Lock()
	st := api.BackupStatus{Configured: s.cfg.Backup.Dir != "", Dir: s.cfg.Backup.Dir, Keep: s.cfg.Backup.Keep, Running: b.running,
		LastSuccess: b.lastSuccess, LastError: b.lastErr, LastErrorAt: b.lastErrAt, Archives: []api.BackupArchive{}}
	b.stateMu.Unlock()
	if e := s.cfg.Backup.Every; e > 0 {
		st.Every = strings.TrimSuffix(strings.TrimSuffix(e.String(), "0s"), "0m")
	}
	if !st.Configured {
		return st, nil
	}
	as, err := s.archives()
	if err != nil {
		st.DirError = err.Error()
	}
	st.Archives = append(st.Archives, as...)
	for _, a := range as {
		if a.Verified && a.VerifiedAt.After(st.LastSuccess) {
			st.LastSuccess = a.VerifiedAt
		}
	}
	return st, nil
}

func (s *Server) listBackups(w http.ResponseWriter, r *http.Request, _ *caller) error {
	st, err := s.backupStatus()
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, st)
}

func (s *Server) createBackup(w http.ResponseWriter, r *http.Request, c *caller) error {
	if s.cfg.Backup.Dir == "" {
		return errConflict(api.CodeConflict, "no backup dir: start the server with --backup-dir to take backups through the API (or run `patchbay backup create FILE`)")
	}
	a, err := s.RunBackup(r.Context(), c.actor())
	if errors.Is(err, ErrBackupRunning) {
		return errConflict(api.CodeConflict, err.Error())
	}
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, a)
}

// backupCheckEvery is how often the leader looks whether a backup is due:
// a minute, or Every when shorter.
func backupCheckEvery(every time.Duration) time.Duration {
	if every > 0 && every < time.Minute {
		return every
	}
	return time.Minute
}
