package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/patchbay/patchbay/advisory"
	"github.com/patchbay/patchbay/fleet"
	"github.com/patchbay/patchbay/kpi"
	"github.com/patchbay/patchbay/policy"
	"github.com/patchbay/patchbay/rollout"
	"github.com/patchbay/patchbay/scorecard"
)

// scoreInputs reads what every service's facts are computed from.
func (s *Server) scoreInputs(ctx context.Context) (scorecard.Inputs, error) {
	now := s.cfg.Now()
	in := scorecard.Inputs{Now: now, Stale: s.cfg.AgentStale, TeamWebhooks: s.cfg.TeamWebhooks, KEV: map[string]bool{}, KPI: map[string]kpi.Figures{}}
	set, err := s.Policy(ctx)
	if err != nil {
		return in, err
	}
	in.Set = set
	if in.Hosts, err = s.db.Fleet.Hosts(ctx, fleet.HostFilter{}); err != nil {
		return in, err
	}
	in.Assets = kpi.AssetsOf(in.Hosts, set)
	ivs, err := s.db.KPI.Intervals(ctx, kpi.Range{After: now, To: now, Detail: true})
	if err != nil {
		return in, err
	}
	for _, iv := range ivs {
		if iv.OpenAt(now) {
			in.Open = append(in.Open, iv)
		}
	}
	// KEV, of the open findings' vulnerabilities only: the catalog is
	// looked up by CVE as the vulnerabilities endpoint does (the fleet's
	// aggregate of every vulnerability carries no KEV and is the slowest
	// read there is at fleet scale).
	var cves []string
	seen := map[string]bool{}
	for _, iv := range in.Open {
		if c := advisory.CVEOf(iv.Vulnerability); c != "" && !seen[c] {
			seen[c] = true
			cves = append(cves, c)
		}
	}
	kev, _, err := s.db.Exploitation(ctx, cves)
	if err != nil {
		return in, err
	}
	for _, iv := range in.Open {
		if _, ok := kev[advisory.CVEOf(iv.Vulnerability)]; ok {
			in.KEV[iv.Vulnerability] = true
		}
	}
	rep, err := s.KPI().Report(ctx, kpi.Query{From: now.Add(-90 * 24 * time.Hour), To: now, By: kpi.ByService})
	if err != nil {
		return in, err
	}
	for _, g := range rep.Groups {
		in.KPI[g.Group] = g
	}
	return in, nil
}

// ScoreNow scores every service on every scorecard (what the leader does
// when something changed), keeping what changed and queueing notices.
func (s *Server) ScoreNow(ctx context.Context) (scorecard.Outcome, error) {
	set, err := s.Policy(ctx)
	if err != nil {
		return scorecard.Outcome{}, fmt.Errorf("score: %w", err)
	}
	if !slices.ContainsFunc(set.Documents(), func(d *policy.Document) bool { return d.Kind == scorecard.KindScorecard }) {
		return scorecard.Outcome{}, nil // nothing to score: read nothing
	}
	in, err := s.scoreInputs(ctx)
	if err != nil {
		return scorecard.Outcome{}, fmt.Errorf("score: %w", err)
	}
	o, err := scorecard.Score(ctx, s.db.Scores, in, s.notifyTargets())
	if err != nil {
		return o, fmt.Errorf("score: %w", err)
	}
	return o, nil
}

// markScores records that something scores read changed: the leader
// scores again within a second.
func (s *Server) markScores(ctx context.Context, reason string) {
	if err := s.db.Scores.Mark(ctx, reason, s.cfg.Now()); err != nil && ctx.Err() == nil {
		s.log.Warn("mark scores", "reason", reason, "err", err)
	}
}

// scoreState is the leader's: the last mark scored and the next time
// results change by time alone.
type scoreState struct {
	scored int64
	wake   time.Time
	first  bool
	pruned time.Time
	ran    time.Time // when it last scored (the machine's clock)
}

// scoreGap is the least time between two scorings: a burst of events
// (agents enrolling) is scored together.
const scoreGap = 5 * time.Second

// scoreRetention is how long score history is kept (each service's
// latest result is kept however old).
const scoreRetention = 400 * 24 * time.Hour

