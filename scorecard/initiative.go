package scorecard

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/patchbay/patchbay/policy"
)

// Initiative states: draft (as written, or before its start), active to
// its target date, then done when every selected service passes at the
// target, missed when not.
const (
	StateDraft  = "draft"
	StateActive = "active"
	StateDone   = "done"
	StateMissed = "missed"
)

// ActionItem is what a failing service has to do: its failing rules with
// what fixes each, and the patch plan that would where patching does.
type ActionItem struct {
	Service string       `json:"service"`
	Team    string       `json:"team"`
	Level   string       `json:"level"`
	Failing []RuleResult `json:"failing"`
	// Plan is the command that plans the patches (when a failing rule is
	// one patching fixes); InFlight names the rollout already running.
	Plan     string `json:"plan,omitempty"`
	InFlight string `json:"in_flight,omitempty"`
}

// TeamProgress is a team's share of an initiative.
type TeamProgress struct {
	Team     string  `json:"team"`
	Entities int     `json:"entities"`
	Passing  int     `json:"passing"`
	Share    float64 `json:"share"`
}

// InitiativeProgress is where an initiative stands.
type InitiativeProgress struct {
	Name      string         `json:"name"`
	Scorecard string         `json:"scorecard"`
	Level     string         `json:"level,omitempty"`
	Rules     []string       `json:"rules,omitempty"`
	Start     string         `json:"start"`
	Target    string         `json:"target"`
	Owners    []string       `json:"owners"`
	State     string         `json:"state"`
	Entities  int            `json:"entities"`
	Passing   int            `json:"passing"`
	Share     float64        `json:"share"`
	Teams     []TeamProgress `json:"teams"`
	Items     []ActionItem   `json:"items"`
	// InFlight is the share of failing items with a remediation in
	// flight (a rollout running on the service's hosts).
	InFlight float64     `json:"in_flight"`
	Burnup   []BurnPoint `json:"burnup,omitempty"`
}

// BurnPoint is the count of services passing at the end of a day.
type BurnPoint struct {
	Day     string `json:"day"`
	Passing int    `json:"passing"`
	Total   int    `json:"total"`
}

// Selected are the services an initiative is about: its selector over
// the service's labels, with team (its owner), tier and name added.
func Selected(sp *InitiativeSpec, set *policy.Set) []string {
	var out []string
	for _, d := range set.Documents() {
		svc, ok := d.Spec.(*policy.ServiceSpec)
		if !ok {
			continue
		}
		labels := maps.Clone(d.Metadata.Labels)
		if labels == nil {
			labels = map[string]string{}
		}
		labels["team"], labels["tier"], labels["name"] = svc.Owner, strconv.Itoa(svc.Tier), d.Metadata.Name
		if sp.Services.Empty() || sp.Services.Matches(labels) {
			out = append(out, d.Metadata.Name)
		}
	}
	return out
}

// Progress is an initiative's standing from the current results of its
// scorecard.
func Progress(name string, sp *InitiativeSpec, card *Spec, set *policy.Set, results []Result, now time.Time) InitiativeProgress {
	p := InitiativeProgress{Name: name, Scorecard: sp.Scorecard, Level: sp.Level, Rules: sp.Rules, Start: sp.Start.String(),
		Target: sp.Target.String(), Owners: sp.Owners, Items: []ActionItem{}, Teams: []TeamProgress{}}
	by := map[string]Result{}
	for _, r := range results {
		by[r.Entity] = r
	}
	teams := map[string]*TeamProgress{}
	for _, svc := range Selected(sp, set) {
		team := set.Service(svc).Owner
		tp := teams[team]
		if tp == nil {
			tp = &TeamProgress{Team: team}
			teams[team] = tp
		}
		tp.Entities++
		p.Entities++
		r := by[svc]
		if Passes(r, card, sp.Level, sp.Rules) {
			tp.Passing++
			p.Passing++
			continue
		}
		it := ActionItem{Service: svc, Team: team, Level: r.Level}
		for _, rr := range r.Failing() {
			if sp.Level != "" && card.levelIndex(rr.Level) > card.levelIndex(sp.Level) {
				continue // above the target level
			}
			if sp.Level == "" && !slices.Contains(sp.Rules, rr.Rule) {
				continue
			}
			it.Failing = append(it.Failing, rr)
			if rr.Patch {
				it.Plan = "patchbay plan create --strategy STRATEGY --service " + svc
			}
		}
		p.Items = append(p.Items, it)
	}
	for _, k := range slices.Sorted(maps.Keys(teams)) {
		tp := teams[k]
		tp.Share = share(tp.Passing, tp.Entities)
		p.Teams = append(p.Teams, *tp)
	}
	p.Share = share(p.Passing, p.Entities)
	p.State = stateOf(sp, p, now)
	return p
}

