package server

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/patchbay/patchbay/fleet"
	"github.com/patchbay/patchbay/kpi"
	"github.com/patchbay/patchbay/scorecard"
)

var prioOrder = map[string]int{"P1": 1, "P2": 2, "P3": 3, "P4": 4, "": 5}

func (s *Server) getService(w http.ResponseWriter, r *http.Request, _ *caller) error {
	ctx := r.Context()
	name := r.PathValue("name")
	in, err := s.scoreInputs(ctx)
	if err != nil {
		return err
	}
	spec := in.Set.Service(name)
	if spec == nil {
		return errNotFound(fmt.Sprintf("no Service named %q", name))
	}
	if in.Custom, err = s.db.Scores.CustomFacts(ctx); err != nil {
		return err
	}
	f := scorecard.FactsOf(in)[name]
	v := scorecard.ServiceView{Name: name, Spec: spec, Team: in.Set.TeamOf(spec.Owner), Facts: f.Values, KPI: in.KPI[name],
		Hosts: []scorecard.CatalogHost{}, Patches: []scorecard.PatchGroup{}, Scores: []scorecard.Result{}, Initiatives: []string{}, Rollouts: []scorecard.Touch{}}
	for k, val := range f.Custom {
		v.Facts["custom."+k] = val
	}
	if v.Custom, err = s.db.Scores.FactHistory(ctx, name, 50); err != nil {
		return err
	}
	ids := map[string]bool{}
	hostOf := map[string]fleet.HostSummary{}
	for _, h := range in.Hosts {
		hostOf[h.ID] = h
	}
	for _, a := range in.Assets {
		if !slices.Contains(a.Services, name) && a.Service != name {
			continue
		}
		ids[a.ID] = true
		h := hostOf[a.ID]
		if a.Service != "" {
			pkgs, err := s.db.Fleet.Inventory(ctx, a.ID)
			if err != nil {
				return err
			}
			v.Inventory = &scorecard.InventoryAge{Packages: len(pkgs), Uploaded: h.LastSeen, AgeDays: int(in.Now.Sub(h.LastSeen).Hours() / 24)}
			continue
		}
		v.Hosts = append(v.Hosts, scorecard.CatalogHost{ID: h.ID, Hostname: h.Hostname, OS: h.Facts.OSPretty, LastSeen: h.LastSeen, Open: h.Open, Reboot: h.Facts.RebootRequired})
	}
	groups := map[[3]string]*scorecard.PatchGroup{}
	groupHosts := map[[3]string]map[string]bool{}
	for _, iv := range in.Open {
		if !ids[iv.Asset] {
			continue
		}
		k := [3]string{iv.Ecosystem, iv.Package, iv.Fixed}
		g := groups[k]
		if g == nil {
			g = &scorecard.PatchGroup{Ecosystem: iv.Ecosystem, Package: iv.Package, Fixed: iv.Fixed, Priority: iv.Priority}
			groups[k], groupHosts[k] = g, map[string]bool{}
		}
		g.Findings++
		groupHosts[k][iv.Asset] = true
		if prioOrder[iv.Priority] < prioOrder[g.Priority] {
			g.Priority = iv.Priority
		}
		if !slices.Contains(g.Vulnerabilities, iv.Vulnerability) {
			g.Vulnerabilities = append(g.Vulnerabilities, iv.Vulnerability)
		}
	}
	for k, g := range groups {
		g.Hosts = len(groupHosts[k])
		slices.Sort(g.Vulnerabilities)
		v.Patches = append(v.Patches, *g)
	}
	slices.SortFunc(v.Patches, func(a, b scorecard.PatchGroup) int {
		if d := prioOrder[a.Priority] - prioOrder[b.Priority]; d != 0 {
			return d
		}
		if a.Findings != b.Findings {
			return b.Findings - a.Findings
		}
		return cmpStr(a.Package, b.Package)
	})
	latest, err := s.db.Scores.Latest(ctx)
	if err != nil {
		return err
	}
	for _, rec := range latest {
		if rec.Entity == name {
			v.Scores = append(v.Scores, rec.Result)
		}
	}
	inits := scorecard.Initiatives(in.Set)
	for _, n := range sortedKeys(inits) {
		if slices.Contains(scorecard.Selected(inits[n], in.Set), name) {
			v.Initiatives = append(v.Initiatives, n)
		}
	}
	if v.Rollouts, err = s.rolloutsTouching(ctx, name, ids); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, v)
}

