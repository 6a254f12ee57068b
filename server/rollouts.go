package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/patchbay/patchbay/api"
	"github.com/patchbay/patchbay/api/rolloutapi"
	"github.com/patchbay/patchbay/fleet"
	"github.com/patchbay/patchbay/job"
	"github.com/patchbay/patchbay/policy"
	"github.com/patchbay/patchbay/rollout"
)

// rolloutPolicy prepares the rollout documents of the applied policy.
func (s *Server) rolloutPolicy(ctx context.Context) (*policy.Set, *rollout.Policy, error) {
	set, err := s.Policy(ctx)
	if err != nil {
		return nil, nil, err
	}
	rp, err := rollout.PolicyOf(set)
	return set, rp, err
}

func newPlanID(now time.Time) (string, error) {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return "plan-" + now.UTC().Format("20060102-150405") + "-" + hex.EncodeToString(b), nil
}

// createPlan resolves a plan from a selector or a PatchPlan document's
// spec and stores it with its preview.
func (s *Server) createPlan(w http.ResponseWriter, r *http.Request, c *caller) error {
	var spec rollout.PlanSpec
	if err := decode(r, &spec, true); err != nil {
		return err
	}
	if err := spec.Selector.Validate(); err != nil {
		return errBadRequest(err.Error(), "selector")
	}
	ctx := r.Context()
	set, rp, err := s.rolloutPolicy(ctx)
	if err != nil {
		return err
	}
	if _, ok := rp.Strategies[spec.Strategy]; !ok {
		return errBadRequest(fmt.Sprintf("strategy %q: no such RolloutStrategy (apply one first)", spec.Strategy), "strategy")
	}
	for i, sv := range spec.Selector.Services {
		if set.Service(sv) == nil {
			return errBadRequest(fmt.Sprintf("selector.services[%d]: %q: no such Service", i, sv), "selector.services")
		}
	}
	now := s.cfg.Now().UTC()
	hosts, err := s.planInputs(ctx, set, spec.Selector)
	if err != nil {
		return err
	}
	id, err := newPlanID(now)
	if err != nil {
		return err
	}
	pl := &rollout.Planner{Policy: rp, Now: now}
	p, err := pl.Resolve(id, spec, hosts)
	if errors.Is(err, rollout.ErrEmpty) {
		return errConflict(api.CodeBadRequest, err.Error())
	}
	if err != nil {
		return errBadRequest(err.Error(), "")
	}
	p.CreatedBy, p.CreatedAt = c.actor(), now
	evs := []rollout.Event{{Actor: c.actor(), Action: "plan.create", Object: "plan/" + p.ID,
		Change: map[string]any{"spec": spec, "hosts": len(p.Hosts), "state": p.State, "required_approvers": p.Required, "auto_approved_by": p.AutoRules}}}
	if p.State == rollout.AwaitingApproval {
		evs[0].Notify, evs[0].Payload, evs[0].Targets = "plan.awaiting_approval", rollout.NewPlanEvent("plan.awaiting_approval", p, nil), s.notifyTargets()
	}
	if err := s.db.Rollouts.CreatePlan(ctx, p, now, evs...); err != nil {
		return err
	}
	s.log.Info("plan created", "plan_id", p.ID, "hosts", len(p.Hosts), "state", p.State, "by", c.actor())
	return writeJSON(w, http.StatusCreated, rolloutapi.PlanStatus{Plan: headOf(p)})
}

func headOf(p *rollout.Plan) *rollout.Plan {
	h := *p
	h.Hosts = nil
	return &h
}

