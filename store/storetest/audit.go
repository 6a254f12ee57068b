package storetest

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/patchbay/patchbay/audit"
)

// AuditStore is the audit log as its users see it.
type AuditStore interface {
	Append(ctx context.Context, actor, action, object string, change any) (audit.Entry, error)
	Entries(ctx context.Context) ([]audit.Entry, error)
}

// Tamper runs raw SQL against the store's database, as an attacker with
// database access would.
type Tamper func(sql string)

func appendN(t *testing.T, s AuditStore, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		if _, err := s.Append(context.Background(), "cli", "feeds.import", fmt.Sprintf("osv/%d", i), map[string]int{"added": i}); err != nil {
			t.Fatal(err)
		}
	}
}

func broken(t *testing.T, s AuditStore, cp *audit.Checkpoint, seq int64, why string) {
	t.Helper()
	es, err := s.Entries(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	err = audit.Verify(es, cp)
	var be *audit.BrokenError
	if !errors.As(err, &be) || be.Seq != seq || !strings.Contains(be.Why, why) {
		t.Errorf("verify: %v; want entry %d (%s)", err, seq, why)
	}
}

// Audit runs the audit log contract.
func Audit(t *testing.T, open func(t *testing.T) (AuditStore, Tamper)) {
	ctx := context.Background()
	_, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("concurrent appends form one chain", func(t *testing.T) {
		s, _ := open(t)
		var wg sync.WaitGroup
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 5; i++ {
					if _, err := s.Append(ctx, fmt.Sprintf("worker-%d", w), "label.set", "host/1", i); err != nil {
						t.Error(err)
					}
				}
			}()
		}
		wg.Wait()
		es, err := s.Entries(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(es) != 20 {
			t.Fatalf("%d entries", len(es))
		}
		cp := audit.NewCheckpoint(es, time.Now(), key)
		if err := audit.Verify(es, &cp); err != nil {
			t.Error(err)
		}
		if err := cp.VerifySignature(key.Public().(ed25519.PublicKey)); err != nil {
			t.Error(err)
		}
		cp.Seq--
		if err := cp.VerifySignature(key.Public().(ed25519.PublicKey)); !errors.Is(err, audit.ErrBadSignature) {
			t.Errorf("a changed checkpoint verified: %v", err)
		}
	})

	t.Run("an edited entry is caught", func(t *testing.T) {
		s, tamper := open(t)
		appendN(t, s, 10)
		tamper("UPDATE audit_log SET object = 'osv/evil' WHERE seq = 7")
		broken(t, s, nil, 7, "edited")
	})

	t.Run("a deleted entry is caught", func(t *testing.T) {
		s, tamper := open(t)
		appendN(t, s, 10)
		tamper("DELETE FROM audit_log WHERE seq = 4")
		broken(t, s, nil, 4, "found entry 5 in its place")
	})

	t.Run("reordered entries are caught", func(t *testing.T) {
		s, tamper := open(t)
		appendN(t, s, 10)
		tamper("UPDATE audit_log SET seq = -1 WHERE seq = 3")
		tamper("UPDATE audit_log SET seq = 3 WHERE seq = 4")
		tamper("UPDATE audit_log SET seq = 4 WHERE seq = -1")
		broken(t, s, nil, 3, "edited")
	})

	t.Run("a truncated tail is caught against the checkpoint", func(t *testing.T) {
		s, tamper := open(t)
		appendN(t, s, 10)
		es, _ := s.Entries(ctx)
		cp := audit.NewCheckpoint(es, time.Now(), key)
		tamper("DELETE FROM audit_log WHERE seq > 8")
		if es, _ := s.Entries(ctx); audit.Verify(es, nil) != nil {
			t.Fatal("without the checkpoint a truncated chain still verifies; the checkpoint is what catches it")
		}
		broken(t, s, &cp, 9, "truncated")
	})

	t.Run("a rewritten chain is caught against the checkpoint", func(t *testing.T) {
		s, tamper := open(t)
		appendN(t, s, 5)
		es, _ := s.Entries(ctx)
		cp := audit.NewCheckpoint(es, time.Now(), key)
		tamper("DELETE FROM audit_log")
		appendN(t, s, 6)
		broken(t, s, &cp, 5, "rewritten")
	})
}
