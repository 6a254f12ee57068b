package server

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/patchbay/patchbay/api"
	"github.com/patchbay/patchbay/job"
	"github.com/patchbay/patchbay/rollout"
	"github.com/patchbay/patchbay/store"
)

// The jobs of rollouts as agents see them: the job-signing key, the long
// polls that hand out signed jobs, and the reports of their results.

// jobKeyName names the job-signing key's row in the database.
const jobKeyName = "jobs-ed25519"

// jobKeyRef is what the database keeps of the job-signing key: the key id
// of its public key, never the private key, which lives in a 0600 file
// (LoadJobKey). Every replica checks that it signs with the key the row
// names, so replicas given different files refuse to start rather than
// sign jobs some agents refuse.
const jobKeyRef = "ed25519-file:"

func jobKeyRefOf(key ed25519.PrivateKey) string {
	return jobKeyRef + job.KeyID(key.Public().(ed25519.PublicKey))
}

// clearSeed decodes a row written before the key moved to a file: the
// base64 Ed25519 seed in clear.
func clearSeed(v string) ([]byte, bool) {
	if strings.HasPrefix(v, jobKeyRef) {
		return nil, false
	}
	seed, err := base64.StdEncoding.DecodeString(v)
	return seed, err == nil && len(seed) == ed25519.SeedSize
}

// LoadJobKey loads the job-signing key (an Ed25519 seed, 32 bytes) from
// path, the file every replica is given. When the file does not exist it
// is made (mode 0600): from the clear seed an earlier version kept in
// the database, which is then replaced by the key's id (migrated is
// true), or a new key when the database names none. It refuses when the
// database names a key kept elsewhere: the replica that made it has the
// file to copy.
func LoadJobKey(ctx context.Context, db *store.DB, path string) (key ed25519.PrivateKey, migrated bool, err error) {
	b, err := os.ReadFile(path)
	if err == nil {
		if len(b) != ed25519.SeedSize {
			return nil, false, fmt.Errorf("job key %s: want a %d-byte Ed25519 seed, found %d bytes", path, ed25519.SeedSize, len(b))
		}
		return ed25519.NewKeyFromSeed(b), false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, fmt.Errorf("job key: %w", err)
	}
	v, ok, err := db.Rollouts.StoredKey(ctx, jobKeyName)
	if err != nil {
		return nil, false, err
	}
	seed, clear := clearSeed(v)
	switch {
	case ok && !clear:
		return nil, false, fmt.Errorf("job key %s: no such file, and the database names the key jobs are signed with (%s) kept in another replica's file: copy that file here (mode 0600) or pass --job-key", path, strings.TrimPrefix(v, jobKeyRef))
	case !ok:
		seed = make([]byte, ed25519.SeedSize)
		if _, err := rand.Read(seed); err != nil {
			return nil, false, err
		}
	}
	if err := writeKeyFile(path, seed); err != nil {
		return nil, false, fmt.Errorf("job key: %w", err)
	}
	key = ed25519.NewKeyFromSeed(seed)
	if !clear {
		return key, false, nil
	}
	// The clear copy is replaced only once the file is on disk.
	if _, err := db.Rollouts.SwapKey(ctx, jobKeyName, v, jobKeyRefOf(key)); err != nil {
		return nil, false, err
	}
	return key, true, nil
}

// writeKeyFile writes a new key file, mode 0600, synced before it counts.
func writeKeyFile(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	return f.Close()
}

// JobKey returns the server's job-signing key (Config.JobKey) once the
// database agrees that it is the deployment's: the first replica records
// the key's id, the others must sign with the same key. A clear seed an
// earlier version left in the database is replaced by the id when it is
// this key's, and refused when it is another.
func (s *Server) JobKey(ctx context.Context) (ed25519.PrivateKey, error) {
	s.jobKeyMu.Lock()
	defer s.jobKeyMu.Unlock()
	if s.jobKey != nil {
		return s.jobKey, nil
	}
	key := s.cfg.JobKey
	ref := jobKeyRefOf(key)
	v, err := s.db.Rollouts.Key(ctx, jobKeyName, func() (string, error) { return ref, nil }, s.cfg.Now())
	if err != nil {
		return nil, err
	}
	if seed, clear := clearSeed(v); clear {
		if !bytes.Equal(seed, key.Seed()) {
			return nil, fmt.Errorf("the database holds another job-signing key (in clear, from an earlier version): start once with the data dir it was made in, or pass its key as --job-key, to move it out of the database")
		}
		if _, err := s.db.Rollouts.SwapKey(ctx, jobKeyName, v, ref); err != nil {
			return nil, err
		}
		v = ref
	}
	if v != ref {
		return nil, fmt.Errorf("this replica's job-signing key (%s) is not the one the deployment signs with (%s): give every replica the same --job-key file", strings.TrimPrefix(ref, jobKeyRef), strings.TrimPrefix(v, jobKeyRef))
	}
	s.jobKey = key
	return key, nil
}

// jobHub wakes the agents' long polls when jobs are dispatched: it reads
// the dispatches after the last it saw, at every poke (this process's
// scheduler) and at least every PollEvery (another replica's).
type jobHub struct {
	mu      sync.Mutex
	waiters map[string][]chan struct{}
	kick    chan struct{}
}

