package rollout

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/patchbay/patchbay/duration"
	"github.com/patchbay/patchbay/job"
)

func strategy(promote Promotion) *StrategySpec {
	return &StrategySpec{Rings: []Ring{
		{Name: "staging", HostGroup: "staging", MaxConcurrency: Amount{N: 100, Percent: true}, ErrorThreshold: Amount{N: 0}, Bake: 0},
		{Name: "prod", Share: Amount{N: 100, Percent: true}, MaxConcurrency: Amount{N: 3}, ErrorThreshold: Amount{N: 20, Percent: true}, Bake: 0},
	}, Reboot: job.RebootIfRequired, Promote: promote, JobTimeout: 0}
}

func hosts(n int) []string {
	var out []string
	for i := range n {
		out = append(out, fmt.Sprintf("h%02d", i))
	}
	return out
}

func staging(h string) []string {
	if h == "h00" || h == "h01" {
		return []string{"staging"}
	}
	return nil
}

func always(string) bool { return true }

func TestStagingFirstThenProd(t *testing.T) {
	s := strategy(PromoteAutomatic)
	s.Rings[0].Bake = duration.Duration(30 * time.Minute)
	m := NewMachine(s, hosts(10), staging)
	now := time.Date(2026, 11, 10, 21, 0, 0, 0, time.UTC)
	first := m.Step(now, Gate{Active: always})
	if len(first) != 2 || first[0].Host != "h00" || first[1].Host != "h01" {
		t.Fatalf("staging first: %+v", first)
	}
	if more := m.Step(now, Gate{Active: always}); len(more) != 0 {
		t.Fatalf("started twice: %+v", more)
	}
	m.Report("h00", 1, job.Succeeded)
	m.Report("h01", 1, job.NoChange)
	if got := m.Step(now, Gate{Active: always}); len(got) != 0 || m.State != Baking {
		t.Fatalf("after staging: %s %+v", m.State, got)
	}
	if got := m.Step(now.Add(29*time.Minute), Gate{Active: always}); len(got) != 0 || m.State != Baking {
		t.Fatalf("still baking: %s", m.State)
	}
	prod := m.Step(now.Add(30*time.Minute), Gate{Active: always})
	if m.State != Running || m.Ring != 1 || len(prod) != 3 {
		t.Fatalf("prod after the bake: %s ring %d, %d jobs", m.State, m.Ring, len(prod))
	}
}

func TestManualPromotion(t *testing.T) {
	m := NewMachine(strategy(PromoteManual), hosts(4), staging)
	now := time.Now()
	for _, j := range m.Step(now, Gate{Active: always}) {
		m.Report(j.Host, j.Attempt, job.Succeeded)
	}
	m.Step(now, Gate{Active: always})
	if m.State != AwaitingPromotion {
		t.Fatalf("state %s", m.State)
	}
	if err := m.Promote(); err != nil || m.State != Running || m.Ring != 1 {
		t.Fatalf("promote: %v %s", err, m.State)
	}
	if err := m.Promote(); err == nil {
		t.Error("promoted twice")
	}
}

