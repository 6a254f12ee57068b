package cli

import (
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/patchbay/patchbay/api"
	"github.com/patchbay/patchbay/internal/table"
	"github.com/patchbay/patchbay/scorecard"
)

// newScorecardCmds are the catalog and scorecard commands: services,
// teams, scorecards, initiatives, scores and facts.
func newScorecardCmds(e *env) []*cobra.Command {
	return []*cobra.Command{newServicesCmd(e), newTeamsCmd(e), newScorecardsCmd(e), newInitiativesCmd(e), newScoresCmd(e), newFactsCmd(e)}
}

func levelOrNone(l string) string {
	if l == "" {
		return "(none)"
	}
	return l
}

// num is a fact's number as JSON decoded it.
func num(v any) float64 {
	f, _ := v.(float64)
	return f
}

func score(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }

func pct(v float64) string { return strconv.FormatFloat(100*v, 'f', 0, 64) + "%" }

func newServicesCmd(e *env) *cobra.Command {
	o := &clientOpts{}
	cmd := &cobra.Command{Use: "services", Short: "The service catalog: owner, hosts, inventory, findings by patch, KPIs, scores, initiatives, rollouts"}
	o.flags(cmd)
	show := &cobra.Command{
		Use:   "show NAME",
		Short: "Show a service's catalog page",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client()
			if err != nil {
				return err
			}
			var v scorecard.ServiceView
			if err := c.Do(cmd.Context(), http.MethodGet, api.Prefix+"/services/"+url.PathEscape(args[0]), nil, &v); err != nil {
				return err
			}
			if o.data() {
				return printData(e.stdout, o.output, v)
			}
			w := e.stdout
			fmt.Fprintf(w, "Service %s: team %s, tier %d, %s\n", v.Name, v.Spec.Owner, v.Spec.Tier, v.Spec.Exposure)
			if v.Spec.Description != "" {
				fmt.Fprintf(w, "  %s\n", v.Spec.Description)
			}
			if v.Team != nil && v.Team.Contact != "" {
				fmt.Fprintf(w, "contact: %s\n", v.Team.Contact)
			}
			if v.Team != nil {
				for _, m := range v.Team.Members {
					fmt.Fprintf(w, "member: %s %s %s\n", m.Name, m.Email, m.Chat)
				}
			}
			if v.Spec.Chat != "" {
				fmt.Fprintf(w, "chat: %s\n", v.Spec.Chat)
			}
			if v.Spec.Repository != "" {
				fmt.Fprintf(w, "repository: %s\n", v.Spec.Repository)
			}
			for _, l := range v.Spec.Links {
				fmt.Fprintf(w, "%s: %s\n", l.Name, l.URL)
			}
			fmt.Fprintf(w, "hosts: %d\n", len(v.Hosts))
			for _, h := range v.Hosts {
				fmt.Fprintf(w, "  %s  %s  P1 %d P2 %d P3 %d P4 %d  seen %s\n", h.Hostname, h.OS, h.Open["P1"], h.Open["P2"], h.Open["P3"], h.Open["P4"], ago(time.Now(), h.LastSeen))
			}
			if v.Inventory != nil {
				fmt.Fprintf(w, "application inventory: %d packages, uploaded %s (%d days ago)\n", v.Inventory.Packages, v.Inventory.Uploaded.UTC().Format(time.RFC3339), v.Inventory.AgeDays)
			}
			fmt.Fprintf(w, "KPIs (90 days): MTTP %.1fd, SLA %s, patch success %s; %v open, %v overdue, %v in KEV\n",
				num(v.Facts["mttp_days"]), pct(num(v.Facts["sla_compliance"])), pct(num(v.Facts["patch_success_rate"])), v.Facts["open"], v.Facts["overdue"], v.Facts["kev"])
			fmt.Fprintf(w, "open findings by patch: %d patches\n", len(v.Patches))
			for _, p := range v.Patches {
				fixed := p.Fixed
				if fixed == "" {
					fixed = "(no fix)"
				}
				fmt.Fprintf(w, "  %s %s → %s  %s, %d findings on %d assets: %s\n", p.Ecosystem, p.Package, fixed, p.Priority, p.Findings, p.Hosts, strings.Join(p.Vulnerabilities, " "))
			}
			for _, r := range v.Scores {
				fmt.Fprintf(w, "scorecard %s: %s, score %s\n", r.Scorecard, levelOrNone(r.Level), score(r.Score))
				for _, rr := range r.Failing() {
					fmt.Fprintf(w, "  failing %s (%s): %s\n", rr.Rule, rr.Level, rr.Message)
				}
			}
			if len(v.Initiatives) > 0 {
				fmt.Fprintf(w, "initiatives: %s\n", strings.Join(v.Initiatives, ", "))
			}
			for _, t := range v.Rollouts {
				fmt.Fprintf(w, "rollout %s (%s): %s, %d of its hosts, %s\n", t.Plan, t.Strategy, t.State, t.Hosts, t.Created.UTC().Format(time.DateOnly))
			}
			return nil
		},
	}
	cmd.AddCommand(show)
	return cmd
}

