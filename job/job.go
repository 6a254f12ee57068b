// Package job is a host's work order in a rollout: a manifest of
// structured operations (exact package versions, checks, reboot policy)
// that the server signs with its Ed25519 key and an agent verifies before
// it runs anything — signature, target host, validity — and the journal
// with which an agent runs each job at most once: (job id, attempt) is a
// fencing key, and a stale or repeated attempt is refused.
package job

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/patchbay/patchbay/pkgmgr"
)

// Package is a package at the exact version a job installs.
type Package struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// Manifest is what a job asks of one host.
type Manifest struct {
	JobID   string `json:"job_id"`
	Attempt int    `json:"attempt"`
	HostID  string `json:"host_id"`
	Rollout string `json:"rollout"`
	Ring    string `json:"ring"`
	// Install lists the packages to bring to exactly these versions.
	Install    []Package     `json:"install"`
	PreChecks  []HealthCheck `json:"pre_checks,omitempty"`
	PostChecks []HealthCheck `json:"post_checks,omitempty"`
	// Reboot is never, if-required or always.
	Reboot          Reboot        `json:"reboot"`
	RestartServices bool          `json:"restart_services,omitempty"`
	Timeout         time.Duration `json:"timeout_ns"`
	IssuedAt        time.Time     `json:"issued_at"`
	// NotAfter: an agent does not start the job later (the window closes).
	NotAfter time.Time `json:"not_after"`
	// RebootBefore is the end of the maintenance window: a reboot the
	// policy asks for happens only before it (zero: outside any window,
	// the reboot is left to the next window and reported as required).
	RebootBefore time.Time `json:"reboot_before,omitzero"`
	// Revert, when set, says why the job puts the host back at its
	// previous versions (the rollout halted): the agent reports it as
	// rolled_back once done.
	Revert string `json:"revert,omitempty"`
}

// ID names the job of a host in a rollout.
func ID(rollout, host string) string { return rollout + "/" + host }

// Result is what an agent reports of a job: the outcome, the versions
// before and after, every command with its exit status and limited
// output, the checks and the timings.
type Result struct {
	JobID   string  `json:"job_id"`
	Attempt int     `json:"attempt"`
	Outcome Outcome `json:"outcome"`
	// Reason says why a job failed, was skipped or refused.
	Reason string `json:"reason,omitempty"`
	// Refused is set when the agent did not run the job at all (bad
	// signature, another host, expired, already run).
	Refused  bool             `json:"refused,omitempty"`
	Before   []Package        `json:"before,omitempty"`
	After    []Package        `json:"after,omitempty"`
	Changes  []pkgmgr.Change  `json:"changes,omitempty"`
	Skipped  []pkgmgr.Skip    `json:"skipped,omitempty"`
	Commands []pkgmgr.Command `json:"commands,omitempty"`
	Checks   []CheckResult    `json:"checks,omitempty"`
	// Reboot is "" (none needed), "required" (needed, not done) or
	// "scheduled".
	Reboot    RebootReport `json:"reboot,omitempty"`
	Restarted []string     `json:"restarted,omitempty"`
	Started   time.Time    `json:"started,omitzero"`
	Finished  time.Time    `json:"finished,omitzero"`
}

// CheckResult is one health check's outcome in a phase (pre, post,
// post-rollback).
type CheckResult struct {
	Phase    Phase         `json:"phase"`
	Check    HealthCheck   `json:"check"`
	OK       bool          `json:"ok"`
	Detail   string        `json:"detail,omitempty"`
	Duration time.Duration `json:"duration_ns"`
}

// Signed is a manifest as sent: its exact bytes and their signature.
type Signed struct {
	Manifest  json.RawMessage `json:"manifest"`
	Signature []byte          `json:"signature"` // Ed25519 over Manifest
	KeyID     string          `json:"key_id"`
}

// KeyID names a public key: the first 16 hex digits of its SHA-256.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// Sign signs a manifest.
func Sign(m Manifest, key ed25519.PrivateKey) (Signed, error) {
	if err := m.validate(); err != nil {
		return Signed{}, err
	}
	b, err := json.Marshal(m)
	if err != nil {
		return Signed{}, err
	}
	return Signed{Manifest: b, Signature: ed25519.Sign(key, b), KeyID: KeyID(key.Public().(ed25519.PublicKey))}, nil
}

