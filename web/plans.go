package web

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/patchbay/patchbay/api/rolloutapi"
	"github.com/patchbay/patchbay/rollout"
)

type plansData struct {
	Title string
	Plans []rolloutapi.PlanStatus
	Me    string
}

func (u *UI) plans(w http.ResponseWriter, r *http.Request, s *session) error {
	ps, err := u.planList(r.Context(), s)
	if err != nil {
		return err
	}
	if st := r.URL.Query().Get("state"); st != "" {
		ps = slices.DeleteFunc(ps, func(p rolloutapi.PlanStatus) bool { return string(p.Plan.State) != st })
	}
	u.render(w, r, s, http.StatusOK, "plans", "Plans", plansData{Title: "Plans", Plans: ps, Me: "user:" + s.User})
	return nil
}

func (u *UI) rollouts(w http.ResponseWriter, r *http.Request, s *session) error {
	ps, err := u.planList(r.Context(), s)
	if err != nil {
		return err
	}
	ps = slices.DeleteFunc(ps, func(p rolloutapi.PlanStatus) bool { return p.Rollout == nil })
	if r.URL.Query().Get("active") != "" {
		ps = slices.DeleteFunc(ps, func(p rolloutapi.PlanStatus) bool { return !inFlight(p) })
	}
	u.render(w, r, s, http.StatusOK, "plans", "Rollouts", plansData{Title: "Rollouts", Plans: ps, Me: "user:" + s.User})
	return nil
}

type planData struct {
	rolloutapi.PlanStatus
	Me           string
	ApprovedByMe bool
	Live         bool // the rollout may still change: the page follows it
	Actions      []string
	// Gates are the strategy's gates' last measurements (docs/gates.md),
	// Events the rollout's timeline.
	Gates  []*rollout.GateState
	Events []rolloutapi.Event
}

// controls are the rollout actions a state allows (the API decides; the
// page offers only these).
func controls(p rolloutapi.PlanStatus) []string {
	if p.Rollout == nil {
		return nil
	}
	switch p.Rollout.State {
	case rollout.Running, rollout.Baking:
		return []string{"pause", "abort"}
	case rollout.AwaitingPromotion:
		return []string{"promote", "pause", "abort"}
	case rollout.Paused, rollout.Halted:
		return []string{"resume", "abort"}
	}
	return nil
}

func (u *UI) planStatus(r *http.Request, s *session, id string) (rolloutapi.PlanStatus, error) {
	var st rolloutapi.PlanStatus
	err := u.call(r.Context(), s, "GET", "/api/v1/plans/"+url.PathEscape(id), url.Values{"hosts": {"1"}}, nil, &st)
	return st, err
}

func (u *UI) plan(w http.ResponseWriter, r *http.Request, s *session) error {
	st, err := u.planStatus(r, s, r.PathValue("id"))
	if err != nil {
		return err
	}
	d := planData{PlanStatus: st, Me: "user:" + s.User, Actions: controls(st)}
	d.ApprovedByMe = slices.ContainsFunc(st.Plan.Approvals, func(a rollout.Approval) bool { return a.By == d.Me })
	d.Live = st.Rollout != nil && !ended(st.Rollout.State)
	if st.Rollout != nil {
		for _, g := range st.Rollout.GateStates {
			d.Gates = append(d.Gates, g)
		}
		slices.SortFunc(d.Gates, func(a, b *rollout.GateState) int {
			return strings.Compare(a.Kind+a.Gate+a.Phase, b.Kind+b.Gate+b.Phase)
		})
		var evs rolloutapi.Events
		if err := u.call(r.Context(), s, "GET", "/api/v1/events", url.Values{"rollout": {st.Plan.ID}}, nil, &evs); err != nil {
			return err
		}
		d.Events = evs.Events
	}
	u.render(w, r, s, http.StatusOK, "plan", "Plan "+st.Plan.ID, d)
	return nil
}