func newTeamsCmd(e *env) *cobra.Command {
	o := &clientOpts{}
	cmd := &cobra.Command{Use: "teams", Short: "Teams: their services, scorecard roll-ups, initiatives and KPIs"}
	o.flags(cmd)
	show := &cobra.Command{
		Use:   "show NAME",
		Short: "Show a team's catalog page",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client()
			if err != nil {
				return err
			}
			var v scorecard.TeamView
			if err := c.Do(cmd.Context(), http.MethodGet, api.Prefix+"/teams/"+url.PathEscape(args[0]), nil, &v); err != nil {
				return err
			}
			if o.data() {
				return printData(e.stdout, o.output, v)
			}
			w := e.stdout
			fmt.Fprintf(w, "Team %s", v.Name)
			if v.Spec.Contact != "" {
				fmt.Fprintf(w, ", contact %s", v.Spec.Contact)
			}
			fmt.Fprintln(w)
			tb := table.New(table.Column{Name: "SERVICE"}, right("TIER"), right("HOSTS"), right("OPEN"), table.Column{Name: "SCORES", Shrink: 1, Min: 10})
			for _, s := range v.Services {
				var sc []string
				for _, r := range s.Scores {
					sc = append(sc, fmt.Sprintf("%s %s %s", r.Scorecard, levelOrNone(r.Level), score(r.Score)))
				}
				tb.Row(s.Name, strconv.Itoa(s.Tier), strconv.Itoa(s.Hosts), strconv.Itoa(s.Open), strings.Join(sc, "; "))
			}
			if err := e.writeTable(tb, o.wide); err != nil {
				return err
			}
			for _, k := range sortedKeys(v.Rollups) {
				r := v.Rollups[k]
				fmt.Fprintf(w, "scorecard %s: average %s, worst %s (%s)\n", k, score(r.Average), score(r.Worst), levelOrNone(r.WorstLevel))
			}
			for _, i := range v.Initiatives {
				fmt.Fprintf(w, "initiative %s (%s, target %s): %d of %d passing\n", i.Initiative, i.State, i.Target, i.Passing, i.Entities)
			}
			if k, ok := v.KPI.(map[string]any); ok {
				open, _ := k["open"].(map[string]any)
				sla, _ := k["sla"].(map[string]any)
				fmt.Fprintf(w, "KPIs (90 days): %v open, %v overdue; SLA %v of %v due on time\n", open["count"], open["overdue"], sla["on_time"], sla["due"])
			}
			return nil
		},
	}
	cmd.AddCommand(show)
	return cmd
}

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}

