package rollout

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/patchbay/patchbay/job"
)

// Store is what the scheduler needs of the store of plans and rollouts;
// store/internal/rolloutsql implements it.
type Store interface {
	// Plan reads a plan (with its hosts when hosts is set).
	Plan(ctx context.Context, id string, hosts bool) (Row, error)
	// Jobs reads every host's job of a rollout.
	Jobs(ctx context.Context, id string) ([]*HostJob, error)
	// Hosts reads a plan's hosts with their jobs.
	Hosts(ctx context.Context, id string) ([]HostStatus, error)
	// LastSeen says when each host's agent last checked in.
	LastSeen(ctx context.Context) (map[string]time.Time, error)
	// Step writes a step in one transaction fenced by the leader's term:
	// the aggregate (compare and swap on the row's version: ErrConflict),
	// the jobs it starts, the outcomes it settles and its events. It
	// returns how many jobs it started.
	Step(ctx context.Context, fence Fence, r Row, starts []Dispatch, settles []Settle, now time.Time, evs ...Event) (int, error)
}

// Scheduler advances rollouts one step at a time: the gates (an active
// agent, an open window), the machine's step, the signed manifests of the
// jobs it starts, the outcomes it settles and the events of its changes,
// written at once under the leader's fence.
type Scheduler struct {
	Store Store
	// Policy reads the rollout documents of the applied policy (windows).
	Policy func(ctx context.Context) (*Policy, error)
	// Key is the job-signing key.
	Key func(ctx context.Context) (ed25519.PrivateKey, error)
	// AgentStale: a host whose agent was not seen within it has none.
	AgentStale time.Duration
	// Actor names the scheduler in audit entries ("server:replica").
	Actor string
	// Targets are the webhooks notifications go to.
	Targets []string
	// Monitor is what the strategies' gates read (nil: no monitoring is
	// configured, and gates fail closed unless they say otherwise).
	Monitor Monitor
	// Services names the services of hosts (by id), for the gates'
	// {{ .Service }}; nil: none.
	Services func(ctx context.Context, hosts []string) (map[string][]string, error)
}

// StepResult says what a step did.
type StepResult struct {
	// Moved is false when nothing changed (nothing was written).
	Moved bool
	// Started and Settled count the jobs the step started and the
	// outcomes it decided (timed out, no agent).
	Started, Settled int
	// Transition is set when the rollout changed state or ring.
	Transition bool
	State      State
	Ring       string
}

