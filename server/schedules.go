package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/patchbay/patchbay/api"
	"github.com/patchbay/patchbay/api/rolloutapi"
	"github.com/patchbay/patchbay/fleet"
	"github.com/patchbay/patchbay/job"
	"github.com/patchbay/patchbay/policy"
	"github.com/patchbay/patchbay/rollout"
)

// The autopilot: the leader evaluates the PatchSchedules at every step
// tick. An opening of a schedule's window is planned once — the store's
// (schedule, opening) key refuses a second run, across restarts,
// replicas and leader changes; a plan the approval rules approve starts
// at once, one awaiting people starts once they have approved it.

// ScheduleResult says what an evaluation did.
type ScheduleResult struct {
	// Planned counts the plans made, Empty the openings that planned
	// nothing, Started the scheduled plans started.
	Planned, Empty, Started int
}

// autopilotInputs is what the schedules of one evaluation plan with,
// read once.
type autopilotInputs struct {
	hosts    []rollout.HostInput
	active   func(string) bool
	targeted map[string]map[string]bool
	halted   map[string]map[string]bool // schedule → hosts
	patched  map[string]map[string]bool
}

func (s *Server) scheduleLogged(ctx context.Context, fence rollout.Fence) {
	if r, err := s.EvaluateSchedules(ctx, fence); err != nil && ctx.Err() == nil {
		s.log.Warn("schedule evaluation", "err", err)
	} else if r.Planned+r.Started > 0 {
		s.log.Info("schedules evaluated", "planned", r.Planned, "empty", r.Empty, "started", r.Started)
	}
}

// EvaluateSchedules runs the schedules not paused: each opening of their
// windows open now that they have not run is planned; with a schedule's
// emergency lane, new emergency patches are planned at once (looked for
// at most every EmergencyEvery); then the approved scheduled plans start. Writes
// are fenced by the leader's term (zero: not fenced).
func (s *Server) EvaluateSchedules(ctx context.Context, fence rollout.Fence) (ScheduleResult, error) {
	s.scheduleMu.Lock()
	defer s.scheduleMu.Unlock()
	var res ScheduleResult
	set, rp, err := s.rolloutPolicy(ctx)
	if err != nil {
		return res, err
	}
	now := s.cfg.Now().UTC()
	scheds := rollout.SchedulesOf(set)
	var errs []error
	if len(scheds) > 0 {
		pauses, err := s.db.Rollouts.Pauses(ctx)
		if err != nil {
			return res, err
		}
		var in *autopilotInputs
		load := func() (*autopilotInputs, error) {
			if in != nil {
				return in, nil
			}
			var err error
			in, err = s.autopilotInputs(ctx, set, rollout.Selector{})
			return in, err
		}
		var ein *autopilotInputs // the emergency lanes'
		var elooked bool

		// The emergency lanes read every host: at most every
		// EmergencyEvery of real time (not the injected clock's).
		emergency := s.lastEmergency.IsZero() || time.Since(s.lastEmergency) >= s.cfg.EmergencyEvery
		for _, sc := range scheds {
			if _, paused := pauses[sc.Name]; paused {
				continue
			}
			for _, o := range sc.Spec.Due(rp, now) {
				ran, err := s.db.Rollouts.Ran(ctx, sc.Name, o.Key())
				if err != nil {
					return res, err
				}
				if ran {
					continue
				}
				in, err := load()
				if err != nil {
					return res, err
				}
				if err := s.runSchedule(ctx, fence, sc, &o, in, rp, now, &res); err != nil {
					errs = append(errs, err)
				}
			}
			if sc.Spec.Emergency && emergency {
				if ein == nil && elooked {
					continue // no host has an emergency-lane finding
				}
				if ein == nil {
					// Only the hosts with an open emergency-lane finding:
					// none, most of the time.
					elooked = true
					hosts, err := s.emergencyHosts(ctx, now)
					if err != nil {
						return res, err
					}
					if len(hosts) == 0 {
						continue
					}
					if ein, err = s.autopilotInputs(ctx, set, rollout.Selector{Hosts: hosts}); err != nil {
						return res, err
					}
				}
				if err := s.runSchedule(ctx, fence, sc, nil, ein, rp, now, &res); err != nil {
					errs = append(errs, err)
				}
			}
		}
		if emergency {
			s.lastEmergency = time.Now()
		}
	}
	// Approved scheduled plans start: by the rules at once, by people
	// once they have approved.
	ids, err := s.db.Rollouts.Approved(ctx)
	if err != nil {
		return res, errors.Join(append(errs, err)...)
	}
	for _, id := range ids {
		row, err := s.db.Rollouts.Plan(ctx, id, false)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if row.Plan.Schedule == "" {
			continue // a person's plan: a person starts it
		}
		if _, err := s.startPlan(ctx, id, s.actor(), rp); err != nil {
			errs = append(errs, fmt.Errorf("start scheduled plan %s: %w", id, err))
			continue
		}
		res.Started++
	}
	if res.Started > 0 {
		s.wakeScheduler()
	}
	return res, errors.Join(errs...)
}