// scoreIfMarked scores when there are marks newer than the last scoring,
// or the wake time has come, or it never scored in this term.
func (s *Server) scoreIfMarked(ctx context.Context, st *scoreState) {
	mark, err := s.db.Scores.Marked(ctx)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("score marks", "err", err)
		}
		return
	}
	now := s.cfg.Now()
	if now.Sub(st.pruned) >= 24*time.Hour {
		if err := s.db.Scores.Prune(ctx, now.Add(-scoreRetention)); err != nil && ctx.Err() == nil {
			s.log.Warn("prune score history", "err", err)
		}
		st.pruned = now
	}
	if st.first && (time.Since(st.ran) < scoreGap || mark == st.scored && (st.wake.IsZero() || now.Before(st.wake))) {
		return
	}
	st.ran = time.Now()
	o, err := s.ScoreNow(ctx)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("score", "err", err)
		}
		return
	}
	st.first, st.scored, st.wake = true, mark, o.NextWake
	if mark > 0 {
		if err := s.db.Scores.Unmark(ctx, mark); err != nil && ctx.Err() == nil {
			s.log.Warn("score marks", "err", err)
		}
	}
	if o.Changed > 0 || o.Notices > 0 {
		s.log.Info("scored", "evaluated", o.Evaluated, "changed", o.Changed, "notices", o.Notices)
	}
}

// currentResults are the kept results of a scorecard, by service.
func (s *Server) currentResults(ctx context.Context, card string) ([]scorecard.Result, error) {
	latest, err := s.db.Scores.Latest(ctx)
	if err != nil {
		return nil, err
	}
	var out []scorecard.Result
	for _, r := range latest {
		if r.Scorecard == card {
			out = append(out, r.Result)
		}
	}
	return out, nil
}

func (s *Server) cards(ctx context.Context) (*policy.Set, []*scorecard.Compiled, error) {
	set, err := s.Policy(ctx)
	if err != nil {
		return nil, nil, err
	}
	cards, err := scorecard.Scorecards(set)
	return set, cards, err
}

func (s *Server) listScorecards(w http.ResponseWriter, r *http.Request, _ *caller) error {
	_, cards, err := s.cards(r.Context())
	if err != nil {
		return err
	}
	out := []scorecard.Summary{}
	for _, c := range cards {
		res, err := s.currentResults(r.Context(), c.Name)
		if err != nil {
			return err
		}
		out = append(out, scorecard.Summarize(c.Name, c.Spec, res))
	}
	return writeJSON(w, http.StatusOK, out)
}

func (s *Server) getScorecard(w http.ResponseWriter, r *http.Request, _ *caller) error {
	set, cards, err := s.cards(r.Context())
	if err != nil {
		return err
	}
	name := r.PathValue("name")
	i := slices.IndexFunc(cards, func(c *scorecard.Compiled) bool { return c.Name == name })
	if i < 0 {
		return errNotFound(fmt.Sprintf("no Scorecard named %q", name))
	}
	c := cards[i]
	res, err := s.currentResults(r.Context(), name)
	if err != nil {
		return err
	}
	if team := r.URL.Query().Get("team"); team != "" {
		if set.TeamOf(team) == nil {
			return errNotFound(fmt.Sprintf("no Team named %q", team))
		}
		res = slices.DeleteFunc(res, func(x scorecard.Result) bool {
			svc := set.Service(x.Entity)
			return svc == nil || svc.Owner != team
		})
	}
	if res == nil {
		res = []scorecard.Result{}
	}
	d := scorecard.Detail{Summary: scorecard.Summarize(name, c.Spec, res), Spec: c.Spec, Results: res, Teams: scorecard.Rollups(c.Spec, set, res)}
	return writeJSON(w, http.StatusOK, d)
}

// initiative is an initiative's progress with its burn-up and the share
// of failing items a remediation is in flight for.
func (s *Server) initiative(ctx context.Context, set *policy.Set, cards []*scorecard.Compiled, name string, sp *scorecard.InitiativeSpec, burnup bool) (scorecard.InitiativeProgress, error) {
	i := slices.IndexFunc(cards, func(c *scorecard.Compiled) bool { return c.Name == sp.Scorecard })
	if i < 0 {
		return scorecard.InitiativeProgress{}, fmt.Errorf("initiative %s: no scorecard %s", name, sp.Scorecard)
	}
	card := cards[i]
	res, err := s.currentResults(ctx, card.Name)
	if err != nil {
		return scorecard.InitiativeProgress{}, err
	}
	now := s.cfg.Now()
	p := scorecard.Progress(name, sp, card.Spec, set, res, now)
	if len(p.Items) > 0 {
		flight, err := s.inFlight(ctx, set)
		if err != nil {
			return p, err
		}
		n := 0
		for k := range p.Items {
			if id := flight[p.Items[k].Service]; id != "" {
				p.Items[k].InFlight = id
				n++
			}
		}
		p.InFlight = float64(int(float64(n)/float64(len(p.Items))*1000+0.5)) / 1000
	}
	if burnup {
		hist, err := s.db.Scores.History(ctx, card.Name, "", time.Time{})
		if err != nil {
			return p, err
		}
		p.Burnup = scorecard.Burnup(sp, card.Spec, set, hist, now)
	}
	return p, nil
}