// Step advances the rollout of plan id once, at now.
func (s *Scheduler) Step(ctx context.Context, id string, fence Fence, now time.Time) (StepResult, error) {
	var res StepResult
	row, err := s.Store.Plan(ctx, id, false)
	if err != nil {
		return res, err
	}
	m, p := row.Machine, row.Plan
	if m == nil || p.StrategySpec == nil {
		return res, fmt.Errorf("plan %s is active without a machine", id)
	}
	gates := p.StrategySpec.Gates
	switch {
	case m.State == Paused:
		return res, nil // waits for people
	case gates == nil && (m.State == AwaitingPromotion || m.State == Baking && now.Before(m.BakeUntil)):
		return res, nil // waits for people or the clock
	}
	if m.Jobs, err = s.Store.Jobs(ctx, id); err != nil {
		return res, err
	}
	m.Strategy = p.StrategySpec
	before := map[string]job.Outcome{}
	for _, j := range m.Jobs {
		before[j.Host] = j.Outcome
	}
	state, ring, bake := m.State, m.Ring, m.BakeUntil
	// When hosts were last seen, read when a job may start.
	var seen map[string]time.Time
	var seenErr error
	lastSeen := func(h string) (time.Time, bool) {
		if seen == nil && seenErr == nil {
			seen, seenErr = s.Store.LastSeen(ctx)
		}
		t, ok := seen[h]
		return t, ok
	}
	rp, err := s.Policy(ctx)
	if err != nil {
		return res, err
	}
	// The plan's hosts (targets, windows) are read when a job may start.
	var hostsByID map[string]*PlanHost
	var hostsErr error
	hostOf := func(h string) *PlanHost {
		if hostsByID == nil && hostsErr == nil {
			var rows []HostStatus
			if rows, hostsErr = s.Store.Hosts(ctx, id); hostsErr == nil {
				hostsByID = make(map[string]*PlanHost, len(rows))
				for i := range rows {
					hostsByID[rows[i].ID] = &rows[i].PlanHost
				}
			}
		}
		return hostsByID[h]
	}
	timeout := p.StrategySpec.Timeout()
	windowEnd := map[string]time.Time{}
	gate := Gate{
		Active: func(h string) bool { t, ok := lastSeen(h); return ok && now.Sub(t) < s.AgentStale },
		Open: func(h string) bool {
			if p.Emergency {
				return true
			}
			ph := hostOf(h)
			if ph == nil {
				return false
			}
			if ph.Window == "" {
				return true // no window covers the host: any time
			}
			for _, w := range rp.Windows {
				if w.Name == ph.Window {
					if _, end, ok := w.OpenAt(now); ok && w.Allows(now, timeout) {
						windowEnd[h] = end
						return true
					}
					return false
				}
			}
			return false // the window was deleted: wait for people to decide
		},
	}
	var gated gateOutcome
	if gates != nil {
		vars, baseline, err := s.gateVars(ctx, p, m, hostOf)
		if err != nil {
			return res, err
		}
		if hostsErr != nil {
			return res, hostsErr
		}
		gated = evalGates(ctx, s.Monitor, gates, m, now, vars, baseline)
		open := gate.Open
		gate.Open = func(h string) bool {
			return (!m.RingStarted.IsZero() || gatesPassed(gates, m, PhaseBefore)) && open(h)
		}
		gate.Baked = func() bool { return gatesPassed(gates, m, PhaseBake) }
	}
	var dispatched []*HostJob
	if gated.halt != nil {
		m.State, m.Why, m.Halt = Halted, gated.halt.Reason, gated.halt
	} else {
		dispatched = m.Step(now, gate)
	}
	if err := errors.Join(hostsErr, seenErr); err != nil {
		return res, err
	}
	key, err := s.Key(ctx)
	if err != nil {
		return res, err
	}
	var starts []Dispatch
	for _, j := range dispatched {
		signed, err := job.Sign(s.manifest(p, j, hostOf(j.Host), now, windowEnd), key)
		if err != nil {
			return res, err
		}
		b, err := json.Marshal(signed)
		if err != nil {
			return res, err
		}
		starts = append(starts, Dispatch{Host: j.Host, Attempt: j.Attempt, Started: j.Started, Job: string(b)})
	}
	if m.State == Halted && state != Halted {
		m.HaltedAt = now
	}
	var reverted []string
	if m.State == Halted && state != Halted && p.StrategySpec.RollbackOnHalt {
		for _, j := range m.Jobs {
			if j.Outcome != job.Succeeded && j.Outcome != job.SucceededReboot || before[j.Host] == "" {
				continue
			}
			ph := hostOf(j.Host)
			if ph == nil {
				if hostsErr != nil {
					return res, hostsErr
				}
				continue
			}
			signed, err := job.Sign(s.revertManifest(p, j, ph, m.Why, now), key)
			if err != nil {
				return res, err
			}
			b, err := json.Marshal(signed)
			if err != nil {
				return res, err
			}
			starts = append(starts, Dispatch{Host: j.Host, Attempt: j.Attempt + 1, Started: now, Job: string(b), Revert: true})
			reverted = append(reverted, ph.Hostname)
		}
		m.Reverting = reverted
	}
	var settles []Settle
	for _, j := range m.Jobs {
		if j.Outcome != "" && before[j.Host] == "" {
			settles = append(settles, Settle{Host: j.Host, Attempt: j.Attempt, Outcome: j.Outcome})
		}
	}
	evs := s.transitionEvents(p, m, state, ring)
	if len(starts) == 0 && len(settles) == 0 && len(evs) == 0 && m.State == state && m.Ring == ring && m.BakeUntil.Equal(bake) && !gated.changed {
		return res, nil // nothing moved
	}
	n, err := s.Store.Step(ctx, fence, row, starts, settles, now, evs...)
	if err != nil {
		return res, err
	}
	return StepResult{Moved: true, Started: n, Settled: len(settles), Transition: m.State != state || m.Ring != ring,
		State: m.State, Ring: p.StrategySpec.Rings[m.Ring].Name}, nil
}