// planInputs gathers what the planner needs of every host the selector
// may take: groups and services (from the policy), updates, open
// findings and the updates' release ages.
func (s *Server) planInputs(ctx context.Context, set *policy.Set, sel rollout.Selector) ([]rollout.HostInput, error) {
	hs, err := s.db.Fleet.Hosts(ctx, fleet.HostFilter{})
	if err != nil {
		return nil, err
	}
	released := map[string]map[string]time.Time{}
	var out []rollout.HostInput
	var ids []string
	for _, h := range hs {
		c := set.Context(policy.AssetOf(fleet.AssetOf(h.Host)))
		in := rollout.HostInput{ID: h.ID, Hostname: h.Hostname, Groups: c.Groups, Services: c.Services}
		if !sel.TakesHost(in) {
			continue // its updates and findings are not read
		}
		ups, err := s.db.Fleet.Updates(ctx, h.ID)
		if err != nil {
			return nil, err
		}
		in.Updates = ups
		eco := h.Ecosystem
		if released[eco] == nil {
			if released[eco], err = s.db.Rollouts.Released(ctx, eco); err != nil {
				return nil, err
			}
		}
		rel := released[eco]
		in.Released = func(name, version string) time.Time { return rel[name+" "+version] }
		out = append(out, in)
		ids = append(ids, h.ID)
	}
	for start := 0; start < len(ids); start += 500 {
		end := min(start+500, len(ids))
		open, err := s.db.Findings.OpenOf(ctx, ids[start:end], nil)
		if err != nil {
			return nil, err
		}
		for i := start; i < end; i++ {
			for _, f := range open[out[i].ID] {
				if f.State == fleet.StateOpen {
					out[i].Open = append(out[i].Open, f)
				}
			}
		}
	}
	return out, nil
}

func (s *Server) listPlans(w http.ResponseWriter, r *http.Request, _ *caller) error {
	rows, err := s.db.Rollouts.Plans(r.Context(), 200)
	if err != nil {
		return err
	}
	out := make([]rolloutapi.PlanStatus, len(rows))
	for i, row := range rows {
		out[i] = rolloutapi.PlanStatus{Plan: row.Plan, Rollout: row.Machine}
	}
	return writeJSON(w, http.StatusOK, map[string]any{"plans": out})
}

// getPlan shows a plan, its rollout and, with ?hosts=1, every host.
func (s *Server) getPlan(w http.ResponseWriter, r *http.Request, _ *caller) error {
	st, err := s.planStatus(r.Context(), r.PathValue("id"), r.URL.Query().Get("hosts") != "")
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, st)
}

func (s *Server) planStatus(ctx context.Context, id string, hosts bool) (rolloutapi.PlanStatus, error) {
	row, err := s.db.Rollouts.Plan(ctx, id, false)
	if errors.Is(err, rollout.ErrNotFound) {
		return rolloutapi.PlanStatus{}, errNotFound("no such plan: " + id)
	}
	if err != nil {
		return rolloutapi.PlanStatus{}, err
	}
	st := rolloutapi.PlanStatus{Plan: row.Plan, Rollout: row.Machine}
	hs, err := s.db.Rollouts.Hosts(ctx, id)
	if err != nil {
		return st, err
	}
	st.Rings = make([]rolloutapi.RingStatus, len(row.Plan.Rings))
	for i, rp := range row.Plan.Rings {
		st.Rings[i] = rolloutapi.RingStatus{Name: rp.Name, Hosts: rp.Hosts, Outcomes: map[job.Outcome]int{}}
	}
	for _, h := range hs {
		rs := &st.Rings[h.Ring]
		switch {
		case h.Outcome != "":
			rs.Outcomes[h.Outcome]++
		case h.Attempt > 0:
			rs.InFlight++
		default:
			rs.Pending++
		}
	}
	if hosts {
		st.Hosts = hs
	}
	return st, nil
}

type approvalBody struct {
	Comment string `json:"comment,omitempty"`
}

