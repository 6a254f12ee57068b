package rollout

import (
	"errors"
	"fmt"
	"time"

	"github.com/patchbay/patchbay/job"
)

// State is a rollout's.
type State string

// States.
const (
	Running           State = "running"
	Baking            State = "baking"
	AwaitingPromotion State = "awaiting_promotion"
	Paused            State = "paused"
	Halted            State = "halted"
	Completed         State = "completed"
	Aborted           State = "aborted"
)

// HostJob is one host's job in a rollout.
type HostJob struct {
	Host    string      `json:"host"`
	Ring    int         `json:"ring"`
	Attempt int         `json:"attempt"` // 0 until started
	Started time.Time   `json:"started,omitzero"`
	Outcome job.Outcome `json:"outcome,omitempty"`
}

// Machine is a rollout's state, persisted as it is: every method is a
// transition, deterministic in its inputs (the time is given).
type Machine struct {
	Strategy  *StrategySpec `json:"-"`
	State     State         `json:"state"`
	Ring      int           `json:"ring"`
	Jobs      []*HostJob    `json:"jobs"` // in dispatch order within rings
	BakeUntil time.Time     `json:"bake_until,omitzero"`
	Why       string        `json:"why,omitempty"` // of a halt
	// PausedFrom is what Resume returns to.
	PausedFrom State `json:"paused_from,omitempty"`
	// RingHosts counts the hosts of each ring, to pass over the empty ones.
	RingHosts []int `json:"ring_hosts,omitempty"`
	// RingStarted is when the current ring's first job started (zero
	// before: the ring's before-phase gates are measured).
	RingStarted time.Time `json:"ring_started,omitzero"`
	// GateStates are the strategy's gates' measurements, by
	// kind/name/phase; Halt is the gate failure that halted the rollout.
	GateStates map[string]*GateState `json:"gate_states,omitempty"`
	Halt       *GateHalt             `json:"gate_halt,omitempty"`
	// Reverting names the hosts the halt put back at their previous
	// versions (RolloutStrategy rollbackOnHalt).
	Reverting []string `json:"reverting,omitempty"`
	// HaltedAt is when the scheduler halted the rollout.
	HaltedAt time.Time `json:"halted_at,omitzero"`
}

// NewMachine splits the target into the strategy's rings; the rollout
// starts running its first ring that has hosts.
func NewMachine(s *StrategySpec, target []string, groupsOf func(string) []string) *Machine {
	split := s.Split(target, groupsOf)
	sizes := make([]int, len(split))
	var jobs []*HostJob
	for i, hosts := range split {
		sizes[i] = len(hosts)
		for _, h := range hosts {
			jobs = append(jobs, &HostJob{Host: h, Ring: i})
		}
	}
	m := StartMachine(s, sizes)
	m.Jobs = jobs
	return m
}

// StartMachine is the machine of a rollout that starts now, its rings
// holding ringHosts hosts each (a plan's RingPreview counts): it runs the
// first ring with hosts.
func StartMachine(s *StrategySpec, ringHosts []int) *Machine {
	m := &Machine{Strategy: s, State: Running, Ring: -1, RingHosts: append([]int{}, ringHosts...)}
	m.next()
	if m.State == Completed {
		// No host at all: ring 0 runs empty, and Step completes it.
		m.Ring, m.State = 0, Running
	}
	return m
}

// hasHosts says whether ring i has hosts. A machine stored before
// RingHosts was kept counts every ring as having some.
func (m *Machine) hasHosts(i int) bool {
	if m.RingHosts == nil {
		return true
	}
	return i < len(m.RingHosts) && m.RingHosts[i] > 0
}

func (m *Machine) ring(i int) []*HostJob {
	var out []*HostJob
	for _, j := range m.Jobs {
		if j.Ring == i {
			out = append(out, j)
		}
	}
	return out
}

// Counts of the current ring.
func (m *Machine) counts() (inFlight, errs, done, total int) {
	for _, j := range m.ring(m.Ring) {
		total++
		switch {
		case j.Outcome != "":
			done++
			if j.Outcome.Error() {
				errs++
			}
		case j.Attempt > 0:
			inFlight++
		}
	}
	return
}

// Threshold is the number of errors the current ring tolerates.
func (m *Machine) Threshold() int {
	return m.Strategy.Rings[m.Ring].ErrorThreshold.Of(len(m.ring(m.Ring)))
}

// Gate says which hosts may start a job now: Active, whether the host has
// an active agent (else it is settled as no_agent); Open, whether its
// maintenance window lets a job start (else it waits). Nil allows all.
type Gate struct {
	Active func(host string) bool
	Open   func(host string) bool
	// Baked, when set, says whether the ring's bake gates have taken
	// their measurements: the bake does not end before.
	Baked func() bool
}