func (m Manifest) validate() error {
	switch {
	case m.JobID == "":
		return errors.New("job: no job id")
	case m.Attempt < 1:
		return fmt.Errorf("job %s: attempt %d: attempts count from 1", m.JobID, m.Attempt)
	case m.HostID == "":
		return fmt.Errorf("job %s: no target host", m.JobID)
	case m.NotAfter.IsZero():
		return fmt.Errorf("job %s: no not-after time", m.JobID)
	}
	for i, p := range m.Install {
		if p.Name == "" || p.Version == "" {
			return fmt.Errorf("job %s: install[%d]: a package and its exact version", m.JobID, i)
		}
	}
	return nil
}

// Refusals: why an agent does not run a job. Each is reported to the
// server.
var (
	ErrSignature = errors.New("signature does not verify")
	ErrWrongHost = errors.New("job is for another host")
	ErrExpired   = errors.New("job is past its not-after time")
	ErrStale     = errors.New("job attempt already run or superseded")
	// ErrPublicKey: the key to verify with is not an Ed25519 public key
	// (ed25519.Verify panics on one of another length).
	ErrPublicKey = errors.New("server public key is not an Ed25519 public key")
)

// Verify checks a signed manifest for host at now with the server's
// public key learnt at enrollment, and returns the manifest.
func Verify(s Signed, pub ed25519.PublicKey, hostID string, now time.Time) (Manifest, error) {
	var m Manifest
	if len(pub) != ed25519.PublicKeySize {
		return m, fmt.Errorf("%w: %d bytes, want %d", ErrPublicKey, len(pub), ed25519.PublicKeySize)
	}
	if len(s.Signature) != ed25519.SignatureSize || !ed25519.Verify(pub, s.Manifest, s.Signature) {
		return m, ErrSignature
	}
	dec := json.NewDecoder(bytes.NewReader(s.Manifest))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return m, fmt.Errorf("%w: %v", ErrSignature, err)
	}
	if err := m.validate(); err != nil {
		return m, err
	}
	switch {
	case m.HostID != hostID:
		return m, fmt.Errorf("%w: %s, not %s", ErrWrongHost, m.HostID, hostID)
	case now.After(m.NotAfter):
		return m, fmt.Errorf("%w (%s)", ErrExpired, m.NotAfter.Format(time.RFC3339))
	}
	return m, nil
}

// Journal is where an agent remembers the attempts it started, on disk,
// written before anything runs: after a crash or a restart the same
// attempt is never run again.
type Journal struct {
	path string
	mu   sync.Mutex
	ran  map[string]int // job id → highest attempt started
}

// OpenJournal reads (or starts) the journal at path.
func OpenJournal(path string) (*Journal, error) {
	j := &Journal{path: path, ran: map[string]int{}}
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return j, nil
	case err != nil:
		return nil, fmt.Errorf("job journal: %w", err)
	}
	if err := json.Unmarshal(b, &j.ran); err != nil {
		return nil, fmt.Errorf("job journal %s: %w", path, err)
	}
	return j, nil
}

// Begin records that an attempt starts, refusing one already started or
// older than one started (a stale retry), and persists the record before
// it returns.
func (j *Journal) Begin(m Manifest) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if last, ok := j.ran[m.JobID]; ok && m.Attempt <= last {
		return fmt.Errorf("%w: job %s attempt %d (attempt %d was started)", ErrStale, m.JobID, m.Attempt, last)
	}
	j.ran[m.JobID] = m.Attempt
	b, err := json.Marshal(j.ran)
	if err != nil {
		return err
	}
	tmp := j.path + ".tmp"
	if err := os.MkdirAll(filepath.Dir(j.path), 0o700); err != nil {
		return fmt.Errorf("job journal: %w", err)
	}
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("job journal: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("job journal: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("job journal: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("job journal: %w", err)
	}
	if err := os.Rename(tmp, j.path); err != nil {
		delete(j.ran, m.JobID)
		return fmt.Errorf("job journal: %w", err)
	}
	return nil
}