// runSchedule plans one opening of a schedule (nil: its emergency lane)
// and stores the plan under the run's key.
func (s *Server) runSchedule(ctx context.Context, fence rollout.Fence, sc rollout.NamedSchedule, o *rollout.Opening, in *autopilotInputs, rp *rollout.Policy, now time.Time, res *ScheduleResult) error {
	id, err := newPlanID(now)
	if err != nil {
		return err
	}
	a := &rollout.Autopilot{Name: sc.Name, Spec: sc.Spec, Policy: rp, Now: now, Hosts: in.hosts, Active: in.active, Targeted: in.targeted, Halted: in.halted[sc.Name], Patched: in.patched}
	p, pv, err := a.Plan(id, o)
	if err != nil {
		return err
	}
	actor := s.actor()
	var key string
	var evs []rollout.Event
	if o == nil {
		if p == nil {
			return nil // no new emergency patch
		}
		key = rollout.EmergencyKey(p)
	} else {
		key = o.Key()
	}
	if p == nil {
		evs = append(evs, rollout.Event{Actor: actor, Action: "schedule.run", Object: "schedule/" + sc.Name,
			Change: map[string]any{"opening": key, "plan": "", "left_out": pv.LeftOut}})
	} else {
		p.CreatedBy, p.CreatedAt = actor, now
		ev := rollout.Event{Actor: actor, Action: "plan.create", Object: "plan/" + p.ID,
			Change: map[string]any{"schedule": sc.Name, "opening": key, "emergency": p.Emergency, "hosts": len(p.Hosts), "state": p.State,
				"required_approvers": p.Required, "auto_approved_by": p.AutoRules, "left_out": pv.LeftOut}}
		if p.State == rollout.AwaitingApproval {
			ev.Notify, ev.Payload, ev.Targets = "plan.awaiting_approval", rollout.NewPlanEvent("plan.awaiting_approval", p, map[string]any{"schedule": sc.Name}), s.notifyTargets()
		}
		evs = append(evs, ev)
		if len(pv.Bypassed) > 0 {
			evs = append(evs, rollout.Event{Actor: actor, Action: "schedule.age_gate_bypass", Object: "plan/" + p.ID,
				Change: map[string]any{"schedule": sc.Name, "bypassed": pv.Bypassed}})
		}
	}
	err = s.db.Rollouts.CreateScheduled(ctx, fence, sc.Name, key, p, now, evs...)
	if errors.Is(err, rollout.ErrRan) {
		return nil // another replica or an earlier leader ran it
	}
	if err != nil {
		return err
	}
	if p == nil {
		res.Empty++
		return nil
	}
	res.Planned++
	s.log.Info("scheduled plan created", "schedule", sc.Name, "opening", key, "plan", p.ID, "hosts", len(p.Hosts), "state", p.State)
	if p.State == rollout.Approved {
		if _, err := s.startPlan(ctx, p.ID, actor, rp); err != nil {
			return fmt.Errorf("start scheduled plan %s: %w", p.ID, err)
		}
		res.Started++
	}
	return nil
}