// changePlan applies fn to a plan by compare and swap, retried on
// conflict, and writes the event fn returns.
func (s *Server) changePlan(ctx context.Context, id string, fn func(row *rollout.Row, now time.Time) (rollout.Event, error)) (rollout.Row, error) {
	for try := 0; ; try++ {
		row, err := s.db.Rollouts.Plan(ctx, id, false)
		if errors.Is(err, rollout.ErrNotFound) {
			return row, errNotFound("no such plan: " + id)
		}
		if err != nil {
			return row, err
		}
		now := s.cfg.Now().UTC()
		ev, err := fn(&row, now)
		if err != nil {
			return row, err
		}
		err = s.db.Rollouts.Update(ctx, row, now, ev)
		if errors.Is(err, rollout.ErrConflict) && try < 20 {
			continue
		}
		return row, err
	}
}

// decidePlan records a person's approval or rejection of a plan.
func (s *Server) decidePlan(approve bool) func(w http.ResponseWriter, r *http.Request, c *caller) error {
	return func(w http.ResponseWriter, r *http.Request, c *caller) error {
		var b approvalBody
		if err := decodeOptional(r, &b); err != nil {
			return err
		}
		row, err := s.changePlan(r.Context(), r.PathValue("id"), func(row *rollout.Row, now time.Time) (rollout.Event, error) {
			a := rollout.Approval{By: c.actor(), At: now, Comment: b.Comment}
			action, decide := "plan.reject", row.Plan.Reject
			if approve {
				action, decide = "plan.approve", row.Plan.Approve
			}
			if err := decide(a); err != nil {
				return rollout.Event{}, errConflict(api.CodeConflict, err.Error())
			}
			return rollout.Event{Actor: c.actor(), Action: action, Object: "plan/" + row.Plan.ID,
				Change: map[string]any{"comment": b.Comment, "approvals": len(row.Plan.Approvals), "required": row.Plan.Required, "state": row.Plan.State}}, nil
		})
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, rolloutapi.PlanStatus{Plan: row.Plan, Rollout: row.Machine})
	}
}

// decodeOptional decodes a JSON body when there is one.
func decodeOptional(r *http.Request, v any) error {
	if r.ContentLength == 0 {
		return nil
	}
	return decode(r, v, true)
}

// startRollout starts an approved plan: its rollout runs under the
// strategy as it is now (kept with the rollout).
func (s *Server) startRollout(w http.ResponseWriter, r *http.Request, c *caller) error {
	ctx := r.Context()
	_, rp, err := s.rolloutPolicy(ctx)
	if err != nil {
		return err
	}
	row, err := s.startPlan(ctx, r.PathValue("id"), c.actor(), rp)
	if err != nil {
		return err
	}
	s.wakeScheduler()
	return writeJSON(w, http.StatusOK, rolloutapi.PlanStatus{Plan: row.Plan, Rollout: row.Machine})
}

// startPlan starts an approved plan as actor.
func (s *Server) startPlan(ctx context.Context, id, actor string, rp *rollout.Policy) (rollout.Row, error) {
	return s.changePlan(ctx, id, func(row *rollout.Row, now time.Time) (rollout.Event, error) {
		p := row.Plan
		if p.State != rollout.Approved {
			return rollout.Event{}, errConflict(api.CodeConflict, fmt.Sprintf("plan %s is %s: only an approved plan starts (approvals %d of %d)", p.ID, p.State, len(p.Approvals), p.Required))
		}
		strat, ok := rp.Strategies[p.Strategy]
		if !ok {
			return rollout.Event{}, errConflict(api.CodeConflict, fmt.Sprintf("strategy %q of plan %s no longer exists", p.Strategy, p.ID))
		}
		p.State, p.StrategySpec, p.StartedAt, p.StartedBy = rollout.Started, strat, now, actor
		sizes := make([]int, len(p.Rings))
		for i, rp := range p.Rings {
			sizes[i] = rp.Hosts
		}
		row.Machine = rollout.StartMachine(strat, sizes)
		return rollout.Event{Actor: actor, Action: "rollout.start", Object: "plan/" + p.ID, Change: map[string]any{"strategy": strat}}, nil
	})
}