// gateVars gives the gates' substitutions of a ring's hosts (-1: the
// hosts whose jobs started, for the background phase), and of the
// current ring's baseline: the hosts of later rings not started yet that
// share a service with one of the ring's (any of them when the ring's
// hosts have no service).
func (s *Scheduler) gateVars(ctx context.Context, p *Plan, m *Machine, hostOf func(string) *PlanHost) (func(ring int) []GateVars, func() []GateVars, error) {
	var services map[string][]string
	if s.Services != nil && p.StrategySpec.Gates.needServices() {
		ids := make([]string, 0, len(m.Jobs))
		for _, j := range m.Jobs {
			ids = append(ids, j.Host)
		}
		var err error
		if services, err = s.Services(ctx, ids); err != nil {
			return nil, nil, err
		}
	}
	name := func(h string) string {
		if ph := hostOf(h); ph != nil && ph.Hostname != "" {
			return ph.Hostname
		}
		return h
	}
	baseline := func() []GateVars {
		ringSvcs := map[string]bool{}
		for _, j := range m.Jobs {
			if j.Ring == m.Ring {
				for _, sv := range services[j.Host] {
					ringSvcs[sv] = true
				}
			}
		}
		var out []GateVars
		for _, j := range m.Jobs {
			if j.Ring <= m.Ring || j.Attempt > 0 {
				continue
			}
			rn := p.StrategySpec.Rings[j.Ring].Name
			if len(ringSvcs) == 0 {
				out = append(out, GateVars{Host: name(j.Host), Ring: rn})
				continue
			}
			for _, sv := range services[j.Host] {
				if ringSvcs[sv] {
					out = append(out, GateVars{Host: name(j.Host), Service: sv, Ring: rn})
				}
			}
		}
		return out
	}
	return func(ring int) []GateVars {
		var out []GateVars
		for _, j := range m.Jobs {
			if ring >= 0 && j.Ring != ring || ring < 0 && j.Attempt == 0 {
				continue
			}
			rn := p.StrategySpec.Rings[j.Ring].Name
			svcs := services[j.Host]
			if len(svcs) == 0 {
				svcs = []string{""}
			}
			for _, sv := range svcs {
				out = append(out, GateVars{Host: name(j.Host), Service: sv, Ring: rn})
			}
		}
		return out
	}, baseline, nil
}

// manifest is the work order of a dispatched job: the host's exact
// versions, the ring's checks, the strategy's reboot and restarts, valid
// until the window's end less the job timeout.
func (s *Scheduler) manifest(p *Plan, j *HostJob, ph *PlanHost, now time.Time, windowEnd map[string]time.Time) job.Manifest {
	timeout := p.StrategySpec.Timeout()
	mf := job.Manifest{JobID: job.ID(p.ID, j.Host), Attempt: j.Attempt, HostID: j.Host, Rollout: p.ID, Ring: p.StrategySpec.Rings[j.Ring].Name,
		PostChecks: p.StrategySpec.Rings[j.Ring].HealthChecks, Reboot: p.StrategySpec.Reboot, RestartServices: p.StrategySpec.RestartServices,
		Timeout: timeout, IssuedAt: now, NotAfter: now.Add(timeout), RebootBefore: windowEnd[j.Host]}
	if end, ok := windowEnd[j.Host]; ok {
		mf.NotAfter = end.Add(-timeout)
	}
	for _, t := range ph.Targets {
		mf.Install = append(mf.Install, job.Package{Name: t.Name, Version: t.To})
	}
	return mf
}