// TestStaleReportsAndTimeouts: a completion for another attempt, an
// unknown host or a settled job is refused; a host silent past the job
// timeout counts as failed; hosts without an agent are reported, not
// counted as errors.
func TestStaleReportsAndTimeouts(t *testing.T) {
	s := strategy(PromoteAutomatic)
	s.JobTimeout = duration.Duration(10 * time.Minute)
	m := NewMachine(s, hosts(6), staging)
	now := time.Now()
	jobs := m.Step(now, Gate{Active: always})
	for _, tc := range []struct {
		host    string
		attempt int
	}{{"h00", 2}, {"h09", 1}, {"h05", 1}} {
		if err := m.Report(tc.host, tc.attempt, job.Succeeded); !errors.Is(err, ErrStale) {
			t.Errorf("%s attempt %d: %v", tc.host, tc.attempt, err)
		}
	}
	m.Report(jobs[0].Host, 1, job.Succeeded)
	if err := m.Report(jobs[0].Host, 1, job.Failed); !errors.Is(err, ErrStale) {
		t.Errorf("a second report: %v", err)
	}
	// h01 says nothing: after the timeout it failed, and staging tolerates
	// no error.
	m.Step(now.Add(10*time.Minute), Gate{Active: always})
	if m.State != Halted || m.ring(0)[1].Outcome != job.TimedOut {
		t.Fatalf("after the timeout: %s %+v", m.State, m.ring(0)[1])
	}
	// No agent: reported, not an error.
	m2 := NewMachine(strategy(PromoteAutomatic), hosts(6), staging)
	noAgent := func(h string) bool { return h != "h01" }
	for _, j := range m2.Step(now, Gate{Active: noAgent}) {
		m2.Report(j.Host, j.Attempt, job.Succeeded)
	}
	m2.Step(now, Gate{Active: noAgent})
	if m2.State != Running || m2.Ring != 1 || m2.ring(0)[1].Outcome != job.NoAgent {
		t.Errorf("a host without an agent: %s ring %d %+v", m2.State, m2.Ring, m2.ring(0)[1])
	}
}

// TestErrorsNeverPassThresholdPlusInFlight runs 500 random rollouts
// (outcomes, report order) and checks the invariants at every step: no
// host gets two attempts, rings run in order, and the errors of a ring
// never pass its threshold by more than the ring's concurrency.
func TestErrorsNeverPassThresholdPlusInFlight(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	outcomes := []job.Outcome{job.Succeeded, job.SucceededReboot, job.NoChange, job.Skipped, job.Failed, job.RolledBack}
	for run := range 500 {
		s := strategy(PromoteAutomatic)
		s.Rings[1].MaxConcurrency = Amount{N: 1 + r.IntN(5)}
		s.Rings[1].ErrorThreshold = Amount{N: r.IntN(40), Percent: true}
		s.Rings[0].ErrorThreshold = Amount{N: r.IntN(2)}
		m := NewMachine(s, hosts(5+r.IntN(30)), staging)
		now := time.Now()
		dispatched := map[string]bool{}
		var inFlight []*HostJob
		for step := 0; step < 1000 && (m.State == Running || m.State == Baking); step++ {
			for _, j := range m.Step(now, Gate{Active: always}) {
				if dispatched[j.Host] {
					t.Fatalf("run %d: %s dispatched twice", run, j.Host)
				}
				if j.Ring != m.Ring {
					t.Fatalf("run %d: a ring %d job while ring %d runs", run, j.Ring, m.Ring)
				}
				dispatched[j.Host] = true
				inFlight = append(inFlight, j)
			}
			if len(inFlight) > 0 {
				i := r.IntN(len(inFlight))
				j := inFlight[i]
				inFlight = append(inFlight[:i], inFlight[i+1:]...)
				if err := m.Report(j.Host, j.Attempt, outcomes[r.IntN(len(outcomes))]); err != nil {
					t.Fatal(err)
				}
			}
			_, errs, _, total := m.counts()
			if limit := m.Threshold() + s.Rings[m.Ring].MaxConcurrency.Of(total); errs > limit {
				t.Fatalf("run %d: %d errors in ring %d, threshold %d + concurrency", run, errs, m.Ring, m.Threshold())
			}
			now = now.Add(time.Minute)
		}
		if m.State != Completed && m.State != Halted {
			t.Fatalf("run %d: ended %s", run, m.State)
		}
		if m.State == Completed && len(dispatched) != len(m.Jobs) {
			t.Fatalf("run %d: completed with %d of %d hosts", run, len(dispatched), len(m.Jobs))
		}
	}
}

