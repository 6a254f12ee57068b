package storetest

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/patchbay/patchbay/audit"
	"github.com/patchbay/patchbay/kinds"
	"github.com/patchbay/patchbay/policy"
	"github.com/patchbay/patchbay/store/internal/policysql"
)

// PolicyStore keeps applied policy documents and their versions.
type PolicyStore interface {
	Documents(ctx context.Context, kinds policy.Kinds) ([]policy.Applied, error)
	Revision(ctx context.Context) (int64, error)
	History(ctx context.Context, kind, name string) ([]policysql.Version, error)
	Apply(ctx context.Context, changes []policy.Change, actor string, now time.Time) error
	Decided(ctx context.Context) (int64, error)
	SetDecided(ctx context.Context, revision int64) error
}

// Policy is the contract of the policy store: applies are versioned,
// audited and all or nothing; a plan made on stale versions is refused.
func Policy(t *testing.T, open func(t *testing.T) (PolicyStore, AuditStore)) {
	ctx := context.Background()
	s, aud := open(t)
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	if docs, err := s.Documents(ctx, kinds.All()); err != nil || len(docs) != 0 {
		t.Fatalf("empty store: %v %v", docs, err)
	}
	if rev, err := s.Revision(ctx); err != nil || rev != 0 {
		t.Fatalf("empty revision: %d %v", rev, err)
	}
	plan := func(contact string, deletes ...string) []policy.Change {
		t.Helper()
		current, err := s.Documents(ctx, kinds.All())
		if err != nil {
			t.Fatal(err)
		}
		var docs []*policy.Document
		if contact != "" {
			if docs, err = kinds.All().Parse("team.yaml", []byte(replaceContact(contact))); err != nil {
				t.Fatal(err)
			}
		}
		changes, _, err := policy.Diff(current, docs, deletes)
		if err != nil {
			t.Fatal(err)
		}
		return changes
	}
	created := plan("web@example.com")
	if err := s.Apply(ctx, created, "alice", now); err != nil {
		t.Fatal(err)
	}
	rev1, _ := s.Revision(ctx)
	changed := plan("#web")
	if changed[0].Action != policy.Changed || changed[0].Version != 2 {
		t.Fatalf("second plan: %+v", changed[0])
	}
	if err := s.Apply(ctx, changed, "bob", now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	docs, err := s.Documents(ctx, kinds.All())
	if err != nil || len(docs) != 1 || docs[0].Version != 2 || docs[0].AppliedBy != "bob" || !docs[0].AppliedAt.Equal(now.Add(time.Hour)) ||
		docs[0].Doc.Spec.(*policy.TeamSpec).Contact != "#web" {
		t.Fatalf("after the change: %+v %v", docs, err)
	}
	rev2, _ := s.Revision(ctx)
	if rev2 <= rev1 {
		t.Errorf("revision did not move: %d → %d", rev1, rev2)
	}
	// Plans made on version 1 are stale now: refused, nothing written.
	for _, stale := range [][]policy.Change{created, changed} {
		if err := s.Apply(ctx, stale, "mallory", now); !errors.Is(err, policy.ErrConflict) {
			t.Errorf("stale apply: %v", err)
		}
	}
	if rev, _ := s.Revision(ctx); rev != rev2 {
		t.Errorf("a refused apply moved the revision: %d → %d", rev2, rev)
	}
	if err := s.Apply(ctx, plan("", "Team/web"), "carol", now.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if docs, _ := s.Documents(ctx, kinds.All()); len(docs) != 0 {
		t.Errorf("deleted document still applied: %+v", docs)
	}
	h, err := s.History(ctx, "Team", "web")
	if err != nil || len(h) != 3 {
		t.Fatalf("history: %+v %v", h, err)
	}
	for i, want := range []struct{ action, by string }{{"created", "alice"}, {"changed", "bob"}, {"deleted", "carol"}} {
		if h[i].Action != want.action || h[i].AppliedBy != want.by || h[i].Version != i+1 {
			t.Errorf("history[%d]: %+v", i, h[i])
		}
	}
	if h[2].Doc != "" || h[0].Doc == "" {
		t.Errorf("history documents: %q, %q", h[0].Doc, h[2].Doc)
	}
	entries, err := aud.Entries(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, e := range entries {
		actions = append(actions, e.Actor+" "+e.Action+" "+e.Object)
	}
	if want := []string{"alice policy.created Team/web@1", "bob policy.changed Team/web@2", "carol policy.deleted Team/web@3"}; !slices.Equal(actions, want) {
		t.Errorf("audit: %q", actions)
	}
	if err := audit.Verify(entries, nil); err != nil {
		t.Error(err)
	}
	// The decided revision only moves forward.
	if err := s.SetDecided(ctx, rev2); err != nil {
		t.Fatal(err)
	}
	if err := s.SetDecided(ctx, rev1); err != nil {
		t.Fatal(err)
	}
	if d, err := s.Decided(ctx); err != nil || d != rev2 {
		t.Errorf("decided: %d %v, want %d", d, err, rev2)
	}
}

func replaceContact(c string) string {
	return "apiVersion: patchbay/v1\nkind: Team\nmetadata:\n  name: web\nspec:\n  contact: \"" + c + "\"\n"
}
