package audit

import (
	"crypto/ed25519"
	"errors"
	"testing"
	"time"
)

func chain(n int) []Entry {
	var es []Entry
	at := time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)
	for i := 0; i < n; i++ {
		var prev *Entry
		if i > 0 {
			prev = &es[i-1]
		}
		d, _ := DigestOf(map[string]int{"i": i})
		es = append(es, Next(prev, at.Add(time.Duration(i)*time.Second), "cli", "label.set", "host/1", d))
	}
	return es
}

func TestVerify(t *testing.T) {
	es := chain(5)
	if err := Verify(es, nil); err != nil {
		t.Fatal(err)
	}
	// Fields are length-prefixed: moving a byte between fields changes the hash.
	a, b := es[0], es[0]
	a.Actor, a.Action = "cli", "xlabel.set"
	b.Actor, b.Action = "clix", "label.set"
	if ComputeHash(a) == ComputeHash(b) {
		t.Error("field boundaries are not part of the hash")
	}
	forged := append([]Entry(nil), es...)
	forged[2] = Next(&forged[1], time.Now(), "mallory", "token.create", "token/9", "00")
	var be *BrokenError
	if err := Verify(forged, nil); !errors.As(err, &be) || be.Seq != 4 || be.Why != "it does not follow entry 3 (its predecessor was replaced)" {
		t.Errorf("a replaced entry with a valid hash of its own: %v", err)
	}
	pub, key, _ := ed25519.GenerateKey(nil)
	cp := NewCheckpoint(es, time.Now(), key)
	if cp.Seq != 5 || cp.Hash != es[4].Hash || cp.VerifySignature(pub) != nil {
		t.Errorf("checkpoint %+v", cp)
	}
	if err := Verify(es[:3], &cp); !errors.As(err, &be) || be.Seq != 4 {
		t.Errorf("truncated: %v", err)
	}
	if err := Verify(append(es, Next(&es[4], time.Now(), "cli", "a", "b", "c")), &cp); err != nil {
		t.Errorf("a chain that grew past the checkpoint is fine: %v", err)
	}
}