// autopilotInputs reads the planning inputs of the hosts sel takes, which agents are
// active, what the running rollouts and the plans not started (awaiting
// approval, approved) target, and the hosts of halted rollouts by
// schedule.
func (s *Server) autopilotInputs(ctx context.Context, set *policy.Set, sel rollout.Selector) (*autopilotInputs, error) {
	hosts, err := s.planInputs(ctx, set, sel)
	if err != nil {
		return nil, err
	}
	seen, err := s.db.Rollouts.LastSeen(ctx)
	if err != nil {
		return nil, err
	}
	now := s.cfg.Now().UTC()
	in := &autopilotInputs{hosts: hosts, targeted: map[string]map[string]bool{}, halted: map[string]map[string]bool{},
		active: func(h string) bool { t, ok := seen[h]; return ok && now.Sub(t) < s.cfg.AgentStale }}
	// What running rollouts and plans not started yet target.
	active, err := s.db.Rollouts.Active(ctx)
	if err != nil {
		return nil, err
	}
	undecided, err := s.db.Rollouts.Undecided(ctx)
	if err != nil {
		return nil, err
	}
	for _, id := range append(active, undecided...) {
		hs, err := s.db.Rollouts.Hosts(ctx, id)
		if err != nil {
			return nil, err
		}
		for _, h := range hs {
			if in.targeted[h.ID] == nil {
				in.targeted[h.ID] = map[string]bool{}
			}
			for _, t := range h.Targets {
				in.targeted[h.ID][t.Name+" "+t.To] = true
			}
		}
	}
	// What rollouts ended in the last day patched: until the agent
	// reports again, its updates still list it.
	in.patched = map[string]map[string]bool{}
	ended, err := s.db.Rollouts.Ended(ctx, now.Add(-PatchedMemory))
	if err != nil {
		return nil, err
	}
	for _, id := range ended {
		hs, err := s.db.Rollouts.Hosts(ctx, id)
		if err != nil {
			return nil, err
		}
		for _, h := range hs {
			if h.Outcome != job.Succeeded {
				continue
			}
			if in.patched[h.ID] == nil {
				in.patched[h.ID] = map[string]bool{}
			}
			for _, t := range h.Targets {
				in.patched[h.ID][t.Name+" "+t.From+" "+t.To] = true
			}
		}
	}
	halted, err := s.db.Rollouts.Halted(ctx)
	if err != nil {
		return nil, err
	}
	for _, id := range halted {
		row, err := s.db.Rollouts.Plan(ctx, id, true)
		if err != nil {
			return nil, err
		}
		if row.Plan.Schedule == "" {
			continue
		}
		m := in.halted[row.Plan.Schedule]
		if m == nil {
			m = map[string]bool{}
			in.halted[row.Plan.Schedule] = m
		}
		for _, h := range row.Plan.Hosts {
			m[h.ID] = true
		}
	}
	return in, nil
}

// emergencyHosts are the hosts with an open finding in the emergency
// lane.
func (s *Server) emergencyHosts(ctx context.Context, now time.Time) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	f := fleet.FindingFilter{Status: fleet.StatusOpen, Lane: string(fleet.LaneEmergency), Now: now, Limit: 1000}
	for {
		page, err := s.db.Findings.Query(ctx, f, nil)
		if err != nil {
			return nil, fmt.Errorf("emergency-lane findings: %w", err)
		}
		for _, r := range page.Findings {
			if !seen[r.HostID] {
				seen[r.HostID] = true
				out = append(out, r.HostID)
			}
		}
		if page.Next == "" {
			return out, nil
		}
		f.After = page.Next
	}
}

// PatchedMemory is how long after a rollout ends an update its job
// installed, still reported by the host as it was, counts as the agent's
// report not made yet.
const PatchedMemory = 24 * time.Hour

// ---- the API ----

func (s *Server) scheduleOf(ctx context.Context, name string) (*policy.Set, *rollout.Policy, rollout.NamedSchedule, error) {
	set, rp, err := s.rolloutPolicy(ctx)
	if err != nil {
		return nil, nil, rollout.NamedSchedule{}, err
	}
	for _, sc := range rollout.SchedulesOf(set) {
		if sc.Name == name {
			return set, rp, sc, nil
		}
	}
	return nil, nil, rollout.NamedSchedule{}, errNotFound("no such PatchSchedule: " + name)
}

func (s *Server) listSchedules(w http.ResponseWriter, r *http.Request, _ *caller) error {
	ctx := r.Context()
	set, rp, err := s.rolloutPolicy(ctx)
	if err != nil {
		return err
	}
	pauses, err := s.db.Rollouts.Pauses(ctx)
	if err != nil {
		return err
	}
	now := s.cfg.Now().UTC()
	out := []rolloutapi.ScheduleSummary{}
	for _, sc := range rollout.SchedulesOf(set) {
		sum := rolloutapi.ScheduleSummary{Name: sc.Name, Spec: sc.Spec, Next: sc.Spec.Openings(rp, now, 1)}
		if p, ok := pauses[sc.Name]; ok {
			sum.Paused = &p
		}
		runs, err := s.db.Rollouts.Runs(ctx, sc.Name, 1)
		if err != nil {
			return err
		}
		if len(runs) > 0 {
			sum.LastRun = &runs[0]
		}
		out = append(out, sum)
	}
	return writeJSON(w, http.StatusOK, rolloutapi.ScheduleList{Schedules: out})
}

