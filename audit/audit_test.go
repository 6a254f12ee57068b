package audit

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"strings"
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

// ReadCheckpoints reads a single indented checkpoint and a JSON Lines
// history; VerifyHistory checks the chain against every line.
func TestReadCheckpointsAndHistory(t *testing.T) {
	es := chain(5)
	_, key, _ := ed25519.GenerateKey(nil)
	at := time.Date(2026, 11, 22, 1, 0, 0, 0, time.UTC)
	one, _ := json.MarshalIndent(NewCheckpoint(es[:2], at, key), "", "  ")
	cps, err := ReadCheckpoints(bytes.NewReader(append(one, '\n')))
	if err != nil || len(cps) != 1 || cps[0].Seq != 2 {
		t.Fatalf("single checkpoint: %+v %v", cps, err)
	}
	var hist []byte
	for _, n := range []int{0, 2, 5} {
		b, _ := json.Marshal(NewCheckpoint(es[:n], at.Add(time.Duration(n)*time.Minute), key))
		hist = append(append(hist, b...), '\n')
	}
	cps, err = ReadCheckpoints(bytes.NewReader(hist))
	if err != nil || len(cps) != 3 || cps[2].Seq != 5 {
		t.Fatalf("history: %+v %v", cps, err)
	}
	if err := VerifyHistory(es, cps); err != nil {
		t.Errorf("intact chain against its history: %v", err)
	}
	var be *BrokenError
	if err := VerifyHistory(es[:4], cps); !errors.As(err, &be) || be.Seq != 5 {
		t.Errorf("truncated past the last checkpoint: %v", err)
	}
	// A chain rebuilt from entry 2 on still reaches checkpoint 1 but not 2.
	rebuilt := append([]Entry(nil), es[:1]...)
	for i := 1; i < 5; i++ {
		rebuilt = append(rebuilt, Next(&rebuilt[i-1], at, "mallory", "x", "y", "z"))
	}
	if err := VerifyHistory(rebuilt, cps); !errors.As(err, &be) || be.Seq != 2 {
		t.Errorf("rewritten chain: %v", err)
	}
	for name, in := range map[string]string{
		"empty":     "",
		"torn line": string(hist) + `{"seq":6,"hash":"ab`,
		"not one":   `{"entries":[]}`,
		"unsigned":  `{"seq":1,"hash":"ab"}`,
	} {
		if _, err := ReadCheckpoints(strings.NewReader(in)); err == nil {
			t.Errorf("%s: read", name)
		}
	}
}