// revertManifest puts a host that succeeded back at its versions from
// before the rollout, once it halted: at once (no window: a halted
// rollout is an incident), without the ring's checks.
func (s *Scheduler) revertManifest(p *Plan, j *HostJob, ph *PlanHost, why string, now time.Time) job.Manifest {
	timeout := p.StrategySpec.Timeout()
	mf := job.Manifest{JobID: job.ID(p.ID, j.Host), Attempt: j.Attempt + 1, HostID: j.Host, Rollout: p.ID, Ring: p.StrategySpec.Rings[j.Ring].Name,
		Reboot: p.StrategySpec.Reboot, RestartServices: p.StrategySpec.RestartServices, Timeout: timeout, IssuedAt: now, NotAfter: now.Add(timeout), Revert: why}
	for _, t := range ph.Targets {
		mf.Install = append(mf.Install, job.Package{Name: t.Name, Version: t.From})
	}
	return mf
}

// transitionEvents are the audit entries and notifications of a step's
// change of state or ring.
func (s *Scheduler) transitionEvents(p *Plan, m *Machine, state State, ring int) []Event {
	var evs []Event
	ev := func(action, notify string, extra map[string]any) {
		e := Event{Actor: s.Actor, Action: action, Object: "plan/" + p.ID, Change: extra}
		if notify != "" {
			e.Notify, e.Targets, e.Payload = notify, s.Targets, NewPlanEvent(notify, p, extra)
		}
		evs = append(evs, e)
	}
	if m.Ring != ring {
		ev("rollout.promote", "rollout.ring_promoted", map[string]any{"from_ring": p.StrategySpec.Rings[ring].Name, "to_ring": p.StrategySpec.Rings[m.Ring].Name, "by": s.Actor})
	}
	if m.State == state {
		return evs
	}
	switch m.State {
	case Halted:
		change := map[string]any{"ring": p.StrategySpec.Rings[m.Ring].Name, "why": m.Why}
		if m.Halt != nil {
			change["gate"] = m.Halt // the query, the values and the threshold
		}
		if len(m.Reverting) > 0 {
			change["reverting"] = m.Reverting
		}
		ev("rollout.halt", "rollout.halted", change)
	case Completed:
		ev("rollout.complete", "rollout.completed", map[string]any{"ring": p.StrategySpec.Rings[m.Ring].Name})
	default:
		ev("rollout."+string(m.State), "", map[string]any{"from": state, "ring": p.StrategySpec.Rings[m.Ring].Name})
	}
	return evs
}

// PlanEvent is the generic JSON body of a notification.
type PlanEvent struct {
	Event     string         `json:"event"`
	Plan      string         `json:"plan"`
	Strategy  string         `json:"strategy"`
	Emergency bool           `json:"emergency,omitempty"`
	Hosts     int            `json:"hosts"`
	Required  int            `json:"required_approvers,omitempty"`
	Closes    map[string]int `json:"closes"`
	Detail    map[string]any `json:"detail,omitempty"`
	Rings     []string       `json:"rings"`
	State     PlanState      `json:"state"`
}

// NewPlanEvent is the notification body of an event of plan p.
func NewPlanEvent(event string, p *Plan, detail map[string]any) PlanEvent {
	e := PlanEvent{Event: event, Plan: p.ID, Strategy: p.Strategy, Emergency: p.Emergency, Required: p.Required, Closes: map[string]int{}, Detail: detail, State: p.State}
	for _, r := range p.Rings {
		e.Hosts += r.Hosts
		e.Rings = append(e.Rings, r.Name)
		for pr, n := range r.Closes {
			e.Closes[pr] += n
		}
	}
	return e
}