// Step advances the rollout at now: jobs past the strategy's job timeout
// time out; hosts without an active agent are settled as no_agent; a ring
// whose errors pass its threshold halts; a finished ring bakes, then is
// promoted (automatically or by Promote); and, while running, new jobs are
// started up to the ring's concurrency — none once the errors pass the
// threshold, so they never pass it by more than the jobs that were in
// flight. It returns the jobs to dispatch (their attempt set).
func (m *Machine) Step(now time.Time, g Gate) []*HostJob {
	if m.State == Baking && !now.Before(m.BakeUntil) && (g.Baked == nil || g.Baked()) {
		if m.Strategy.Promote == PromoteAutomatic || m.lastRing() {
			m.next()
		} else {
			m.State = AwaitingPromotion
		}
	}
	if m.State != Running {
		return nil
	}
	timeout := m.Strategy.Timeout()
	for _, j := range m.ring(m.Ring) {
		if j.Outcome == "" && j.Attempt > 0 && timeout > 0 && now.Sub(j.Started) >= timeout {
			j.Outcome = job.TimedOut
		}
	}
	inFlight, errs, done, total := m.counts()
	if errs > m.Threshold() {
		m.State, m.Why = Halted, fmt.Sprintf("ring %s: %d errors, more than its threshold of %d", m.Strategy.Rings[m.Ring].Name, errs, m.Threshold())
		return nil
	}
	if done == total {
		m.State, m.BakeUntil = Baking, now.Add(time.Duration(m.Strategy.Rings[m.Ring].Bake))
		return m.Step(now, g) // a zero bake promotes at once
	}
	room := m.Strategy.Rings[m.Ring].MaxConcurrency.Of(total) - inFlight
	var out []*HostJob
	for _, j := range m.ring(m.Ring) {
		if room <= 0 {
			break
		}
		if j.Attempt > 0 || j.Outcome != "" {
			continue
		}
		if g.Open != nil && !g.Open(j.Host) {
			continue // its window is closed: it waits
		}
		if g.Active != nil && !g.Active(j.Host) {
			j.Outcome = job.NoAgent // judged when it could start
			continue
		}
		j.Attempt, j.Started = 1, now
		if m.RingStarted.IsZero() {
			m.RingStarted = now
		}
		out = append(out, j)
		room--
	}
	if len(out) == 0 {
		if _, _, done, total := m.counts(); done == total {
			return m.Step(now, g)
		}
	}
	return out
}

// lastRing says no later ring has hosts: after it there is nothing to
// promote to, and the rollout completes when it has baked.
func (m *Machine) lastRing() bool {
	for i := m.Ring + 1; i < len(m.Strategy.Rings); i++ {
		if m.hasHosts(i) {
			return false
		}
	}
	return true
}

// next starts the next ring that has hosts: a ring no host falls in
// (no staging host in this plan) is passed over, never baked nor waited
// on for a promotion of its own.
func (m *Machine) next() {
	for m.Ring+1 < len(m.Strategy.Rings) {
		m.Ring++
		if m.hasHosts(m.Ring) {
			m.State, m.BakeUntil, m.RingStarted = Running, time.Time{}, time.Time{}
			return
		}
	}
	m.State = Completed
}

// ErrStale is a report of an attempt that is not the host's current one
// (a stale completion): refused.
var ErrStale = errors.New("stale job report")

// Report records a host's outcome for an attempt. A report for another
// attempt, for a host not in the rollout, or for a job already settled is
// refused.
func (m *Machine) Report(host string, attempt int, o job.Outcome) error {
	for _, j := range m.Jobs {
		if j.Host != host {
			continue
		}
		if j.Attempt == 0 || attempt != j.Attempt || j.Outcome != "" {
			return fmt.Errorf("%w: host %s attempt %d (current attempt %d, outcome %q)", ErrStale, host, attempt, j.Attempt, j.Outcome)
		}
		j.Outcome = o
		return nil
	}
	return fmt.Errorf("%w: host %s is not in this rollout", ErrStale, host)
}

// Promote starts the next ring of a rollout awaiting promotion.
func (m *Machine) Promote() error {
	if m.State != AwaitingPromotion {
		return fmt.Errorf("promote: the rollout is %s, not awaiting promotion", m.State)
	}
	m.next()
	return nil
}

// Pause stops starting jobs (those in flight finish); Resume goes on.
func (m *Machine) Pause() error {
	switch m.State {
	case Running, Baking, AwaitingPromotion:
		m.PausedFrom, m.State = m.State, Paused
		return nil
	}
	return fmt.Errorf("pause: the rollout is %s", m.State)
}

// Resume continues a paused rollout.
func (m *Machine) Resume() error {
	if m.State != Paused {
		return fmt.Errorf("resume: the rollout is %s, not paused", m.State)
	}
	m.State = m.PausedFrom
	return nil
}

// Abort ends the rollout; no job starts after it.
func (m *Machine) Abort() error {
	switch m.State {
	case Completed, Aborted:
		return fmt.Errorf("abort: the rollout is %s", m.State)
	}
	m.State = Aborted
	return nil
}
