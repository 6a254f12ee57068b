package scorecard

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/patchbay/patchbay/policy"
)

// Record is one kept evaluation: a result that differed from the one
// before it, and when.
type Record struct {
	Result
	At time.Time `json:"at"`
}

// Notice is a notification to queue once: Key makes it once-only.
type Notice struct {
	Key     string
	Event   string
	Subject string
	Payload any
	// Team is the team the notice is about (a reminder, a level drop):
	// its own webhook, if its Team document has one, receives it too.
	Team string
}

// TeamTarget is the notification target of a team's own webhook.
func TeamTarget(team string) string { return "team:" + team }

// Store keeps scores, pushed facts and the once-only notices.
type Store interface {
	// Latest is the last record of every (scorecard, entity).
	Latest(ctx context.Context) ([]Record, error)
	// Append keeps records (each a change).
	Append(ctx context.Context, recs []Record) error
	// History lists a scorecard's records of an entity ("" for all)
	// since a time, oldest first.
	History(ctx context.Context, scorecard, entity string, since time.Time) ([]Record, error)
	// CustomFacts are the latest pushed facts by service and name.
	CustomFacts(ctx context.Context) (map[string]map[string]CustomFact, error)
	// Notify queues a notice to targets unless its key was queued
	// before; it tells whether it queued.
	Notify(ctx context.Context, n Notice, targets []string, now time.Time) (bool, error)
}

// Scorecards are the compiled scorecards of an applied set, by name.
func Scorecards(set *policy.Set) ([]*Compiled, error) {
	var out []*Compiled
	for _, d := range set.Documents() {
		if sp, ok := d.Spec.(*Spec); ok {
			c, err := Compile(d.Metadata.Name, sp)
			if err != nil {
				return nil, err
			}
			out = append(out, c)
		}
	}
	return out, nil
}

// Initiatives are the initiatives of an applied set.
func Initiatives(set *policy.Set) map[string]*InitiativeSpec {
	out := map[string]*InitiativeSpec{}
	for _, d := range set.Documents() {
		if sp, ok := d.Spec.(*InitiativeSpec); ok {
			out[d.Metadata.Name] = sp
		}
	}
	return out
}

// Outcome is what one scoring did.
type Outcome struct {
	Evaluated int `json:"evaluated"`
	Changed   int `json:"changed"`
	Notices   int `json:"notices"`
	// NextWake is when results or notices change by time alone (an
	// exemption ends, an initiative starts, a reminder or a target is
	// due): score again then.
	NextWake time.Time `json:"next_wake,omitzero"`
}

// Score evaluates every service on every scorecard, keeps the results
// that changed, and queues the notices: a service that drops a level and
// the initiatives' starts, reminders and ends.
func Score(ctx context.Context, st Store, in Inputs, targets []string) (Outcome, error) {
	var o Outcome
	cards, err := Scorecards(in.Set)
	if err != nil {
		return o, err
	}
	if len(cards) == 0 {
		return o, nil
	}
	custom, err := st.CustomFacts(ctx)
	if err != nil {
		return o, err
	}
	in.Custom = custom
	factsBy := map[string]map[string]Facts{}
	keysBy := map[string][]string{}
	latest, err := st.Latest(ctx)
	if err != nil {
		return o, err
	}
	prev := map[[2]string]Record{}
	for _, r := range latest {
		prev[[2]string{r.Scorecard, r.Entity}] = r
	}
	var recs []Record
	var notices []Notice
	current := map[string][]Result{}
	for _, c := range cards {
		o.wake(c.NextExpiry(in.Now), in.Now)
		for _, e := range c.Spec.Exemptions {
			if !in.Now.Before(e.Expires.End()) {
				notices = append(notices, Notice{Key: fmt.Sprintf("exemption/%s/%s/%s/%s", c.Name, e.Rule, e.key(c.Spec.entity()), e.Expires), Event: "scorecard.exemption_expired",
					Subject: c.Name, Payload: map[string]any{"scorecard": c.Name, "rule": e.Rule, "service": e.Service, "entity": e.key(c.Spec.entity()), "expired": e.Expires.String(), "approver": e.Approver, "reason": e.Reason}})
			}
		}
		ent := c.Spec.entity()
		if _, ok := factsBy[ent]; !ok {
			keysBy[ent], factsBy[ent] = entityFacts(ent, in)
		}
		facts := factsBy[ent]
		for _, svc := range keysBy[ent] {
			if err := ctx.Err(); err != nil {
				return o, err
			}
			r := c.Evaluate(svc, facts[svc], in.Now)
			o.Evaluated++
			current[c.Name] = append(current[c.Name], r)
			p, had := prev[[2]string{c.Name, svc}]
			if had && p.Same(r) {
				continue
			}
			recs = append(recs, Record{Result: r, At: in.Now})
			if had && c.Spec.levelIndex(r.Level) < c.Spec.levelIndex(p.Level) {
				team := teamOf(ent, svc, in, facts[svc])
				payload := map[string]any{"scorecard": c.Name, "entity": svc, "from": p.Level, "to": r.Level, "team": team}
				if ent == EntityService {
					payload["service"] = svc
				}
				notices = append(notices, Notice{Key: fmt.Sprintf("drop/%s/%s/%d", c.Name, svc, in.Now.UnixNano()), Event: "scorecard.level_dropped",
					Subject: c.Name, Payload: payload, Team: team})
			}
		}
	}
	if len(recs) > 0 {
		if err := st.Append(ctx, recs); err != nil {
			return o, err
		}
	}
	o.Changed = len(recs)
	inits := Initiatives(in.Set)
	names := make([]string, 0, len(inits))
	for n := range inits {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		sp := inits[n]
		card := cardNamed(cards, sp.Scorecard)
		if card == nil || card.Spec.entity() != EntityService {
			// Initiatives select services: one on a host or host group
			// scorecard has nothing to count.
			continue
		}
		o.wake(sp.Start.End().Add(-24*time.Hour), in.Now)
		o.wake(sp.Target.End(), in.Now)
		for _, d := range sp.remindDays() {
			o.wake(sp.Target.End().Add(-time.Duration(d)*24*time.Hour), in.Now)
		}
		p := Progress(n, sp, card.Spec, in.Set, current[card.Name], in.Now)
		notices = append(notices, initiativeNotices(n, sp, p, in.Now)...)
	}
	for _, nt := range notices {
		to := targets
		if ts := in.Set.TeamOf(nt.Team); in.TeamWebhooks && nt.Team != "" && ts != nil && ts.Webhook != "" {
			to = append(slices.Clip(targets), TeamTarget(nt.Team))
		}
		queued, err := st.Notify(ctx, nt, to, in.Now)
		if err != nil {
			return o, err
		}
		if queued {
			o.Notices++
		}
	}
	return o, nil
}

func (o *Outcome) wake(t, now time.Time) {
	if t.After(now) && (o.NextWake.IsZero() || t.Before(o.NextWake)) {
		o.NextWake = t
	}
}

func cardNamed(cards []*Compiled, name string) *Compiled {
	for _, c := range cards {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// EvaluateAll scores the entities of a set (its services, hosts or host
// groups, as the scorecard's entity is) on one scorecard now, without
// keeping anything (what show and the catalog read when nothing is kept
// yet is the same computation).
func EvaluateAll(c *Compiled, in Inputs) []Result {
	keys, facts := entityFacts(c.Spec.entity(), in)
	var out []Result
	for _, svc := range keys {
		out = append(out, c.Evaluate(svc, facts[svc], in.Now))
	}
	return out
}
