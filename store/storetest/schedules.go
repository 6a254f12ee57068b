package storetest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/patchbay/patchbay/rollout"
	"github.com/patchbay/patchbay/store/internal/rolloutsql"
)

// Schedules: a schedule runs an opening once — a second run, even at the
// same time, is refused with nothing written; a run that planned nothing
// is recorded too; runs list newest first; pauses are kept until resumed,
// each change once, with its audit entry.
func Schedules(t *testing.T, open func(t *testing.T) (*rolloutsql.Store, AuditStore)) {
	ctx := context.Background()
	s, aud := open(t)
	at := time.Date(2026, 11, 24, 22, 0, 30, 0, time.UTC)
	plan := func(id string) *rollout.Plan {
		return &rollout.Plan{ID: id, Strategy: "standard", State: rollout.Approved, Approvals: []rollout.Approval{}, Schedule: "nightly", Opening: "nightly@2026-11-24T22:00:00Z",
			Rings: []rollout.RingPreview{{Name: "all", Hosts: 1}}, Hosts: []rollout.PlanHost{{ID: "h1", Hostname: "h1", Targets: []rollout.Target{{Name: "libssl3", From: "1", To: "2"}}}}}
	}
	ev := func(action string) rollout.Event {
		return rollout.Event{Actor: "server:test", Action: action, Object: "schedule/nightly"}
	}
	if ran, err := s.Ran(ctx, "nightly", "nightly@2026-11-24T22:00:00Z"); err != nil || ran {
		t.Fatalf("ran before: %v %v", ran, err)
	}
	// Two writers at once: one plan.
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.CreateScheduled(ctx, rollout.Fence{}, "nightly", "nightly@2026-11-24T22:00:00Z", plan([]string{"plan-a", "plan-b"}[i]), at, ev("plan.create"))
		}()
	}
	wg.Wait()
	ok, ran := 0, 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, rollout.ErrRan):
			ran++
		default:
			t.Fatal(err)
		}
	}
	if ok != 1 || ran != 1 {
		t.Fatalf("two runs of one opening: %v", errs)
	}
	rows, err := s.Plans(ctx, 10)
	if err != nil || len(rows) != 1 || rows[0].Plan.Schedule != "nightly" || rows[0].Plan.Opening != "nightly@2026-11-24T22:00:00Z" {
		t.Fatalf("plans: %v %+v", err, rows)
	}
	if hs, err := s.Hosts(ctx, rows[0].Plan.ID); err != nil || len(hs) != 1 {
		t.Fatalf("hosts of the plan: %v %+v", err, hs)
	}
	if ran, err := s.Ran(ctx, "nightly", "nightly@2026-11-24T22:00:00Z"); err != nil || !ran {
		t.Fatalf("ran after: %v %v", ran, err)
	}
	// An opening that planned nothing.
	if err := s.CreateScheduled(ctx, rollout.Fence{}, "nightly", "nightly@2026-11-25T22:00:00Z", nil, at.Add(24*time.Hour), ev("schedule.run")); err != nil {
		t.Fatal(err)
	}
	runs, err := s.Runs(ctx, "nightly", 10)
	if err != nil || len(runs) != 2 || runs[0].Opening != "nightly@2026-11-25T22:00:00Z" || runs[0].Plan != "" || runs[1].Plan != rows[0].Plan.ID || !runs[1].At.Equal(at) {
		t.Fatalf("runs: %v %+v", err, runs)
	}
	if ids, err := s.Approved(ctx); err != nil || len(ids) != 1 {
		t.Errorf("approved: %v %v", ids, err)
	}
	if ids, err := s.Undecided(ctx); err != nil || len(ids) != 1 {
		t.Errorf("undecided: %v %v", ids, err)
	}
	// Pauses.
	p := &rollout.Pause{Reason: "freeze", By: "user:alice", At: at}
	if changed, err := s.SetPaused(ctx, "nightly", p, at, ev("schedule.pause")); err != nil || !changed {
		t.Fatalf("pause: %v %v", changed, err)
	}
	if changed, err := s.SetPaused(ctx, "nightly", p, at, ev("schedule.pause")); err != nil || changed {
		t.Errorf("paused twice: %v %v", changed, err)
	}
	ps, err := s.Pauses(ctx)
	if err != nil || len(ps) != 1 || ps["nightly"].Reason != "freeze" || ps["nightly"].By != "user:alice" || !ps["nightly"].At.Equal(at) {
		t.Fatalf("pauses: %v %+v", err, ps)
	}
	if changed, err := s.SetPaused(ctx, "nightly", nil, at, ev("schedule.resume")); err != nil || !changed {
		t.Fatalf("resume: %v %v", changed, err)
	}
	if changed, err := s.SetPaused(ctx, "nightly", nil, at, ev("schedule.resume")); err != nil || changed {
		t.Errorf("resumed twice: %v %v", changed, err)
	}
	if ps, err := s.Pauses(ctx); err != nil || len(ps) != 0 {
		t.Errorf("pauses after resume: %v %+v", err, ps)
	}
	es, err := aud.Entries(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n := map[string]int{}
	for _, e := range es {
		n[e.Action]++
	}
	if n["plan.create"] != 1 || n["schedule.run"] != 1 || n["schedule.pause"] != 1 || n["schedule.resume"] != 1 {
		t.Errorf("audit: %v", n)
	}
	// Ended: completed or aborted since a time.
	row := rows[0]
	row.Plan.State = rollout.Started
	row.Machine = &rollout.Machine{State: rollout.Completed}
	if err := s.Update(ctx, row, at.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if ids, err := s.Ended(ctx, at); err != nil || len(ids) != 1 {
		t.Errorf("ended since the run: %v %v", ids, err)
	}
	if ids, err := s.Ended(ctx, at.Add(2*time.Hour)); err != nil || len(ids) != 0 {
		t.Errorf("ended since later: %v %v", ids, err)
	}
}