// controlRollout pauses, resumes, promotes or aborts a rollout.
func (s *Server) controlRollout(action string) func(w http.ResponseWriter, r *http.Request, c *caller) error {
	return func(w http.ResponseWriter, r *http.Request, c *caller) error {
		row, err := s.changePlan(r.Context(), r.PathValue("id"), func(row *rollout.Row, now time.Time) (rollout.Event, error) {
			m := row.Machine
			if m == nil {
				return rollout.Event{}, errConflict(api.CodeConflict, fmt.Sprintf("plan %s has not started", row.Plan.ID))
			}
			m.Strategy = row.Plan.StrategySpec
			var err error
			ev := rollout.Event{Actor: c.actor(), Action: "rollout." + action, Object: "plan/" + row.Plan.ID, Change: map[string]any{"from": m.State}}
			switch action {
			case "pause":
				err = m.Pause()
			case "resume":
				err = m.Resume()
			case "promote":
				ring := m.Ring
				if err = m.Promote(); err == nil {
					ev.Notify, ev.Targets = "rollout.ring_promoted", s.notifyTargets()
					ev.Payload = rollout.NewPlanEvent("rollout.ring_promoted", row.Plan, map[string]any{"from_ring": row.Plan.Rings[ring].Name, "state": m.State, "by": c.actor()})
				}
			case "abort":
				err = m.Abort()
			}
			if err != nil {
				return ev, errConflict(api.CodeConflict, err.Error())
			}
			return ev, nil
		})
		if err != nil {
			return err
		}
		s.wakeScheduler()
		return writeJSON(w, http.StatusOK, rolloutapi.PlanStatus{Plan: row.Plan, Rollout: row.Machine})
	}
}

// ---- the scheduler (leader) ----

// wakeScheduler asks the leader's scheduler to step now (in this
// process; another replica's leader steps within StepEvery).
func (s *Server) wakeScheduler() {
	select {
	case s.stepNow <- struct{}{}:
	default:
	}
}

// StepRollouts advances every active rollout once.
func (s *Server) StepRollouts(ctx context.Context, fence rollout.Fence) error {
	ids, err := s.db.Rollouts.Active(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, id := range ids {
		start := time.Now()
		res, err := s.sched.Step(ctx, id, fence, s.cfg.Now().UTC())
		if err != nil && !errors.Is(err, rollout.ErrConflict) {
			errs = append(errs, fmt.Errorf("rollout %s: %w", id, err))
			if ctx.Err() == nil {
				s.log.Warn("rollout step", "plan_id", id, "rollout_id", id, "err", err)
			}
		}
		if !res.Moved {
			continue
		}
		if res.Started > 0 {
			s.jobs.poke()
		}
		s.metrics.stepSeconds.Observe(time.Since(start).Seconds())
		if res.Started > 0 || res.Transition {
			s.log.Info("rollout step", "plan_id", id, "rollout_id", id, "state", res.State, "ring", res.Ring, "started", res.Started, "settled", res.Settled, "took", time.Since(start))
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return rolloutErrors{errors.Join(errs...)}
}

// rolloutErrors are the errors of rollouts' steps, each logged with its
// ids when it happened.
type rolloutErrors struct{ error }

func (e rolloutErrors) Unwrap() error { return e.error }

// hostServices names the services of hosts by the applied policy, for
// the rollout gates' {{ .Service }}.
func (s *Server) hostServices(ctx context.Context, ids []string) (map[string][]string, error) {
	set, err := s.Policy(ctx)
	if err != nil {
		return nil, err
	}
	hs, err := s.db.Fleet.Hosts(ctx, fleet.HostFilter{})
	if err != nil {
		return nil, err
	}
	out := make(map[string][]string, len(ids))
	for _, h := range hs {
		if slices.Contains(ids, h.ID) {
			out[h.ID] = set.Context(policy.AssetOf(fleet.AssetOf(h.Host))).Services
		}
	}
	return out, nil
}
