package job

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func manifest(now time.Time) Manifest {
	return Manifest{JobID: "job-1", Attempt: 1, HostID: "host-a", Rollout: "r-1", Ring: "staging",
		Install:    []Package{{Name: "openssl", Version: "3.0.17-1~deb12u3"}, {Name: "libssl3", Version: "3.0.17-1~deb12u3"}},
		PostChecks: []HealthCheck{{HTTP: "http://127.0.0.1:8080/healthz", Status: 200}},
		Reboot:     RebootIfRequired, Timeout: 30 * time.Minute, IssuedAt: now, NotAfter: now.Add(4 * time.Hour)}
}

func TestSignAndVerify(t *testing.T) {
	pub, key, _ := ed25519.GenerateKey(nil)
	otherPub, otherKey, _ := ed25519.GenerateKey(nil)
	now := time.Date(2026, 11, 10, 21, 0, 0, 0, time.UTC)
	s, err := Sign(manifest(now), key)
	if err != nil {
		t.Fatal(err)
	}
	if s.KeyID != KeyID(pub) || len(s.KeyID) != 16 {
		t.Errorf("key id %q", s.KeyID)
	}
	m, err := Verify(s, pub, "host-a", now.Add(time.Minute))
	if err != nil || m.Install[1].Version != "3.0.17-1~deb12u3" || m.PostChecks[0].Status != 200 {
		t.Fatalf("verify: %+v %v", m, err)
	}
	// Tampered: a changed version in the signed bytes.
	tampered := s
	tampered.Manifest = json.RawMessage(strings.Replace(string(s.Manifest), "deb12u3", "deb12u9", 1))
	// A field the signer did not write.
	extra := s
	extra.Manifest = json.RawMessage(strings.Replace(string(s.Manifest), `{"job_id"`, `{"command":"rm -rf /","job_id"`, 1))
	byOther, _ := Sign(manifest(now), otherKey)
	other := manifest(now)
	other.HostID = "host-b"
	forB, _ := Sign(other, key)
	for name, tc := range map[string]struct {
		s    Signed
		host string
		at   time.Time
		want error
	}{
		"tampered":         {tampered, "host-a", now, ErrSignature},
		"extra field":      {extra, "host-a", now, ErrSignature},
		"other key":        {byOther, "host-a", now, ErrSignature},
		"short signature":  {Signed{Manifest: s.Manifest, Signature: s.Signature[:10]}, "host-a", now, ErrSignature},
		"for another host": {forB, "host-a", now, ErrWrongHost},
		"too late":         {s, "host-a", now.Add(5 * time.Hour), ErrExpired},
	} {
		if _, err := Verify(tc.s, pub, tc.host, tc.at); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}
	if _, err := Verify(byOther, otherPub, "host-a", now); err != nil {
		t.Errorf("the other key verifies its own: %v", err)
	}
	bad := manifest(now)
	bad.Install[0].Version = ""
	if _, err := Sign(bad, key); err == nil || err.Error() != "job job-1: install[0]: a package and its exact version" {
		t.Errorf("a package without a version: %v", err)
	}
}

// TestJournalRunsEachAttemptOnce: an attempt starts once, across agent
// restarts; an older attempt (a stale retry) is refused; a newer one runs.
func TestJournalRunsEachAttemptOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state", "jobs.json")
	now := time.Now()
	j, err := OpenJournal(path)
	if err != nil {
		t.Fatal(err)
	}
	m := manifest(now)
	m.Attempt = 2
	if err := j.Begin(m); err != nil {
		t.Fatal(err)
	}
	if err := j.Begin(m); !errors.Is(err, ErrStale) {
		t.Errorf("the same attempt again: %v", err)
	}
	// A new agent process reads the journal.
	j2, err := OpenJournal(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := j2.Begin(m); !errors.Is(err, ErrStale) || err.Error() != "job attempt already run or superseded: job job-1 attempt 2 (attempt 2 was started)" {
		t.Errorf("after a restart: %v", err)
	}
	older := m
	older.Attempt = 1
	if err := j2.Begin(older); !errors.Is(err, ErrStale) {
		t.Errorf("a stale attempt: %v", err)
	}
	newer := m
	newer.Attempt = 3
	if err := j2.Begin(newer); err != nil {
		t.Errorf("a newer attempt: %v", err)
	}
	other := m
	other.JobID = "job-2"
	if err := j2.Begin(other); err != nil {
		t.Errorf("another job: %v", err)
	}
}

func TestRebootValid(t *testing.T) {
	for r, want := range map[Reboot]bool{RebootNever: true, RebootIfRequired: true, RebootAlways: true, "": false, "sometimes": false, "if_required": false} {
		if r.Valid() != want {
			t.Errorf("Reboot(%q).Valid() = %v, want %v", r, !want, want)
		}
	}
}

// A public key of the wrong length (ed25519.Verify panics on one) is an
// error.
func TestVerifyWrongKeyLength(t *testing.T) {
	pub, key, _ := ed25519.GenerateKey(nil)
	now := time.Date(2026, 11, 10, 21, 0, 0, 0, time.UTC)
	s, err := Sign(manifest(now), key)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []ed25519.PublicKey{nil, pub[:16], append(append(ed25519.PublicKey(nil), pub...), 0), ed25519.PublicKey(key)} {
		if _, err := Verify(s, k, "host-a", now); !errors.Is(err, ErrPublicKey) {
			t.Errorf("%d-byte key: %v, want ErrPublicKey", len(k), err)
		}
	}
}