func share(n, of int) float64 {
	if of == 0 {
		return 1
	}
	return float64(int(float64(n)/float64(of)*1000+0.5)) / 1000
}

func stateOf(sp *InitiativeSpec, p InitiativeProgress, now time.Time) string {
	switch {
	case sp.State == StateDraft || now.Before(sp.Start.End().Add(-24*time.Hour)):
		return StateDraft
	case now.Before(sp.Target.End()):
		return StateActive
	case p.Passing == p.Entities:
		return StateDone
	}
	return StateMissed
}

// Burnup counts, for each day from the start to now (or the target),
// the selected services that passed at its end, from the scorecard's
// kept records (oldest first).
func Burnup(sp *InitiativeSpec, card *Spec, set *policy.Set, history []Record, now time.Time) []BurnPoint {
	if now.Before(sp.Start.End().Add(-24 * time.Hour)) {
		return nil // not started
	}
	sel := Selected(sp, set)
	in := map[string]bool{}
	for _, s := range sel {
		in[s] = true
	}
	end := sp.Target.End()
	if now.Before(end) {
		end = now
	}
	var out []BurnPoint
	cur := map[string]Result{}
	i := 0
	for day := sp.Start.End(); ; day = day.Add(24 * time.Hour) {
		last := !day.Before(end)
		if last {
			day = end
		}
		for ; i < len(history) && !history[i].At.After(day); i++ {
			if in[history[i].Entity] {
				cur[history[i].Entity] = history[i].Result
			}
		}
		n := 0
		for _, s := range sel {
			if r, ok := cur[s]; ok && Passes(r, card, sp.Level, sp.Rules) {
				n++
			}
		}
		out = append(out, BurnPoint{Day: day.Add(-time.Nanosecond).UTC().Format(time.DateOnly), Passing: n, Total: len(sel)})
		if last || len(out) > 800 {
			return out
		}
	}
}

// initiativeNotices are the once-only notices an initiative's standing
// calls for now: started, a reminder to each team behind N days before
// the target, done or missed.
func initiativeNotices(name string, sp *InitiativeSpec, p InitiativeProgress, now time.Time) []Notice {
	if p.State == StateDraft {
		return nil
	}
	base := map[string]any{"initiative": name, "scorecard": sp.Scorecard, "target": sp.Target.String(), "share": p.Share}
	with := func(kv ...any) map[string]any {
		m := maps.Clone(base)
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	out := []Notice{{Key: "initiative/" + name + "/started", Event: "initiative.started", Subject: name, Payload: base}}
	switch p.State {
	case StateDone:
		return append(out, Notice{Key: "initiative/" + name + "/done", Event: "initiative.done", Subject: name, Payload: base})
	case StateMissed:
		return append(out, Notice{Key: "initiative/" + name + "/missed", Event: "initiative.missed", Subject: name, Payload: base})
	}
	for _, d := range sp.remindDays() {
		if now.Before(sp.Target.End().Add(-time.Duration(d) * 24 * time.Hour)) {
			continue
		}
		for _, t := range p.Teams {
			if t.Passing < t.Entities {
				out = append(out, Notice{Key: fmt.Sprintf("initiative/%s/remind/%d/%s", name, d, t.Team), Event: "initiative.reminder", Subject: name,
					Payload: with("team", t.Team, "days_before", d, "passing", t.Passing, "entities", t.Entities), Team: t.Team})
			}
		}
	}
	return out
}