func newScorecardsCmd(e *env) *cobra.Command {
	o := &clientOpts{}
	cmd := &cobra.Command{Use: "scorecards", Short: "Scorecards: levels and scores of every service, team roll-ups"}
	o.flags(cmd)
	list := &cobra.Command{
		Use:   "list",
		Short: "List the scorecards and how the services stand on each",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client()
			if err != nil {
				return err
			}
			var out []scorecard.Summary
			if err := c.Do(cmd.Context(), http.MethodGet, api.Prefix+"/scorecards", nil, &out); err != nil {
				return err
			}
			if o.data() {
				return printData(e.stdout, o.output, out)
			}
			tb := table.New(table.Column{Name: "SCORECARD"}, right("RULES"), right("SERVICES"), right("AVERAGE"), table.Column{Name: "BY LEVEL", Shrink: 1, Min: 10})
			for _, s := range out {
				var by []string
				for _, l := range append([]string{""}, s.Levels...) {
					by = append(by, fmt.Sprintf("%s %d", levelOrNone(l), s.ByLevel[l]))
				}
				tb.Row(s.Name, strconv.Itoa(s.Rules), strconv.Itoa(s.Services), score(s.Average), strings.Join(by, ", "))
			}
			return e.writeTable(tb, o.wide)
		},
	}
	var team string
	show := &cobra.Command{
		Use:   "show NAME",
		Short: "Show every service's level, score and failing rules, and the team roll-ups",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client()
			if err != nil {
				return err
			}
			q := url.Values{}
			if team != "" {
				q.Set("team", team)
			}
			var d scorecard.Detail
			if err := c.Do(cmd.Context(), http.MethodGet, api.Prefix+"/scorecards/"+url.PathEscape(args[0])+"?"+q.Encode(), nil, &d); err != nil {
				return err
			}
			if o.data() {
				return printData(e.stdout, o.output, d)
			}
			fmt.Fprintf(e.stdout, "Scorecard %s: levels %s; %d services, average %s\n", d.Name, strings.Join(d.Levels, " → "), d.Services, score(d.Average))
			tb := table.New(table.Column{Name: "SERVICE"}, table.Column{Name: "LEVEL"}, right("SCORE"), table.Column{Name: "FAILING", Shrink: 1, Min: 10})
			for _, r := range d.Results {
				var f []string
				for _, rr := range r.Failing() {
					f = append(f, rr.Rule)
				}
				tb.Row(r.Entity, levelOrNone(r.Level), score(r.Score), strings.Join(f, ", "))
			}
			if err := e.writeTable(tb, o.wide); err != nil {
				return err
			}
			tt := table.New(table.Column{Name: "TEAM"}, right("SERVICES"), right("AVERAGE"), right("WORST"), table.Column{Name: "WORST LEVEL"})
			for _, t := range d.Teams {
				tt.Row(t.Team, strconv.Itoa(t.Services), score(t.Average), score(t.Worst), levelOrNone(t.WorstLevel))
			}
			return e.writeTable(tt, o.wide)
		},
	}
	show.Flags().StringVar(&team, "team", "", "only this team's services")
	cmd.AddCommand(list, show)
	return cmd
}

func newInitiativesCmd(e *env) *cobra.Command {
	o := &clientOpts{}
	cmd := &cobra.Command{Use: "initiatives", Short: "Initiatives: a scorecard level by a date, progress, burn-up, action items"}
	o.flags(cmd)
	list := &cobra.Command{
		Use:   "list",
		Short: "List the initiatives with their state and progress",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client()
			if err != nil {
				return err
			}
			var out []scorecard.InitiativeProgress
			if err := c.Do(cmd.Context(), http.MethodGet, api.Prefix+"/initiatives", nil, &out); err != nil {
				return err
			}
			if o.data() {
				return printData(e.stdout, o.output, out)
			}
			tb := table.New(table.Column{Name: "INITIATIVE"}, table.Column{Name: "SCORECARD"}, table.Column{Name: "GOAL"}, table.Column{Name: "STATE"},
				table.Column{Name: "TARGET"}, right("PASSING"), right("IN FLIGHT"))
			for _, p := range out {
				tb.Row(p.Name, p.Scorecard, goal(p), p.State, p.Target, fmt.Sprintf("%d/%d %s", p.Passing, p.Entities, pct(p.Share)), pct(p.InFlight))
			}
			return e.writeTable(tb, o.wide)
		},
	}
	show := &cobra.Command{
		Use:   "show NAME",
		Short: "Show an initiative: per team, burn-up, action items of each failing service",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client()
			if err != nil {
				return err
			}
			var p scorecard.InitiativeProgress
			if err := c.Do(cmd.Context(), http.MethodGet, api.Prefix+"/initiatives/"+url.PathEscape(args[0]), nil, &p); err != nil {
				return err
			}
			if o.data() {
				return printData(e.stdout, o.output, p)
			}
			w := e.stdout
			fmt.Fprintf(w, "Initiative %s: %s on %s, %s to %s, %s\n", p.Name, goal(p), p.Scorecard, p.Start, p.Target, p.State)
			fmt.Fprintf(w, "passing: %d of %d (%s); failing items with a remediation in flight: %s\n", p.Passing, p.Entities, pct(p.Share), pct(p.InFlight))
			for _, t := range p.Teams {
				fmt.Fprintf(w, "  team %s: %d of %d\n", t.Team, t.Passing, t.Entities)
			}
			if n := len(p.Burnup); n > 0 {
				b := p.Burnup[n-1]
				fmt.Fprintf(w, "burn-up: %d days, %d of %d passing on %s\n", n, b.Passing, b.Total, b.Day)
			}
			for _, it := range p.Items {
				fmt.Fprintf(w, "%s (team %s, %s):\n", it.Service, it.Team, levelOrNone(it.Level))
				for _, rr := range it.Failing {
					fmt.Fprintf(w, "  - %s: %s\n", rr.Rule, rr.Message)
				}
				switch {
				case it.InFlight != "":
					fmt.Fprintf(w, "  rollout in flight: %s\n", it.InFlight)
				case it.Plan != "":
					fmt.Fprintf(w, "  fix: %s\n", it.Plan)
				}
			}
			return nil
		},
	}
	cmd.AddCommand(list, show)
	return cmd
}

