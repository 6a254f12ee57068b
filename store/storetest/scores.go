package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/patchbay/patchbay/scorecard"
	"github.com/patchbay/patchbay/store/internal/scoresql"
)

// Scores runs the contract of scorecard results, pushed facts, once-only
// notices and marks.
func Scores(t *testing.T, open func(t *testing.T) (*scoresql.Store, AuditStore)) {
	ctx := context.Background()
	t0 := time.Date(2027, 1, 5, 9, 0, 0, 0, time.UTC)
	s, aud := open(t)
	rec := func(card, entity, level string, score float64, at time.Time) scorecard.Record {
		return scorecard.Record{At: at, Result: scorecard.Result{Scorecard: card, Entity: entity, Level: level, Score: score,
			Rules: []scorecard.RuleResult{{Rule: "r1", Level: "bronze", Pass: level != "", Message: "fix it"}}}}
	}
	if err := s.Append(ctx, []scorecard.Record{rec("c", "a", "", 50, t0), rec("c", "b", "gold", 100, t0), rec("d", "a", "bronze", 75, t0)}); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(ctx, []scorecard.Record{rec("c", "a", "bronze", 75, t0.Add(time.Hour))}); err != nil {
		t.Fatal(err)
	}
	latest, err := s.Latest(ctx)
	if err != nil || len(latest) != 3 || latest[0].Entity != "a" || latest[0].Level != "bronze" || !latest[0].At.Equal(t0.Add(time.Hour)) ||
		latest[0].Rules[0].Message != "fix it" {
		t.Fatalf("latest: %+v %v", latest, err)
	}
	h, err := s.History(ctx, "c", "a", time.Time{})
	if err != nil || len(h) != 2 || h[0].Level != "" || h[1].Level != "bronze" {
		t.Fatalf("history: %+v %v", h, err)
	}
	if h, _ := s.History(ctx, "", "a", t0.Add(time.Minute)); len(h) != 1 {
		t.Errorf("history since: %+v", h)
	}
	if h, _ := s.History(ctx, "c", "", time.Time{}); len(h) != 3 {
		t.Errorf("history of a scorecard: %+v", h)
	}
	// Hosts and host groups are kept under host/NAME and hostGroup/NAME
	// in the same (scorecard, entity) key: each is its own entity.
	hk, gk := scorecard.EntityKey(scorecard.EntityHost, "a"), scorecard.EntityKey(scorecard.EntityHostGroup, "a")
	if err := s.Append(ctx, []scorecard.Record{rec("h", hk, "bronze", 60, t0), rec("h", gk, "", 20, t0), rec("h", hk, "gold", 90, t0.Add(time.Hour))}); err != nil {
		t.Fatal(err)
	}
	if h, err := s.History(ctx, "h", hk, time.Time{}); err != nil || len(h) != 2 || h[0].Entity != "host/a" || h[1].Score != 90 {
		t.Errorf("host history: %+v %v", h, err)
	}
	if h, _ := s.History(ctx, "", gk, time.Time{}); len(h) != 1 || h[0].Entity != "hostGroup/a" || h[0].Score != 20 {
		t.Errorf("host group history: %+v", h)
	}
	if h, _ := s.History(ctx, "", "a", time.Time{}); len(h) != 3 {
		t.Errorf("the service a's history holds another entity's: %+v", h)
	}
	if latest, _ := s.Latest(ctx); len(latest) != 5 {
		t.Errorf("latest with hosts: %+v", latest)
	}
	// Pruning keeps each entity's latest record however old.
	if err := s.Prune(ctx, t0.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if h, _ := s.History(ctx, "", "", time.Time{}); len(h) != 5 {
		t.Errorf("after pruning: %+v", h)
	}

	// Pushed facts: every push kept, the latest read, audited, marked.
	for i, v := range []string{"70", "85.5"} {
		if err := s.PushFact(ctx, scorecard.CustomFact{Service: "a", Name: "coverage", Value: v, At: t0.Add(time.Duration(i) * time.Minute), Actor: "api:ci"}); err != nil {
			t.Fatal(err)
		}
	}
	cf, err := s.CustomFacts(ctx)
	if err != nil || len(cf) != 1 || cf["a"]["coverage"].Value != "85.5" || !cf["a"]["coverage"].At.Equal(t0.Add(time.Minute)) {
		t.Fatalf("facts: %+v %v", cf, err)
	}
	if fh, err := s.FactHistory(ctx, "a", 10); err != nil || len(fh) != 2 || fh[0].Value != "85.5" || fh[1].Actor != "api:ci" {
		t.Errorf("fact history: %+v %v", fh, err)
	}
	entries, err := aud.Entries(ctx)
	n := 0
	for _, e := range entries {
		if e.Action == "facts.push" && e.Object == "service/a/coverage" {
			n++
		}
	}
	if err != nil || n != 2 {
		t.Errorf("audited pushes: %d %v", n, err)
	}
	mark, err := s.Marked(ctx)
	if err != nil || mark == 0 {
		t.Fatalf("marked: %d %v", mark, err)
	}
	if err := s.Mark(ctx, "policy", t0); err != nil {
		t.Fatal(err)
	}
	if m2, _ := s.Marked(ctx); m2 <= mark {
		t.Errorf("mark %d after %d", m2, mark)
	}
	if err := s.Unmark(ctx, mark); err != nil {
		t.Fatal(err)
	}
	if m3, _ := s.Marked(ctx); m3 == 0 {
		t.Errorf("a mark after the one unmarked went too")
	}

	// A notice is queued once per key, to each target.
	n1 := scorecard.Notice{Key: "initiative/q1/started", Event: "initiative.started", Subject: "q1", Payload: map[string]string{"initiative": "q1"}}
	for i, want := range []bool{true, false} {
		queued, err := s.Notify(ctx, n1, []string{"chat", "mail"}, t0)
		if err != nil || queued != want {
			t.Errorf("notify %d: %v %v", i, queued, err)
		}
	}
	var count int
	if err := s.DB.QueryRowContext(ctx, `SELECT COUNT(*) FROM notifications WHERE event = 'initiative.started'`).Scan(&count); err != nil || count != 2 {
		t.Errorf("deliveries: %d %v", count, err)
	}
}