// inFlight names, by service, a plan not finished that patches its
// hosts (by its selector's services or its hosts).
func (s *Server) inFlight(ctx context.Context, set *policy.Set) (map[string]string, error) {
	rows, err := s.db.Rollouts.Plans(ctx, 500)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	var hosts []fleet.HostSummary
	for _, row := range rows {
		p := row.Plan
		switch {
		case p.State == rollout.Rejected:
			continue
		case row.Machine != nil && (row.Machine.State == rollout.Completed || row.Machine.State == rollout.Aborted):
			continue
		}
		for _, svc := range p.Selector.Services {
			if out[svc] == "" {
				out[svc] = p.ID
			}
		}
		full, err := s.db.Rollouts.Plan(ctx, p.ID, true)
		if err != nil {
			return nil, err
		}
		if hosts == nil {
			if hosts, err = s.db.Fleet.Hosts(ctx, fleet.HostFilter{}); err != nil {
				return nil, err
			}
		}
		ids := map[string]bool{}
		for _, h := range full.Plan.Hosts {
			ids[h.ID] = true
		}
		for _, a := range kpi.AssetsOf(hosts, set) {
			if !ids[a.ID] {
				continue
			}
			for _, svc := range a.Services {
				if out[svc] == "" {
					out[svc] = p.ID
				}
			}
		}
	}
	return out, nil
}

func (s *Server) listInitiatives(w http.ResponseWriter, r *http.Request, _ *caller) error {
	set, cards, err := s.cards(r.Context())
	if err != nil {
		return err
	}
	inits := scorecard.Initiatives(set)
	out := []scorecard.InitiativeProgress{}
	for _, n := range sortedKeys(inits) {
		p, err := s.initiative(r.Context(), set, cards, n, inits[n], false)
		if err != nil {
			return err
		}
		p.Items = nil
		out = append(out, p)
	}
	return writeJSON(w, http.StatusOK, out)
}

func (s *Server) getInitiative(w http.ResponseWriter, r *http.Request, _ *caller) error {
	set, cards, err := s.cards(r.Context())
	if err != nil {
		return err
	}
	name := r.PathValue("name")
	sp := scorecard.Initiatives(set)[name]
	if sp == nil {
		return errNotFound(fmt.Sprintf("no Initiative named %q", name))
	}
	p, err := s.initiative(r.Context(), set, cards, name, sp, true)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, p)
}

func (s *Server) scoreHistory(w http.ResponseWriter, r *http.Request, _ *caller) error {
	q := r.URL.Query()
	svc, card, team := q.Get("service"), q.Get("scorecard"), q.Get("team")
	host, group := q.Get("host"), q.Get("host_group")
	given := 0
	for _, v := range []string{svc, team, host, group} {
		if v != "" {
			given++
		}
	}
	if given != 1 {
		return errBadRequest("service, team, host or host_group: give one", "query.service")
	}
	since := time.Time{}
	if v := q.Get("since"); v != "" {
		d, err := kpi.ParseSince(v)
		if err != nil {
			return kpiError(err, "query.since")
		}
		since = s.cfg.Now().Add(-d)
	}
	set, err := s.Policy(r.Context())
	if err != nil {
		return err
	}
	if team != "" {
		if set.TeamOf(team) == nil {
			return errNotFound(fmt.Sprintf("no Team named %q", team))
		}
		// A team's history is its services' (the roll-up of any moment
		// is the average and worst of its services' latest records).
		h, err := s.db.Scores.History(r.Context(), card, "", since)
		if err != nil {
			return err
		}
		h = slices.DeleteFunc(h, func(rec scorecard.Record) bool {
			sp := set.Service(rec.Entity)
			return sp == nil || sp.Owner != team
		})
		return writeJSON(w, http.StatusOK, h)
	}
	key := svc
	switch {
	case host != "":
		// A host's results are kept under host/HOSTNAME, as long as
		// they are kept (a host since removed still has its history).
		key = scorecard.EntityKey(scorecard.EntityHost, host)
	case group != "":
		if !slices.Contains(scorecard.HostGroups(set), group) {
			return errNotFound(fmt.Sprintf("no HostGroup named %q", group))
		}
		key = scorecard.EntityKey(scorecard.EntityHostGroup, group)
	case set.Service(svc) == nil:
		return errNotFound(fmt.Sprintf("no Service named %q", svc))
	}
	h, err := s.db.Scores.History(r.Context(), card, key, since)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, h)
}

