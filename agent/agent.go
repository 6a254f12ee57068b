// Package agent is patchbay's agent: it enrolls a host with the server,
// then checks in on a jittered interval with the host's facts, its
// inventory (as a hash when unchanged) and the package manager's updates.
// Reports wait on disk while the server is unreachable and are sent,
// oldest first, when it is back: nothing is lost.
package agent

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/patchbay/patchbay/api"
	"github.com/patchbay/patchbay/fleet"
	"github.com/patchbay/patchbay/inventory"
	"github.com/patchbay/patchbay/patch"
)

// Agent is one host's agent.
type Agent struct {
	Client      *api.Client // Base and HTTP set; Token is managed here
	EnrollToken string
	StateDir    string
	Collector   Collector
	Interval    time.Duration
	// MaxSpool bounds the reports kept on disk; the oldest go first.
	MaxSpool int
	Log      *slog.Logger
	Now      func() time.Time
	// Sleep waits; tests replace it.
	Sleep func(ctx context.Context, d time.Duration) error

	unread      int
	firstUnread string
}

// Unread says how many updates of the last collection lack their CVEs
// because their changelog could not be read, and why the first could not.
func (a *Agent) Unread() (int, string) { return a.unread, a.firstUnread }

// Credential is what enrollment leaves in the state dir (mode 0600).
type Credential struct {
	Server     string    `json:"server"`
	HostID     string    `json:"host_id"`
	Secret     string    `json:"credential"`
	MachineID  string    `json:"machine_id"`
	EnrolledAt time.Time `json:"enrolled_at"`
	CloneOf    string    `json:"clone_of,omitempty"`
	// JobKey is the server's job-signing public key (base64).
	JobKey string `json:"job_key,omitempty"`
}

// acked is what the server last acknowledged.
type acked struct {
	InventoryHash string `json:"inventory_hash"`
	UpdatesHash   string `json:"updates_hash"`
}

// ErrEnrollRefused is returned when the server refuses the enrollment
// token: retrying will not help.
var ErrEnrollRefused = errors.New("enrollment refused")

func (a *Agent) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

func (a *Agent) log() *slog.Logger {
	if a.Log != nil {
		return a.Log
	}
	return slog.New(slog.DiscardHandler)
}