func goal(p scorecard.InitiativeProgress) string {
	if p.Level != "" {
		return "level " + p.Level
	}
	return "rules " + strings.Join(p.Rules, ",")
}

func newScoresCmd(e *env) *cobra.Command {
	o := &clientOpts{}
	cmd := &cobra.Command{Use: "scores", Short: "Score history: every evaluation that changed a service's, host's or host group's result"}
	o.flags(cmd)
	var service, team, host, group, card, since string
	history := &cobra.Command{
		Use:   "history (--service S | --team T | --host H | --host-group G)",
		Short: "List a service's (a team's services', a host's, a host group's) score history, oldest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			given := 0
			for _, v := range []string{service, team, host, group} {
				if v != "" {
					given++
				}
			}
			if given != 1 {
				return fmt.Errorf("--service, --team, --host or --host-group: give one")
			}
			c, err := o.client()
			if err != nil {
				return err
			}
			q := url.Values{}
			switch {
			case service != "":
				q.Set("service", service)
			case team != "":
				q.Set("team", team)
			case host != "":
				q.Set("host", host)
			default:
				q.Set("host_group", group)
			}
			if card != "" {
				q.Set("scorecard", card)
			}
			if since != "" {
				q.Set("since", since)
			}
			var recs []scorecard.Record
			if err := c.Do(cmd.Context(), http.MethodGet, api.Prefix+"/scores/history?"+q.Encode(), nil, &recs); err != nil {
				return err
			}
			if o.data() {
				return printData(e.stdout, o.output, recs)
			}
			tb := table.New(table.Column{Name: "TIME"}, table.Column{Name: "SCORECARD"}, table.Column{Name: "ENTITY"}, table.Column{Name: "LEVEL"}, right("SCORE"), table.Column{Name: "FAILING", Shrink: 1, Min: 10})
			for _, r := range recs {
				var f []string
				for _, rr := range r.Failing() {
					f = append(f, rr.Rule)
				}
				tb.Row(r.At.UTC().Format(time.RFC3339), r.Scorecard, r.Entity, levelOrNone(r.Level), score(r.Score), strings.Join(f, ", "))
			}
			return e.writeTable(tb, o.wide)
		},
	}
	history.Flags().StringVar(&service, "service", "", "the service")
	history.Flags().StringVar(&team, "team", "", "the team's services instead")
	history.Flags().StringVar(&host, "host", "", "a host (by hostname) instead, on host scorecards")
	history.Flags().StringVar(&group, "host-group", "", "a host group instead, on host group scorecards")
	history.Flags().StringVar(&card, "scorecard", "", "only this scorecard")
	history.Flags().StringVar(&since, "since", "", "only this recent: 90d, 12w, 13m or a duration")
	cmd.AddCommand(history)
	return cmd
}

func newFactsCmd(e *env) *cobra.Command {
	o := &clientOpts{}
	cmd := &cobra.Command{Use: "facts", Short: "Custom facts of services, pushed from CI for scorecard rules"}
	o.flags(cmd)
	var service string
	push := &cobra.Command{
		Use:   "push --service S NAME=VALUE...",
		Short: "Push facts of a service (kept with their time; rules read them as custom[\"NAME\"])",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if service == "" {
				return fmt.Errorf("--service: required")
			}
			facts := map[string]string{}
			for _, a := range args {
				k, v, ok := strings.Cut(a, "=")
				if !ok || k == "" {
					return fmt.Errorf("%q: want NAME=VALUE", a)
				}
				facts[k] = v
			}
			c, err := o.client()
			if err != nil {
				return err
			}
			var out []scorecard.CustomFact
			if err := c.Do(cmd.Context(), http.MethodPost, api.Prefix+"/services/"+url.PathEscape(service)+"/facts", map[string]any{"facts": facts}, &out); err != nil {
				return err
			}
			if o.data() {
				return printData(e.stdout, o.output, out)
			}
			for _, f := range out {
				fmt.Fprintf(e.stdout, "%s %s=%s at %s\n", f.Service, f.Name, f.Value, f.At.UTC().Format(time.RFC3339))
			}
			return nil
		},
	}
	push.Flags().StringVar(&service, "service", "", "the service (required)")
	cmd.AddCommand(push)
	return cmd
}