func newJobHub() *jobHub {
	return &jobHub{waiters: map[string][]chan struct{}{}, kick: make(chan struct{}, 1)}
}

func (h *jobHub) poke() {
	select {
	case h.kick <- struct{}{}:
	default:
	}
}

func (h *jobHub) wait(host string) (chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	h.mu.Lock()
	h.waiters[host] = append(h.waiters[host], ch)
	h.mu.Unlock()
	return ch, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		ws := h.waiters[host]
		if i := slices.Index(ws, ch); i >= 0 {
			ws = slices.Delete(ws, i, i+1)
		}
		if len(ws) == 0 {
			delete(h.waiters, host)
		} else {
			h.waiters[host] = ws
		}
	}
}

func (h *jobHub) wake(hosts []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, host := range hosts {
		for _, ch := range h.waiters[host] {
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}
}

// runJobHub follows the dispatches until ctx ends.
func (s *Server) runJobHub(ctx context.Context) {
	last, err := s.db.Rollouts.LastDispatch(ctx)
	if err != nil && ctx.Err() == nil {
		s.log.Warn("job hub", "err", err)
	}
	t := time.NewTicker(s.cfg.PollEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.jobs.kick:
		}
		hosts, seq, err := s.db.Rollouts.DispatchedSince(ctx, last)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Warn("job hub", "err", err)
			}
			continue
		}
		last = seq
		s.jobs.wake(hosts)
	}
}

// agentJobs answers an agent's poll: its pending signed jobs, waiting up
// to ?wait= seconds (at most 60) for one to be dispatched.
func (s *Server) agentJobs(w http.ResponseWriter, r *http.Request, c *caller) error {
	ctx := r.Context()
	host := c.tok.Subject
	wait := 0
	if v := r.URL.Query().Get("wait"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 60 {
			return errBadRequest("wait: want seconds from 0 to 60", "query.wait")
		}
		wait = n
	}
	s.touches.add(host, s.cfg.Now().UTC())
	ch, done := s.jobs.wait(host)
	defer done()
	timer := time.NewTimer(time.Duration(wait) * time.Second)
	defer timer.Stop()
	for {
		pending, err := s.db.Rollouts.Pending(ctx, host)
		if err != nil {
			return err
		}
		if len(pending) > 0 || wait == 0 {
			resp := api.JobsResponse{Jobs: []job.Signed{}}
			for _, p := range pending {
				var sj job.Signed
				if err := json.Unmarshal([]byte(p.Job), &sj); err != nil {
					return fmt.Errorf("stored job of %s in %s: %w", host, p.Plan, err)
				}
				resp.Jobs = append(resp.Jobs, sj)
			}
			return writeJSON(w, http.StatusOK, resp)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
			wait = 0
		case <-s.draining:
			wait = 0
		case <-ch:
		}
	}
}

// jobResult records an agent's report of a job: once, for the host's
// current attempt; a refusal settles the job as failed.
func (s *Server) jobResult(w http.ResponseWriter, r *http.Request, c *caller) error {
	var res job.Result
	if err := decode(r, &res, false); err != nil {
		return err
	}
	host := c.tok.Subject
	planID, jobHost, ok := cutJobID(res.JobID)
	if !ok || jobHost != host {
		return errBadRequest(fmt.Sprintf("job_id %q: not a job of this host (%s)", res.JobID, host), "job_id")
	}
	switch res.Outcome {
	case job.Succeeded, job.SucceededReboot, job.NoChange, job.Skipped, job.Failed, job.RolledBack:
	default:
		return errBadRequest(fmt.Sprintf("outcome %q: an agent reports succeeded, succeeded_reboot_required, no_change_needed, skipped, failed or rolled_back", res.Outcome), "outcome")
	}
	if res.Refused && res.Outcome != job.Failed {
		return errBadRequest("a refused job is reported as failed", "outcome")
	}
	ctx := r.Context()
	b, err := json.Marshal(res)
	if err != nil {
		return err
	}
	now := s.cfg.Now().UTC()
	action := "job.report"
	if res.Refused {
		action = "job.refused"
		s.log.Warn("an agent refused a job", "job_id", res.JobID, "plan_id", planID, "rollout_id", planID, "host", host, "reason", res.Reason)
	}
	ev := rollout.Event{Actor: c.actor(), Action: action, Object: "job/" + res.JobID,
		Change: map[string]any{"attempt": res.Attempt, "outcome": res.Outcome, "reason": res.Reason, "changes": res.Changes}}
	err = s.db.Rollouts.Report(ctx, planID, host, res.Attempt, res.Outcome, b, now, ev)
	if errors.Is(err, rollout.ErrStale) {
		return errConflict(api.CodeStale, err.Error())
	}
	if err != nil {
		return err
	}
	s.metrics.jobResults.WithLabelValues(string(res.Outcome)).Inc()
	s.markScores(r.Context(), "rollout result")
	s.wakeScheduler()
	return writeJSON(w, http.StatusOK, map[string]string{"status": "recorded"})
}

// cutJobID splits "plan/host".
func cutJobID(id string) (plan, host string, ok bool) {
	i := strings.LastIndexByte(id, '/')
	return id[:max(i, 0)], id[i+1:], i > 0 && i < len(id)-1
}