func cmpStr(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// rolloutsTouching are the plans, of the newest 50, that named the
// service or any of its hosts, newest first.
func (s *Server) rolloutsTouching(ctx context.Context, name string, ids map[string]bool) ([]scorecard.Touch, error) {
	rows, err := s.db.Rollouts.Plans(ctx, 50)
	if err != nil {
		return nil, err
	}
	out := []scorecard.Touch{}
	for _, row := range rows {
		full, err := s.db.Rollouts.Plan(ctx, row.Plan.ID, true)
		if err != nil {
			return nil, err
		}
		n := 0
		for _, h := range full.Plan.Hosts {
			if ids[h.ID] {
				n++
			}
		}
		if n == 0 && !slices.Contains(row.Plan.Selector.Services, name) {
			continue
		}
		state := string(row.Plan.State)
		if row.Machine != nil {
			state = string(row.Machine.State)
		}
		out = append(out, scorecard.Touch{Plan: row.Plan.ID, Strategy: row.Plan.Strategy, State: state, Created: row.Plan.CreatedAt, Hosts: n})
	}
	return out, nil
}

func (s *Server) getTeam(w http.ResponseWriter, r *http.Request, _ *caller) error {
	ctx := r.Context()
	name := r.PathValue("name")
	set, cards, err := s.cards(ctx)
	if err != nil {
		return err
	}
	spec := set.TeamOf(name)
	if spec == nil {
		return errNotFound(fmt.Sprintf("no Team named %q", name))
	}
	latest, err := s.db.Scores.Latest(ctx)
	if err != nil {
		return err
	}
	hosts, err := s.db.Fleet.Hosts(ctx, fleet.HostFilter{})
	if err != nil {
		return err
	}
	assets := kpi.AssetsOf(hosts, set)
	open := map[string]int{}
	for _, h := range hosts {
		open[h.ID] = h.OpenTotal()
	}
	v := scorecard.TeamView{Name: name, Spec: spec, Services: []scorecard.TeamService{}, Rollups: map[string]scorecard.TeamRollup{}, Initiatives: []scorecard.TeamProgressOf{}}
	for _, svc := range scorecard.Services(set) {
		sp := set.Service(svc)
		if sp.Owner != name {
			continue
		}
		ts := scorecard.TeamService{Name: svc, Tier: sp.Tier, Scores: []scorecard.Result{}}
		for _, a := range assets {
			if slices.Contains(a.Services, svc) || a.Service == svc {
				if a.Service == "" {
					ts.Hosts++
				}
				ts.Open += open[a.ID]
			}
		}
		for _, rec := range latest {
			if rec.Entity == svc {
				ts.Scores = append(ts.Scores, rec.Result)
			}
		}
		v.Services = append(v.Services, ts)
	}
	for _, c := range cards {
		res, err := s.currentResults(ctx, c.Name)
		if err != nil {
			return err
		}
		for _, ru := range scorecard.Rollups(c.Spec, set, res) {
			if ru.Team == name {
				v.Rollups[c.Name] = ru
			}
		}
	}
	inits := scorecard.Initiatives(set)
	for _, n := range sortedKeys(inits) {
		p, err := s.initiative(ctx, set, cards, n, inits[n], false)
		if err != nil {
			return err
		}
		for _, tp := range p.Teams {
			if tp.Team == name {
				v.Initiatives = append(v.Initiatives, scorecard.TeamProgressOf{Initiative: n, State: p.State, Target: p.Target, TeamProgress: tp})
			}
		}
	}
	now := s.cfg.Now()
	rep, err := s.KPI().Report(ctx, kpi.Query{From: now.Add(-90 * 24 * time.Hour), To: now, Filter: kpi.Filter{Team: name}})
	if err != nil {
		return err
	}
	v.KPI = rep.Total
	return writeJSON(w, http.StatusOK, v)
}
