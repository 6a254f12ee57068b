package storetest

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/patchbay/patchbay/remedy"
	"github.com/patchbay/patchbay/risk"
	"github.com/patchbay/patchbay/store/internal/fixsql"
)

// Fixes is the contract of the fix proposals: saved per (service,
// branch), updated in place by a later save (creation time kept, fixes
// replaced), listed newest first and per service, read by id.
func Fixes(t *testing.T, open func(t *testing.T) *fixsql.Store) {
	ctx := context.Background()
	s := open(t)
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	p := remedy.Proposal{Service: "shop", Branch: "patchbay/fix/shop/weekly", Forge: "github", MRNumber: 1347, MRURL: "https://github.com/acme/shop/pull/1347",
		Commit: "abc", State: remedy.StateProposed, CreatedAt: t0, UpdatedAt: t0,
		Fixes: []remedy.ProposedFix{{Ecosystem: "Go", Package: "golang.org/x/text", From: "0.3.7", To: "0.39.0", Vulnerability: "CVE-2022-32149", Priority: risk.P2, Due: t0.AddDate(0, 0, 30)}}}
	id, err := s.Save(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	p.ID = id
	if !reflect.DeepEqual(got, p) {
		t.Fatalf("got  %+v\nwant %+v", got, p)
	}
	// A newer fix of the same group: same row, fixes replaced.
	t1 := t0.Add(24 * time.Hour)
	q := p
	q.ID, q.Commit, q.CreatedAt, q.UpdatedAt = 0, "def", t1, t1
	q.Fixes = append([]remedy.ProposedFix{{Ecosystem: "PyPI", Package: "idna", From: "3.4", To: "3.7", Vulnerability: "CVE-2024-3651", Priority: risk.P1, Due: t1.AddDate(0, 0, 7), DeployedAt: t1}}, p.Fixes...)
	id2, err := s.Save(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	if id2 != id {
		t.Fatalf("a second save of the branch made proposal %d beside %d", id2, id)
	}
	if _, err := s.Save(ctx, remedy.Proposal{Service: "billing", Branch: "patchbay/fix/billing/weekly", Forge: "none", State: remedy.StateProposed, CreatedAt: t0, UpdatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	all, err := s.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 || all[0].Service != "shop" || all[1].Service != "billing" {
		t.Fatalf("list %+v", all)
	}
	shop := all[0]
	if shop.Commit != "def" || !shop.CreatedAt.Equal(t0) || !shop.UpdatedAt.Equal(t1) || len(shop.Fixes) != 2 || shop.Fixes[0].Package != "idna" || !shop.Fixes[0].DeployedAt.Equal(t1) {
		t.Errorf("updated proposal %+v", shop)
	}
	one, err := s.List(ctx, "billing")
	if err != nil || len(one) != 1 || len(one[0].Fixes) != 0 {
		t.Errorf("billing: %+v %v", one, err)
	}
	if _, err := s.Get(ctx, id+100); !errors.Is(err, fixsql.ErrNotFound) {
		t.Errorf("missing id: %v", err)
	}
}