func TestPauseResumeAbort(t *testing.T) {
	m := NewMachine(strategy(PromoteAutomatic), hosts(6), staging)
	now := time.Now()
	m.Step(now, Gate{Active: always})
	if err := m.Pause(); err != nil {
		t.Fatal(err)
	}
	if got := m.Step(now, Gate{Active: always}); got != nil {
		t.Errorf("a paused rollout started jobs: %+v", got)
	}
	if err := m.Resume(); err != nil || m.State != Running {
		t.Fatalf("resume: %v %s", err, m.State)
	}
	if err := m.Abort(); err != nil || m.Step(now, Gate{Active: always}) != nil || m.Abort() == nil {
		t.Errorf("abort: %v %s", err, m.State)
	}
}

// TestWindowsGateStarts: a host whose window is closed waits — it is not
// started, and not judged for its agent until it could start.
func TestWindowsGateStarts(t *testing.T) {
	m := NewMachine(strategy(PromoteAutomatic), hosts(2), staging)
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	open := map[string]bool{"h00": true}
	asked := map[string]bool{}
	g := Gate{Open: func(h string) bool { return open[h] }, Active: func(h string) bool { asked[h] = true; return h == "h00" }}
	jobs := m.Step(now, g)
	if len(jobs) != 1 || jobs[0].Host != "h00" || m.Jobs[1].Outcome != "" || asked["h01"] {
		t.Fatalf("closed window: started %v, h01 %+v, asked %v", jobs, m.Jobs[1], asked)
	}
	open["h01"] = true
	m.Step(now, g)
	if m.Jobs[1].Outcome != job.NoAgent {
		t.Errorf("once its window opens, a host without an agent is no_agent: %+v", m.Jobs[1])
	}
}

// TestEmptyRingsPassedOver: with manual promotion, a ring no host of the
// plan falls in is neither run nor waited on: a plan without staging
// hosts starts in prod; a middle ring that is empty costs no promotion;
// the last ring with hosts completes without one.
func TestEmptyRingsPassedOver(t *testing.T) {
	s := strategy(PromoteManual)
	none := func(string) []string { return nil }
	m := NewMachine(s, hosts(3), none)
	if m.Ring != 1 || m.State != Running {
		t.Fatalf("no staging host: ring %d %s, want ring 1 running", m.Ring, m.State)
	}
	now := time.Date(2026, 11, 10, 21, 0, 0, 0, time.UTC)
	if got := m.Step(now, Gate{Active: always}); len(got) != 3 {
		t.Fatalf("prod jobs: %d", len(got))
	}

	three := &StrategySpec{Rings: []Ring{s.Rings[0], {Name: "canary", HostGroup: "canary", MaxConcurrency: Amount{N: 1}}, s.Rings[1]}, Promote: PromoteManual}
	m = NewMachine(three, hosts(4), staging)
	for _, j := range m.Step(now, Gate{Active: always}) {
		m.Report(j.Host, 1, job.Succeeded)
	}
	m.Step(now, Gate{Active: always})
	if m.State != AwaitingPromotion || m.Ring != 0 {
		t.Fatalf("after staging: ring %d %s", m.Ring, m.State)
	}
	if err := m.Promote(); err != nil {
		t.Fatal(err)
	}
	if m.Ring != 2 || m.State != Running {
		t.Fatalf("one promotion past the empty canary ring: ring %d %s, want ring 2 running", m.Ring, m.State)
	}
	for _, j := range m.Step(now, Gate{Active: always}) {
		m.Report(j.Host, 1, job.Succeeded)
	}
	// The last ring with hosts completes the rollout: nothing to promote to.
	m.Step(now, Gate{Active: always})
	if m.State != Completed {
		t.Fatalf("after prod: %s", m.State)
	}

	empty := NewMachine(s, nil, none)
	empty.Step(now, Gate{Active: always})
	if empty.State != Completed {
		t.Errorf("no host at all: ring %d %s", empty.Ring, empty.State)
	}
}
