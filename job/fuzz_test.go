package job

import (
	"crypto/ed25519"
	"encoding/json"
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