// FactsPush is the body of POST /services/{name}/facts.
type FactsPush struct {
	Facts map[string]string `json:"facts"`
}

func (s *Server) pushFacts(w http.ResponseWriter, r *http.Request, c *caller) error {
	ctx := r.Context()
	name := r.PathValue("name")
	set, err := s.Policy(ctx)
	if err != nil {
		return err
	}
	if set.Service(name) == nil {
		return errNotFound(fmt.Sprintf("no Service named %q: apply its Service document first", name))
	}
	var req FactsPush
	if err := decode(r, &req, true); err != nil {
		return err
	}
	if len(req.Facts) == 0 {
		return errBadRequest("facts: give at least one name=value", "facts")
	}
	for _, k := range sortedKeys(req.Facts) {
		if err := checkFactName(k); err != nil {
			return errBadRequest(err.Error(), "facts."+k)
		}
		if len(req.Facts[k]) > 1024 {
			return errBadRequest(fmt.Sprintf("fact %s: value longer than 1024 bytes", k), "facts."+k)
		}
	}
	now := s.cfg.Now().UTC()
	var out []scorecard.CustomFact
	for _, k := range sortedKeys(req.Facts) {
		f := scorecard.CustomFact{Service: name, Name: k, Value: req.Facts[k], At: now, Actor: c.actor()}
		if err := s.db.Scores.PushFact(ctx, f); err != nil {
			return err
		}
		out = append(out, f)
	}
	return writeJSON(w, http.StatusOK, out)
}

func checkFactName(k string) error {
	if k == "" || len(k) > 63 {
		return fmt.Errorf("fact name %q: want 1 to 63 characters", k)
	}
	for i, r := range k {
		if !(r == '_' || ('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z') || (i > 0 && '0' <= r && r <= '9')) {
			return fmt.Errorf("fact name %q: want letters, digits and '_', not starting with a digit", k)
		}
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// entityText names a notice's entity: a service by its name, a host or
// host group by its kind and name.
func entityText(p map[string]any) string {
	if s, ok := p["service"].(string); ok && s != "" {
		return fmt.Sprintf("service `%s`", s)
	}
	e, _ := p["entity"].(string)
	kind, name, ok := strings.Cut(e, "/")
	if !ok {
		return fmt.Sprintf("`%s`", e)
	}
	if kind == scorecard.EntityHostGroup {
		kind = "host group"
	}
	return fmt.Sprintf("%s `%s`", kind, name)
}

// scoreText renders a scorecard or initiative notice as Slack text.
func scoreText(n rollout.Notification) (string, bool) {
	var p map[string]any
	_ = json.Unmarshal(n.Payload, &p)
	switch n.Event {
	case "scorecard.level_dropped":
		return fmt.Sprintf("patchbay: %v (team %v) dropped from %v to %v on scorecard `%v`", entityText(p), orNone(p["team"]), orNone(p["from"]), orNone(p["to"]), p["scorecard"]), true
	case "initiative.started":
		return fmt.Sprintf("patchbay: initiative `%v` started: %v by %v", p["initiative"], p["scorecard"], p["target"]), true
	case "initiative.reminder":
		return fmt.Sprintf("patchbay: initiative `%v`: team %v has %v of %v services passing, %v days before the target %v", p["initiative"], p["team"], p["passing"], p["entities"], p["days_before"], p["target"]), true
	case "scorecard.exemption_expired":
		return fmt.Sprintf("patchbay: the exemption of %v from rule `%v` of scorecard `%v` expired on %v (approved by %v)", entityText(p), p["rule"], p["scorecard"], p["expired"], p["approver"]), true
	case "initiative.done":
		return fmt.Sprintf("patchbay: initiative `%v` is done", p["initiative"]), true
	case "initiative.missed":
		return fmt.Sprintf("patchbay: initiative `%v` *missed* its target %v", p["initiative"], p["target"]), true
	}
	return "", false
}

func orNone(v any) any {
	if v == "" || v == nil {
		return "(none)"
	}
	return v
}
