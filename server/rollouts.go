package server

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/patchbay/patchbay/api"
	"github.com/patchbay/patchbay/api/rolloutapi"
	"github.com/patchbay/patchbay/fleet"
	"github.com/patchbay/patchbay/job"
	"github.com/patchbay/patchbay/policy"
	"github.com/patchbay/patchbay/rollout"
	"github.com/patchbay/patchbay/store"
)

// jobKeyName names the job-signing key in the database.
const jobKeyName = "jobs-ed25519"

// JobKey returns the server's job-signing key, generated at the first
// start and shared by every replica through the database.
func (s *Server) JobKey(ctx context.Context) (ed25519.PrivateKey, error) {
	s.jobKeyMu.Lock()
	defer s.jobKeyMu.Unlock()
	if s.jobKey != nil {
		return s.jobKey, nil
	}
	enc, err := s.db.Rollouts.Key(ctx, jobKeyName, func() (string, error) {
		seed := make([]byte, ed25519.SeedSize)
		if _, err := rand.Read(seed); err != nil {
			return "", err
		}
		return base64.StdEncoding.EncodeToString(seed), nil
	}, s.cfg.Now())
	if err != nil {
		return nil, err
	}
	seed, err := base64.StdEncoding.DecodeString(enc)
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("job key in the database: not a base64 Ed25519 seed")
	}
	s.jobKey = ed25519.NewKeyFromSeed(seed)
	return s.jobKey, nil
}

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
	evs := []store.RolloutEvent{{Actor: c.actor(), Action: "plan.create", Object: "plan/" + p.ID,
		Change: map[string]any{"spec": spec, "hosts": len(p.Hosts), "state": p.State, "required_approvers": p.Required, "auto_approved_by": p.AutoRules}}}
	if p.State == rollout.AwaitingApproval {
		evs[0].Notify, evs[0].Payload, evs[0].Targets = "plan.awaiting_approval", s.planEvent("plan.awaiting_approval", p, nil), s.notifyTargets()
	}
	if err := s.db.Rollouts.CreatePlan(ctx, p, now, evs...); err != nil {
		return err
	}
	s.log.Info("plan created", "plan", p.ID, "hosts", len(p.Hosts), "state", p.State, "by", c.actor())
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
		c := set.Context(assetOf(fleet.AssetOf(h.Host)))
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
	if errors.Is(err, store.ErrPlanNotFound) {
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
func (s *Server) changePlan(ctx context.Context, id string, fn func(row *store.PlanRow, now time.Time) (store.RolloutEvent, error)) (store.PlanRow, error) {
	for try := 0; ; try++ {
		row, err := s.db.Rollouts.Plan(ctx, id, false)
		if errors.Is(err, store.ErrPlanNotFound) {
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
		if errors.Is(err, store.ErrPlanConflict) && try < 20 {
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
		row, err := s.changePlan(r.Context(), r.PathValue("id"), func(row *store.PlanRow, now time.Time) (store.RolloutEvent, error) {
			a := rollout.Approval{By: c.actor(), At: now, Comment: b.Comment}
			action, decide := "plan.reject", row.Plan.Reject
			if approve {
				action, decide = "plan.approve", row.Plan.Approve
			}
			if err := decide(a); err != nil {
				return store.RolloutEvent{}, errConflict(api.CodeConflict, err.Error())
			}
			return store.RolloutEvent{Actor: c.actor(), Action: action, Object: "plan/" + row.Plan.ID,
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
	row, err := s.changePlan(ctx, r.PathValue("id"), func(row *store.PlanRow, now time.Time) (store.RolloutEvent, error) {
		p := row.Plan
		if p.State != rollout.Approved {
			return store.RolloutEvent{}, errConflict(api.CodeConflict, fmt.Sprintf("plan %s is %s: only an approved plan starts (approvals %d of %d)", p.ID, p.State, len(p.Approvals), p.Required))
		}
		strat, ok := rp.Strategies[p.Strategy]
		if !ok {
			return store.RolloutEvent{}, errConflict(api.CodeConflict, fmt.Sprintf("strategy %q of plan %s no longer exists", p.Strategy, p.ID))
		}
		p.State, p.StrategySpec, p.StartedAt, p.StartedBy = rollout.Started, strat, now, c.actor()
		row.Machine = &rollout.Machine{State: rollout.Running}
		return store.RolloutEvent{Actor: c.actor(), Action: "rollout.start", Object: "plan/" + p.ID, Change: map[string]any{"strategy": strat}}, nil
	})
	if err != nil {
		return err
	}
	s.wakeScheduler()
	return writeJSON(w, http.StatusOK, rolloutapi.PlanStatus{Plan: row.Plan, Rollout: row.Machine})
}

// controlRollout pauses, resumes, promotes or aborts a rollout.
func (s *Server) controlRollout(action string) func(w http.ResponseWriter, r *http.Request, c *caller) error {
	return func(w http.ResponseWriter, r *http.Request, c *caller) error {
		row, err := s.changePlan(r.Context(), r.PathValue("id"), func(row *store.PlanRow, now time.Time) (store.RolloutEvent, error) {
			m := row.Machine
			if m == nil {
				return store.RolloutEvent{}, errConflict(api.CodeConflict, fmt.Sprintf("plan %s has not started", row.Plan.ID))
			}
			m.Strategy = row.Plan.StrategySpec
			var err error
			ev := store.RolloutEvent{Actor: c.actor(), Action: "rollout." + action, Object: "plan/" + row.Plan.ID, Change: map[string]any{"from": m.State}}
			switch action {
			case "pause":
				err = m.Pause()
			case "resume":
				err = m.Resume()
			case "promote":
				ring := m.Ring
				if err = m.Promote(); err == nil {
					ev.Notify, ev.Targets = "rollout.ring_promoted", s.notifyTargets()
					ev.Payload = s.planEvent("rollout.ring_promoted", row.Plan, map[string]any{"from_ring": row.Plan.Rings[ring].Name, "state": m.State, "by": c.actor()})
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
func (s *Server) StepRollouts(ctx context.Context, fence store.RolloutFence) error {
	ids, err := s.db.Rollouts.Active(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, id := range ids {
		if err := s.stepRollout(ctx, id, fence); err != nil && !errors.Is(err, store.ErrPlanConflict) {
			errs = append(errs, fmt.Errorf("rollout %s: %w", id, err))
		}
	}
	return errors.Join(errs...)
}

func (s *Server) stepRollout(ctx context.Context, id string, fence store.RolloutFence) error {
	start := time.Now()
	row, err := s.db.Rollouts.Plan(ctx, id, false)
	if err != nil {
		return err
	}
	m, p := row.Machine, row.Plan
	if m == nil || p.StrategySpec == nil {
		return fmt.Errorf("plan %s is active without a machine", id)
	}
	now := s.cfg.Now().UTC()
	switch {
	case m.State == rollout.Paused, m.State == rollout.AwaitingPromotion, m.State == rollout.Baking && now.Before(m.BakeUntil):
		return nil // waits for people or the clock
	}
	if m.Jobs, err = s.db.Rollouts.Jobs(ctx, id); err != nil {
		return err
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
			seen, seenErr = s.db.Rollouts.LastSeen(ctx)
		}
		t, ok := seen[h]
		return t, ok
	}
	_, rp, err := s.rolloutPolicy(ctx)
	if err != nil {
		return err
	}
	// The plan's hosts (targets, windows) are read when a job may start.
	var hostsByID map[string]*rollout.PlanHost
	var hostsErr error
	hostOf := func(h string) *rollout.PlanHost {
		if hostsByID == nil && hostsErr == nil {
			var rows []rollout.HostStatus
			if rows, hostsErr = s.db.Rollouts.Hosts(ctx, id); hostsErr == nil {
				hostsByID = make(map[string]*rollout.PlanHost, len(rows))
				for i := range rows {
					hostsByID[rows[i].ID] = &rows[i].PlanHost
				}
			}
		}
		return hostsByID[h]
	}
	timeout := p.StrategySpec.Timeout()
	stale := s.cfg.AgentStale
	windowEnd := map[string]time.Time{}
	gate := rollout.Gate{
		Active: func(h string) bool { t, ok := lastSeen(h); return ok && now.Sub(t) < stale },
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
	dispatched := m.Step(now, gate)
	if err := errors.Join(hostsErr, seenErr); err != nil {
		return err
	}
	key, err := s.JobKey(ctx)
	if err != nil {
		return err
	}
	var starts []store.Dispatch
	for _, j := range dispatched {
		ph := hostOf(j.Host)
		mf := job.Manifest{JobID: job.ID(p.ID, j.Host), Attempt: j.Attempt, HostID: j.Host, Rollout: p.ID, Ring: p.StrategySpec.Rings[j.Ring].Name,
			PostChecks: p.StrategySpec.Rings[j.Ring].HealthChecks, Reboot: p.StrategySpec.Reboot, RestartServices: p.StrategySpec.RestartServices,
			Timeout: timeout, IssuedAt: now, NotAfter: now.Add(timeout), RebootBefore: windowEnd[j.Host]}
		if end, ok := windowEnd[j.Host]; ok {
			mf.NotAfter = end.Add(-timeout)
		}
		for _, t := range ph.Targets {
			mf.Install = append(mf.Install, job.Package{Name: t.Name, Version: t.To})
		}
		signed, err := job.Sign(mf, key)
		if err != nil {
			return err
		}
		b, err := json.Marshal(signed)
		if err != nil {
			return err
		}
		starts = append(starts, store.Dispatch{Host: j.Host, Attempt: j.Attempt, Started: j.Started, Job: string(b)})
	}
	var settles []store.Settle
	for _, j := range m.Jobs {
		if j.Outcome != "" && before[j.Host] == "" {
			settles = append(settles, store.Settle{Host: j.Host, Attempt: j.Attempt, Outcome: j.Outcome})
		}
	}
	evs := s.transitionEvents(p, m, state, ring)
	if len(starts) == 0 && len(settles) == 0 && len(evs) == 0 && m.State == state && m.Ring == ring && m.BakeUntil.Equal(bake) {
		return nil // nothing moved
	}
	n, err := s.db.Rollouts.Step(ctx, fence, row, starts, settles, now, evs...)
	if err != nil {
		return err
	}
	if n > 0 {
		s.jobs.poke()
	}
	s.metrics.stepSeconds.Observe(time.Since(start).Seconds())
	if len(starts) > 0 || m.State != state || m.Ring != ring {
		s.log.Info("rollout step", "plan", id, "state", m.State, "ring", p.StrategySpec.Rings[m.Ring].Name, "started", n, "settled", len(settles), "took", time.Since(start))
	}
	return nil
}

// transitionEvents are the audit entries and notifications of a step's
// change of state or ring.
func (s *Server) transitionEvents(p *rollout.Plan, m *rollout.Machine, state rollout.State, ring int) []store.RolloutEvent {
	actor := "server:" + s.cfg.ReplicaID
	var evs []store.RolloutEvent
	ev := func(action, notify string, extra map[string]any) {
		e := store.RolloutEvent{Actor: actor, Action: action, Object: "plan/" + p.ID, Change: extra}
		if notify != "" {
			e.Notify, e.Targets, e.Payload = notify, s.notifyTargets(), s.planEvent(notify, p, extra)
		}
		evs = append(evs, e)
	}
	if m.Ring != ring {
		ev("rollout.promote", "rollout.ring_promoted", map[string]any{"from_ring": p.StrategySpec.Rings[ring].Name, "to_ring": p.StrategySpec.Rings[m.Ring].Name, "by": actor})
	}
	if m.State == state {
		return evs
	}
	switch m.State {
	case rollout.Halted:
		ev("rollout.halt", "rollout.halted", map[string]any{"ring": p.StrategySpec.Rings[m.Ring].Name, "why": m.Why})
	case rollout.Completed:
		ev("rollout.complete", "rollout.completed", map[string]any{"ring": p.StrategySpec.Rings[m.Ring].Name})
	default:
		ev("rollout."+string(m.State), "", map[string]any{"from": state, "ring": p.StrategySpec.Rings[m.Ring].Name})
	}
	return evs
}

// ---- jobs for agents ----

// jobHub wakes the agents' long polls when jobs are dispatched: it reads
// the dispatches after the last it saw, at every poke (this process's
// scheduler) and at least every PollEvery (another replica's).
type jobHub struct {
	mu      sync.Mutex
	waiters map[string][]chan struct{}
	kick    chan struct{}
}

func newJobHub() *jobHub {
	return &jobHub{waiters: map[string][]chan struct{}{}, kick: make(chan struct{}, 1)}
}

func (h *jobHub) poke() {
	select {
	case h.kick <- struct{}{}:
	default:
	}
}

func (h *jobHub) wait(host string) (chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	h.mu.Lock()
	h.waiters[host] = append(h.waiters[host], ch)
	h.mu.Unlock()
	return ch, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		ws := h.waiters[host]
		if i := slices.Index(ws, ch); i >= 0 {
			ws = slices.Delete(ws, i, i+1)
		}
		if len(ws) == 0 {
			delete(h.waiters, host)
		} else {
			h.waiters[host] = ws
		}
	}
}

func (h *jobHub) wake(hosts []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, host := range hosts {
		for _, ch := range h.waiters[host] {
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}
}

// runJobHub follows the dispatches until ctx ends.
func (s *Server) runJobHub(ctx context.Context) {
	last, err := s.db.Rollouts.LastDispatch(ctx)
	if err != nil && ctx.Err() == nil {
		s.log.Warn("job hub", "err", err)
	}
	t := time.NewTicker(s.cfg.PollEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.jobs.kick:
		}
		hosts, seq, err := s.db.Rollouts.DispatchedSince(ctx, last)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Warn("job hub", "err", err)
			}
			continue
		}
		last = seq
		s.jobs.wake(hosts)
	}
}

// agentJobs answers an agent's poll: its pending signed jobs, waiting up
// to ?wait= seconds (at most 60) for one to be dispatched.
func (s *Server) agentJobs(w http.ResponseWriter, r *http.Request, c *caller) error {
	ctx := r.Context()
	host := c.tok.Subject
	wait := 0
	if v := r.URL.Query().Get("wait"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 60 {
			return errBadRequest("wait: want seconds from 0 to 60", "query.wait")
		}
		wait = n
	}
	s.touches.add(host, s.cfg.Now().UTC())
	ch, done := s.jobs.wait(host)
	defer done()
	timer := time.NewTimer(time.Duration(wait) * time.Second)
	defer timer.Stop()
	for {
		pending, err := s.db.Rollouts.Pending(ctx, host)
		if err != nil {
			return err
		}
		if len(pending) > 0 || wait == 0 {
			resp := api.JobsResponse{Jobs: []job.Signed{}}
			for _, p := range pending {
				var sj job.Signed
				if err := json.Unmarshal([]byte(p.Job), &sj); err != nil {
					return fmt.Errorf("stored job of %s in %s: %w", host, p.Plan, err)
				}
				resp.Jobs = append(resp.Jobs, sj)
			}
			return writeJSON(w, http.StatusOK, resp)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
			wait = 0
		case <-s.draining:
			wait = 0
		case <-ch:
		}
	}
}

// jobResult records an agent's report of a job: once, for the host's
// current attempt; a refusal settles the job as failed.
func (s *Server) jobResult(w http.ResponseWriter, r *http.Request, c *caller) error {
	var res job.Result
	if err := decode(r, &res, false); err != nil {
		return err
	}
	host := c.tok.Subject
	planID, jobHost, ok := cutJobID(res.JobID)
	if !ok || jobHost != host {
		return errBadRequest(fmt.Sprintf("job_id %q: not a job of this host (%s)", res.JobID, host), "job_id")
	}
	switch res.Outcome {
	case job.Succeeded, job.SucceededReboot, job.NoChange, job.Skipped, job.Failed, job.RolledBack:
	default:
		return errBadRequest(fmt.Sprintf("outcome %q: an agent reports succeeded, succeeded_reboot_required, no_change_needed, skipped, failed or rolled_back", res.Outcome), "outcome")
	}
	if res.Refused && res.Outcome != job.Failed {
		return errBadRequest("a refused job is reported as failed", "outcome")
	}
	ctx := r.Context()
	b, err := json.Marshal(res)
	if err != nil {
		return err
	}
	now := s.cfg.Now().UTC()
	action := "job.report"
	if res.Refused {
		action = "job.refused"
		s.log.Warn("an agent refused a job", "host", host, "job", res.JobID, "reason", res.Reason)
	}
	ev := store.RolloutEvent{Actor: c.actor(), Action: action, Object: "job/" + res.JobID,
		Change: map[string]any{"attempt": res.Attempt, "outcome": res.Outcome, "reason": res.Reason, "changes": res.Changes}}
	err = s.db.Rollouts.Report(ctx, planID, host, res.Attempt, res.Outcome, b, now, ev)
	if errors.Is(err, store.ErrStaleReport) {
		return errConflict(api.CodeStale, err.Error())
	}
	if err != nil {
		return err
	}
	s.metrics.jobResults.WithLabelValues(string(res.Outcome)).Inc()
	s.wakeScheduler()
	return writeJSON(w, http.StatusOK, map[string]string{"status": "recorded"})
}

// cutJobID splits "plan/host".
func cutJobID(id string) (plan, host string, ok bool) {
	i := strings.LastIndexByte(id, '/')
	return id[:max(i, 0)], id[i+1:], i > 0 && i < len(id)-1
}

func (s *Server) listNotifications(w http.ResponseWriter, r *http.Request, _ *caller) error {
	ns, err := s.db.Rollouts.Notifications(r.Context(), r.URL.Query().Get("plan"), 500)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]any{"notifications": ns})
}