// planAction approves, rejects or starts a plan, or controls its
// rollout, through the API as the logged-in person.
func (u *UI) planAction(w http.ResponseWriter, r *http.Request, s *session) error {
	id, action := r.PathValue("id"), r.PathValue("action")
	var body any
	switch action {
	case "approve", "reject":
		body = map[string]string{"comment": r.PostFormValue("comment")}
	case "start", "pause", "resume", "promote", "abort":
	default:
		return badInput{fmt.Sprintf("plan action %q: want approve, reject, start, pause, resume, promote or abort", action)}
	}
	if err := u.call(r.Context(), s, "POST", "/api/v1/plans/"+url.PathEscape(id)+"/"+action, nil, body, nil); err != nil {
		return err
	}
	u.log.Info("plan action", "plan", id, "action", action, "user", s.User)
	http.Redirect(w, r, "/plans/"+url.PathEscape(id), http.StatusSeeOther)
	return nil
}

// progress is what the rollout page's script shows of a rollout.
type progress struct {
	State string            `json:"state"`
	Why   string            `json:"why,omitempty"`
	Ring  int               `json:"ring"`
	Rings []ringProgress    `json:"rings"`
	Hosts map[string]string `json:"hosts"` // host id → outcome, "in flight" or "pending"
	Ended bool              `json:"ended"`
	// Actions are the controls the state allows.
	Actions []string `json:"actions"`
}

type ringProgress struct {
	rolloutapi.RingStatus
	Done   int    `json:"done"`
	Failed int    `json:"failed"`
	Bar    string `json:"bar"` // the ring's SVG
}

func progressOf(st rolloutapi.PlanStatus) progress {
	p := progress{State: string(st.Plan.State), Hosts: map[string]string{}, Actions: controls(st)}
	if p.Actions == nil {
		p.Actions = []string{}
	}
	if st.Rollout != nil {
		p.State, p.Why, p.Ring, p.Ended = string(st.Rollout.State), st.Rollout.Why, st.Rollout.Ring, ended(st.Rollout.State)
	}
	for _, rs := range st.Rings {
		rp := ringProgress{RingStatus: rs, Bar: string(ringBar(rs))}
		for o, n := range rs.Outcomes {
			rp.Done += n
			if o.Error() {
				rp.Failed += n
			}
		}
		p.Rings = append(p.Rings, rp)
	}
	for _, h := range st.Hosts {
		switch {
		case h.Outcome != "":
			p.Hosts[h.ID] = string(h.Outcome)
		case h.Attempt > 0:
			p.Hosts[h.ID] = "in flight"
		default:
			p.Hosts[h.ID] = "pending"
		}
	}
	return p
}

// planProgress streams a rollout's progress as server-sent events, one
// when it changes, until it ends (or the stream has run for streamFor;
// the browser then reconnects).
func (u *UI) planProgress(w http.ResponseWriter, r *http.Request, s *session) error {
	id := r.PathValue("id")
	st, err := u.planStatus(r, s, id)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	rc := http.NewResponseController(w)
	deadline := time.Now().Add(streamFor)
	var last []byte
	tick := time.NewTicker(progressEvery)
	defer tick.Stop()
	for {
		b, err := json.Marshal(progressOf(st))
		if err != nil {
			return err
		}
		if string(b) != string(last) {
			if _, err := fmt.Fprintf(w, "event: progress\ndata: %s\n\n", b); err != nil {
				return nil // the browser went away
			}
			if err := rc.Flush(); err != nil {
				return nil
			}
			last = b
		}
		if st.Rollout != nil && ended(st.Rollout.State) || time.Now().After(deadline) {
			fmt.Fprint(w, "event: end\ndata: {}\n\n")
			rc.Flush()
			return nil
		}
		select {
		case <-r.Context().Done():
			return nil
		case <-tick.C:
		}
		// A stream ends with its session (logout, expiry).
		if cur, err := u.current(r); err != nil || cur == nil {
			return nil
		}
		if st, err = u.planStatus(r, s, id); err != nil {
			if r.Context().Err() == nil {
				u.log.Warn("rollout progress stream", "plan", id, "err", err)
			}
			return nil
		}
	}
}

// progressEvery is how often a followed rollout is read; streamFor how
// long one stream lasts.
var (
	progressEvery = time.Second
	streamFor     = 10 * time.Minute
)