// getSchedule shows a schedule: its next openings with what each would
// patch now and why the rest is left out, the emergency lane's, and its
// recent runs.
func (s *Server) getSchedule(w http.ResponseWriter, r *http.Request, _ *caller) error {
	ctx := r.Context()
	set, rp, sc, err := s.scheduleOf(ctx, r.PathValue("name"))
	if err != nil {
		return err
	}
	st, err := s.scheduleStatus(ctx, set, rp, sc)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, st)
}

// PreviewOpenings is how many openings a schedule's preview shows.
const PreviewOpenings = 5

func (s *Server) scheduleStatus(ctx context.Context, set *policy.Set, rp *rollout.Policy, sc rollout.NamedSchedule) (rolloutapi.ScheduleStatus, error) {
	now := s.cfg.Now().UTC()
	st := rolloutapi.ScheduleStatus{ScheduleSummary: rolloutapi.ScheduleSummary{Name: sc.Name, Spec: sc.Spec}, Openings: []rolloutapi.OpeningPreview{}}
	pauses, err := s.db.Rollouts.Pauses(ctx)
	if err != nil {
		return st, err
	}
	if p, ok := pauses[sc.Name]; ok {
		st.Paused = &p
	}
	if st.Runs, err = s.db.Rollouts.Runs(ctx, sc.Name, 20); err != nil {
		return st, err
	}
	if len(st.Runs) > 0 {
		st.LastRun = &st.Runs[0]
	}
	in, err := s.autopilotInputs(ctx, set, rollout.Selector{})
	if err != nil {
		return st, err
	}
	a := &rollout.Autopilot{Name: sc.Name, Spec: sc.Spec, Policy: rp, Now: now, Hosts: in.hosts, Active: in.active, Targeted: in.targeted, Halted: in.halted[sc.Name], Patched: in.patched}
	for _, o := range sc.Spec.Openings(rp, now, PreviewOpenings) {
		_, pv, err := a.Plan("preview", &o)
		if err != nil {
			return st, err
		}
		ran, err := s.db.Rollouts.Ran(ctx, sc.Name, o.Key())
		if err != nil {
			return st, err
		}
		st.Openings = append(st.Openings, rolloutapi.OpeningPreview{Opening: o, Ran: ran, Preview: pv})
		st.Next = append(st.Next, o)
	}
	if len(st.Next) > 1 {
		st.Next = st.Next[:1]
	}
	if sc.Spec.Emergency {
		_, pv, err := a.Plan("preview", nil)
		if err != nil {
			return st, err
		}
		st.Emergency = &pv
	}
	return st, nil
}

type pauseBody struct {
	Reason string `json:"reason"`
}

// pauseSchedule pauses or resumes a schedule, audited with the reason
// (one is required to pause).
func (s *Server) pauseSchedule(pause bool) func(w http.ResponseWriter, r *http.Request, c *caller) error {
	return func(w http.ResponseWriter, r *http.Request, c *caller) error {
		var b pauseBody
		if err := decodeOptional(r, &b); err != nil {
			return err
		}
		b.Reason = strings.TrimSpace(b.Reason)
		ctx := r.Context()
		_, _, sc, err := s.scheduleOf(ctx, r.PathValue("name"))
		if err != nil {
			return err
		}
		now := s.cfg.Now().UTC()
		action := "schedule.resume"
		var p *rollout.Pause
		if pause {
			if b.Reason == "" {
				return errBadRequest("reason: missing: say why the schedule pauses", "reason")
			}
			action, p = "schedule.pause", &rollout.Pause{Reason: b.Reason, By: c.actor(), At: now}
		}
		changed, err := s.db.Rollouts.SetPaused(ctx, sc.Name, p, now,
			rollout.Event{Actor: c.actor(), Action: action, Object: "schedule/" + sc.Name, Change: map[string]any{"reason": b.Reason}})
		if err != nil {
			return err
		}
		if !changed {
			state := "paused"
			if !pause {
				state = "not paused"
			}
			return errConflict(api.CodeConflict, fmt.Sprintf("schedule %s is %s already", sc.Name, state))
		}
		s.log.Info(action, "schedule", sc.Name, "by", c.actor(), "reason", b.Reason)
		pauses, err := s.db.Rollouts.Pauses(ctx)
		if err != nil {
			return err
		}
		out := rolloutapi.ScheduleSummary{Name: sc.Name, Spec: sc.Spec}
		if p, ok := pauses[sc.Name]; ok {
			out.Paused = &p
		}
		return writeJSON(w, http.StatusOK, out)
	}
}
