package job

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"testing"
	"time"
)

// FuzzVerify: whatever bytes a server signs (or an attacker relays), the
// agent's verification never panics, and what it accepts is a valid
// manifest for this host, not expired.
func FuzzVerify(f *testing.F) {
	now := time.Date(2026, 11, 10, 21, 0, 0, 0, time.UTC)
	good, _ := json.Marshal(manifest(now))
	f.Add(good)
	f.Add([]byte(`{"job_id":"j","attempt":1,"host_id":"host-a","install":[{"name":"a","version":"1"}],"not_after":"2030-01-01T00:00:00Z","extra":1}`))
	f.Add([]byte(`{"job_id":"j","attempt":0}`))
	f.Add([]byte(`null`))
	seed := make([]byte, ed25519.SeedSize)
	key := ed25519.NewKeyFromSeed(seed)
	pub := key.Public().(ed25519.PublicKey)
	f.Fuzz(func(t *testing.T, b []byte) {
		s := Signed{Manifest: b, Signature: ed25519.Sign(key, b)}
		m, err := Verify(s, pub, "host-a", now)
		if err != nil {
			return
		}
		if m.validate() != nil || m.HostID != "host-a" || now.After(m.NotAfter) {
			t.Fatalf("accepted an invalid manifest: %+v", m)
		}
		// A flipped signature bit never verifies.
		s.Signature = append([]byte(nil), s.Signature...)
		s.Signature[0] ^= 1
		if _, err := Verify(s, pub, "host-a", now); err == nil {
			t.Fatal("a corrupted signature verified")
		}
	})
}

// FuzzVerifyKey: a public key of any length (a truncated or corrupted
// enrollment record) is refused with an error, never a panic.
func FuzzVerifyKey(f *testing.F) {
	now := time.Date(2026, 11, 10, 21, 0, 0, 0, time.UTC)
	key := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	s, err := Sign(manifest(now), key)
	if err != nil {
		f.Fatal(err)
	}
	pub := key.Public().(ed25519.PublicKey)
	f.Add([]byte(pub))
	f.Add([]byte(nil))
	f.Add([]byte(pub[:31]))
	f.Add(append([]byte(pub), 0))
	f.Add([]byte(key)) // the 64-byte private key passed by mistake
	f.Fuzz(func(t *testing.T, k []byte) {
		_, err := Verify(s, ed25519.PublicKey(k), "host-a", now)
		if len(k) != ed25519.PublicKeySize && !errors.Is(err, ErrPublicKey) {
			t.Fatalf("a %d-byte key: %v, want ErrPublicKey", len(k), err)
		}
	})
}