func (a *Agent) sleep(ctx context.Context, d time.Duration) error {
	if a.Sleep != nil {
		return a.Sleep(ctx, d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func (a *Agent) credPath() string  { return filepath.Join(a.StateDir, "credential.json") }
func (a *Agent) ackedPath() string { return filepath.Join(a.StateDir, "acked.json") }
func (a *Agent) spoolDir() string  { return filepath.Join(a.StateDir, "spool") }

// writeFileAtomic writes via a temporary file and a rename.
func writeFileAtomic(path string, b []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// LoadCredential reads the state dir's credential; nil when there is none.
func LoadCredential(stateDir string) (*Credential, error) {
	b, err := os.ReadFile(filepath.Join(stateDir, "credential.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("credential: %w", err)
	}
	var c Credential
	if err := json.Unmarshal(b, &c); err != nil || c.Secret == "" || c.HostID == "" {
		return nil, fmt.Errorf("credential %s: unreadable (remove it to enroll again): %v", filepath.Join(stateDir, "credential.json"), err)
	}
	return &c, nil
}

// Enroll exchanges the enrollment token for a host credential, unless the
// state dir already has one.
func (a *Agent) Enroll(ctx context.Context) (*Credential, error) {
	if c, err := LoadCredential(a.StateDir); err != nil || c != nil {
		return c, err
	}
	if a.EnrollToken == "" {
		return nil, fmt.Errorf("not enrolled (no credential in %s): pass --enroll-token", a.StateDir)
	}
	// Facts only: the package manager's view comes with the first report.
	col := a.Collector
	col.NoPackageManager, col.Paths = true, nil
	snap, err := col.Collect(ctx)
	if err != nil {
		return nil, err
	}
	cl := *a.Client
	cl.Token = a.EnrollToken
	var resp api.EnrollResponse
	err = cl.Do(ctx, http.MethodPost, api.Prefix+"/agent/enroll", api.EnrollRequest{Facts: snap.Facts}, &resp)
	if api.IsStatus(err, http.StatusUnauthorized) || api.IsStatus(err, http.StatusForbidden) || api.IsStatus(err, http.StatusBadRequest) {
		return nil, fmt.Errorf("%w: %v", ErrEnrollRefused, err)
	}
	if err != nil {
		return nil, fmt.Errorf("enroll: %w", err)
	}
	c := &Credential{Server: a.Client.Base, HostID: resp.HostID, Secret: resp.Credential, MachineID: snap.Facts.MachineID,
		EnrolledAt: a.now().UTC(), CloneOf: resp.CloneOf, JobKey: resp.JobKey}
	b, _ := json.MarshalIndent(c, "", "  ")
	if err := writeFileAtomic(a.credPath(), b, 0o600); err != nil {
		return nil, fmt.Errorf("keep credential: %w", err)
	}
	if c.CloneOf != "" {
		a.log().Warn("enrolled, but the server flagged this host as a clone: another host has the same machine-id", "host", c.HostID, "clone_of", c.CloneOf)
	}
	a.log().Info("enrolled", "host", c.HostID, "server", a.Client.Base)
	return c, nil
}

// spooled is a report kept on disk, always in full.
type spooled struct {
	Report    api.Report          `json:"report"`
	Inventory []inventory.Package `json:"inventory"`
	Updates   []patch.Update      `json:"updates"`
}

// Observe collects a report and keeps it in the spool. When the newest
// kept report has the same inventory and updates, its facts are replaced
// instead: the spool holds one report per change.
func (a *Agent) Observe(ctx context.Context) error {
	_, err := a.observe(ctx, a.Collector)
	return err
}

// observe is Observe with col, returning the updates whose changelogs
// are still to be read.
func (a *Agent) observe(ctx context.Context, col Collector) (int, error) {
	snap, err := col.Collect(ctx)
	if err != nil {
		return 0, err
	}
	a.unread, a.firstUnread = snap.UnreadChangelogs, snap.FirstUnread
	sp := spooled{
		Report: api.Report{CollectedAt: a.now().UTC(), Facts: snap.Facts,
			InventoryHash: fleet.InventoryHash(snap.Inventory), UpdatesHash: fleet.UpdatesHash(snap.Updates)},
		Inventory: snap.Inventory, Updates: snap.Updates,
	}
	files, err := a.spooled()
	if err != nil {
		return 0, err
	}
	name := filepath.Join(a.spoolDir(), fmt.Sprintf("%020d.json.gz", sp.Report.CollectedAt.UnixNano()))
	if n := len(files); n > 0 {
		last, err := readSpooled(files[n-1])
		if err == nil && last.Report.InventoryHash == sp.Report.InventoryHash && last.Report.UpdatesHash == sp.Report.UpdatesHash {
			name = files[n-1]
		}
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if err := json.NewEncoder(zw).Encode(sp); err != nil {
		return 0, err
	}
	if err := zw.Close(); err != nil {
		return 0, err
	}
	if err := writeFileAtomic(name, buf.Bytes(), 0o600); err != nil {
		return 0, fmt.Errorf("spool report: %w", err)
	}
	max := a.MaxSpool
	if max <= 0 {
		max = 1000
	}
	files, err = a.spooled()
	if err != nil {
		return 0, err
	}
	for len(files) > max {
		a.log().Warn("spool full: dropping the oldest report", "file", files[0], "max", max)
		os.Remove(files[0])
		files = files[1:]
	}
	return snap.PendingChangelogs, nil
}

func (a *Agent) spooled() ([]string, error) {
	ents, err := os.ReadDir(a.spoolDir())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".json.gz") && !strings.HasPrefix(e.Name(), ".") {
			out = append(out, filepath.Join(a.spoolDir(), e.Name()))
		}
	}
	sort.Strings(out)
	return out, nil
}

// Pending counts the reports waiting on disk.
func (a *Agent) Pending() int {
	fs, _ := a.spooled()
	return len(fs)
}

func readSpooled(path string) (spooled, error) {
	var sp spooled
	f, err := os.Open(path)
	if err != nil {
		return sp, err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return sp, fmt.Errorf("%s: %w", path, err)
	}
	if err := json.NewDecoder(zr).Decode(&sp); err != nil {
		return sp, fmt.Errorf("%s: %w", path, err)
	}
	return sp, nil
}

func (a *Agent) loadAcked() acked {
	var ac acked
	if b, err := os.ReadFile(a.ackedPath()); err == nil {
		json.Unmarshal(b, &ac)
	}
	return ac
}

// Flush sends the spooled reports, oldest first, deleting each once the
// server has it. It stops at the first failure; the rest stay on disk.
func (a *Agent) Flush(ctx context.Context, cred *Credential) (api.CheckinResponse, error) {
	var last api.CheckinResponse
	files, err := a.spooled()
	if err != nil {
		return last, err
	}
	cl := *a.Client
	cl.Token = cred.Secret
	if cl.GzipAbove == 0 {
		cl.GzipAbove = 4 << 10
	}
	ac := a.loadAcked()
	for _, path := range files {
		sp, err := readSpooled(path)
		if err != nil {
			a.log().Error("unreadable spooled report: set aside", "file", path, "err", err)
			os.Rename(path, path+".bad")
			continue
		}
		rep := sp.Report
		if rep.InventoryHash != ac.InventoryHash {
			rep.Inventory = &sp.Inventory
		}
		if rep.UpdatesHash != ac.UpdatesHash {
			rep.Updates = &sp.Updates
		}
		err = cl.Do(ctx, http.MethodPost, api.Prefix+"/agent/checkin", rep, &last)
		if code := api.CodeOf(err); code == api.CodeInventoryRequired || code == api.CodeUpdatesRequired {
			// The server lost what we thought it had: send everything.
			rep.Inventory, rep.Updates = &sp.Inventory, &sp.Updates
			err = cl.Do(ctx, http.MethodPost, api.Prefix+"/agent/checkin", rep, &last)
		}
		if api.IsStatus(err, http.StatusBadRequest) || api.IsStatus(err, http.StatusRequestEntityTooLarge) {
			// The server will never take this report; keep it aside for
			// inspection instead of blocking the ones after it.
			a.log().Error("the server rejected a report: set aside", "file", path, "err", err)
			os.Rename(path, path+".rejected")
			continue
		}
		if err != nil {
			return last, err
		}
		ac = acked{InventoryHash: rep.InventoryHash, UpdatesHash: rep.UpdatesHash}
		b, _ := json.Marshal(ac)
		if err := writeFileAtomic(a.ackedPath(), b, 0o600); err != nil {
			return last, err
		}
		if err := os.Remove(path); err != nil {
			return last, err
		}
	}
	return last, nil
}

// Once enrolls if needed, observes, and sends what is spooled.
func (a *Agent) Once(ctx context.Context) (api.CheckinResponse, error) {
	cred, err := a.Enroll(ctx)
	if err != nil {
		return api.CheckinResponse{}, err
	}
	if err := a.Observe(ctx); err != nil {
		return api.CheckinResponse{}, err
	}
	return a.Flush(ctx, cred)
}

// FirstCheckin enrolls if needed and checks in at once with the updates
// as the package manager lists them: CVEs from changelogs already cached,
// none downloaded. It returns how many updates still lack their changelog;
// when some do, Once (or Run) sends them with their CVEs.
func (a *Agent) FirstCheckin(ctx context.Context) (api.CheckinResponse, int, error) {
	cred, err := a.Enroll(ctx)
	if err != nil {
		return api.CheckinResponse{}, 0, err
	}
	col := a.Collector
	col.CachedChangelogsOnly, col.Progress = true, nil
	pending, err := a.observe(ctx, col)
	if err != nil {
		return api.CheckinResponse{}, 0, err
	}
	resp, err := a.Flush(ctx, cred)
	return resp, pending, err
}

// backoff is the wait after n consecutive failures: exponential from 5 s,
// capped, with full jitter.
func backoff(n int, max time.Duration) time.Duration {
	d := 5 * time.Second
	for i := 1; i < n && d < max; i++ {
		d *= 2
	}
	if d > max {
		d = max
	}
	return time.Duration(rand.Int64N(int64(d)) + 1)
}

// jitter spreads check-ins: the interval ±10%.
func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return d
	}
	return d - d/10 + time.Duration(rand.Int64N(int64(d/5)+1))
}

// Run checks in until ctx ends. Failures back off with jitter; reports
// stay on disk meanwhile. A refused credential (401) is kept — the
// refusal may be transient — and retried; it is never replaced by a new
// enrollment on its own.
func (a *Agent) Run(ctx context.Context) error {
	interval := a.Interval
	if interval <= 0 {
		interval = 5 * time.Minute
	}
	var cred *Credential
	failures := 0
	// The first check-in goes out without downloading changelogs, so the
	// host shows up at once; the one after it, right away, has the CVEs.
	first := !a.Collector.CachedChangelogsOnly
	for {
		var err error
		if cred == nil {
			cred, err = a.Enroll(ctx)
			if errors.Is(err, ErrEnrollRefused) {
				return err
			}
		}
		var resp api.CheckinResponse
		pending := 0
		if err == nil {
			col := a.Collector
			if first {
				col.CachedChangelogsOnly, col.Progress = true, nil
			}
			if pending, err = a.observe(ctx, col); err != nil {
				a.log().Error("collect", "err", err)
			}
			resp, err = a.Flush(ctx, cred)
		}
		if err == nil && first {
			first = false
			if pending > 0 {
				a.log().Info("checked in; reading the changelogs of the updates for their CVEs (downloads each candidate .deb from the archive apt names)", "host", cred.HostID, "pending", pending)
				continue
			}
		}
		if ctx.Err() != nil {
			return nil
		}
		wait := jitter(interval)
		switch {
		case err == nil:
			failures = 0
			if resp.NextCheckinSeconds > 0 {
				wait = jitter(time.Duration(resp.NextCheckinSeconds) * time.Second)
			}
			a.log().Info("checked in", "host", cred.HostID, "inventory", resp.Inventory, "open_findings", resp.Open, "next", wait.Round(time.Second))
		default:
			failures++
			wait = backoff(failures, interval)
			attrs := []any{"err", err, "retry_in", wait.Round(time.Second), "pending_reports", a.Pending()}
			switch {
			case api.IsStatus(err, http.StatusUnauthorized):
				a.log().Error("the server refused this host's credential (revoked? or a transient error); keeping it and retrying", attrs...)
			case api.CodeOf(err) == api.CodeMachineMismatch:
				a.log().Error("this state dir's credential belongs to another machine; remove "+a.credPath()+" and enroll this machine", attrs...)
			default:
				a.log().Warn("check-in failed", attrs...)
			}
		}
		if err := a.sleep(ctx, wait); err != nil {
			return nil
		}
	}
}
