package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/patchbay/patchbay/api"
	"github.com/patchbay/patchbay/api/rolloutapi"
	"github.com/patchbay/patchbay/internal/table"
	"github.com/patchbay/patchbay/job"
	"github.com/patchbay/patchbay/kinds"
	"github.com/patchbay/patchbay/patch"
	"github.com/patchbay/patchbay/policy"
	"github.com/patchbay/patchbay/risk"
	"github.com/patchbay/patchbay/rollout"
)

func newRolloutCmds(e *env) []*cobra.Command {
	return []*cobra.Command{newPlanCmd(e), newRolloutCmd(e), newEventsCmd(e)}
}

func newPlanCmd(e *env) *cobra.Command {
	o := &clientOpts{}
	cmd := &cobra.Command{
		Use:   "plan",
		Short: "Create, show, approve and reject patch plans",
	}
	o.flags(cmd)
	var (
		files                                              []string
		strategy, description                              string
		priorities, cycles, types, services, groups, hosts []string
		packages                                           []string
		emergency                                          bool
		listLimit                                          int
	)
	create := &cobra.Command{
		Use:   "create (--strategy NAME [selector flags] | -f PLAN.yaml)",
		Short: "Resolve which hosts get which packages at which exact versions, and preview it",
		Long: `plan create asks the server to resolve a plan: from the selector (or a
PatchPlan document, -f), which hosts get which packages at which exact
versions (the candidates their package managers offer), in which ring of the
strategy, in which maintenance window, and which findings each ring closes
by priority. The plan is approved on its own when approval rules approve
every package; else it waits for patchbay plan approve.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := o.client()
			if err != nil {
				return err
			}
			var spec rollout.PlanSpec
			if len(files) > 0 {
				if strategy != "" || len(priorities)+len(cycles)+len(types)+len(services)+len(groups)+len(hosts)+len(packages) > 0 || emergency {
					return errors.New("-f: the plan document says everything; give no selector flags with it")
				}
				fs, err := policy.CollectFiles(files, cmd.InOrStdin())
				if err != nil {
					return err
				}
				docs, err := kinds.All().ParseFiles(fs)
				if es := policy.AsErrors(err); es != nil {
					return problemsError(len(es), es.Error())
				} else if err != nil {
					return err
				}
				if len(docs) != 1 || docs[0].Kind != rollout.KindPatchPlan {
					got := make([]string, len(docs))
					for i, d := range docs {
						got[i] = d.Kind + "/" + d.Metadata.Name
					}
					return fmt.Errorf("-f: want one PatchPlan document (kind: PatchPlan), got %s: %s", table.Plural(len(docs), "document"), strings.Join(got, ", "))
				}
				spec = *docs[0].Spec.(*rollout.PlanSpec)
				if spec.Description == "" {
					spec.Description = "PatchPlan/" + docs[0].Metadata.Name
				}
			} else {
				if strategy == "" {
					return errors.New("--strategy: name the RolloutStrategy (or give a PatchPlan with -f)")
				}
				spec = rollout.PlanSpec{Description: description, Strategy: strategy, Emergency: emergency,
					Selector: rollout.Selector{Services: services, HostGroups: groups, Hosts: hosts, Packages: packages}}
				for _, p := range priorities {
					pr, err := risk.ParsePriority(p)
					if err != nil {
						return fmt.Errorf("--priority: %w", err)
					}
					spec.Selector.Priorities = append(spec.Selector.Priorities, pr)
				}
				for _, c := range cycles {
					spec.Selector.Cycles = append(spec.Selector.Cycles, patch.Cycle(c))
				}
				for _, t := range types {
					spec.Selector.Types = append(spec.Selector.Types, patch.Type(t))
				}
				if err := spec.Selector.Validate(); err != nil {
					// Name the flags, not the document's fields.
					return errors.New(selectorFlagRE.ReplaceAllStringFunc(err.Error(), func(m string) string {
						return "--" + map[string]string{"types": "type", "cycles": "cycle", "packages": "package"}[selectorFlagRE.FindStringSubmatch(m)[1]]
					}))
				}
			}
			var st rolloutapi.PlanStatus
			if err := cl.Do(cmd.Context(), http.MethodPost, api.Prefix+"/plans", spec, &st); err != nil {
				return err
			}
			if o.data() {
				return printData(e.stdout, o.output, st)
			}
			return printPlan(e.stdout, e.tableWidth(o.wide), 0, st)
		},
	}
	f := create.Flags()
	f.StringSliceVarP(&files, "file", "f", nil, "a PatchPlan document (- for standard input)")
	f.StringVar(&strategy, "strategy", "", "the RolloutStrategy")
	f.StringVar(&description, "description", "", "what the plan is for")
	f.StringSliceVar(&priorities, "priority", nil, "take updates that close findings of these priorities (P1…P4)")
	f.StringSliceVar(&cycles, "cycle", nil, "system or application")
	f.StringSliceVar(&types, "type", nil, "patch types: "+patch.TypeNames())
	f.StringSliceVar(&services, "service", nil, "hosts of these services")
	f.StringSliceVar(&groups, "host-group", nil, "hosts of these host groups")
	f.StringSliceVar(&hosts, "host", nil, "these hosts (id or hostname)")
	f.StringSliceVar(&packages, "package", nil, "packages (glob patterns on binary or source names)")
	f.BoolVar(&emergency, "emergency", false, "the emergency lane: only findings the policy sends there; outside windows after one approval")

	show := planShowCmd(e, o, "show PLAN", "Show a plan, its preview and its rollout", "list the hosts with their packages, one a line, and outcome", printPlan)
	list := &cobra.Command{
		Use:   "list",
		Short: "List plans, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := o.client()
			if err != nil {
				return err
			}
			var resp struct {
				Plans []rolloutapi.PlanStatus `json:"plans"`
			}
			if err := cl.Do(cmd.Context(), http.MethodGet, api.Prefix+"/plans", nil, &resp); err != nil {
				return err
			}
			if o.data() {
				return printData(e.stdout, o.output, resp)
			}
			tb := table.New(table.Column{Name: "PLAN"}, table.Column{Name: "STATE"}, table.Column{Name: "ROLLOUT"}, table.Column{Name: "STRATEGY", Shrink: 1, Min: 10},
				right("HOSTS"), table.Column{Name: "APPROVALS", Drop: 1}, table.Column{Name: "CREATED BY", Shrink: 2, Min: 10, Drop: 2})
			n := table.Limit(len(resp.Plans), listLimit)
			for _, st := range resp.Plans[:n] {
				p := st.Plan
				ro := "-"
				if st.Rollout != nil {
					ro = string(st.Rollout.State)
				}
				n := 0
				for _, r := range p.Rings {
					n += r.Hosts
				}
				tb.Row(p.ID, string(p.State), ro, p.Strategy, strconv.Itoa(n), fmt.Sprintf("%d/%d", len(p.Approvals), p.Required), p.CreatedBy)
			}
			if err := e.writeTable(tb, o.wide); err != nil {
				return err
			}
			if more := table.More(len(resp.Plans), n); more != "" {
				fmt.Fprintln(e.stdout, more)
			}
			return nil
		},
	}
	limitFlag(list.Flags(), &listLimit, 50, "plans")
	var comment string
	decide := func(action, short string) *cobra.Command {
		c := planActionCmd(e, o, action, short, func() any { return map[string]string{"comment": comment} }, func(st rolloutapi.PlanStatus) string {
			return fmt.Sprintf("plan %s: %s (approvals %d of %d)", st.Plan.ID, st.Plan.State, len(st.Plan.Approvals), st.Plan.Required)
		})
		c.Flags().StringVar(&comment, "comment", "", "why")
		return c
	}
	cmd.AddCommand(create, show, list, decide("approve", "Approve a plan (a rule may ask for several distinct approvers)"), decide("reject", "Reject a plan"))
	return cmd
}

func newRolloutCmd(e *env) *cobra.Command {
	o := &clientOpts{}
	cmd := &cobra.Command{
		Use:   "rollout",
		Short: "Start, pause, resume, promote, abort and watch rollouts of approved plans",
	}
	o.flags(cmd)
	action := func(name, short string) *cobra.Command {
		return planActionCmd(e, o, name, short, func() any { return nil }, func(st rolloutapi.PlanStatus) string {
			return fmt.Sprintf("rollout %s: %s", st.Plan.ID, st.Rollout.State)
		})
	}
	statusCmd := planShowCmd(e, o, "status PLAN", "Show a rollout's state and each ring's outcomes", "list every host's outcome", printRollout)
	var every time.Duration
	watch := &cobra.Command{
		Use:   "watch PLAN",
		Short: "Follow a rollout until it ends (completed, halted or aborted)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			last := ""
			for {
				st, err := fetchPlan(cmd, o, args[0], false)
				if err != nil {
					return err
				}
				line := rolloutLine(st)
				if line != last {
					fmt.Fprintf(e.stdout, "%s %s\n", time.Now().Format(time.TimeOnly), line)
					last = line
				}
				if st.Rollout != nil {
					switch st.Rollout.State {
					case rollout.Completed, rollout.Aborted:
						return nil
					case rollout.Halted:
						return fmt.Errorf("rollout %s halted: %s", st.Plan.ID, st.Rollout.Why)
					}
				}
				select {
				case <-cmd.Context().Done():
					return nil
				case <-time.After(every):
				}
			}
		},
	}
	spanVar(watch.Flags(), &every, "every", 2*time.Second, "how often to look")
	cmd.AddCommand(action("start", "Start the rollout of an approved plan"), action("pause", "Start no more jobs (those running finish)"),
		action("resume", "Resume a paused rollout"), action("promote", "Start the next ring of a rollout awaiting promotion"),
		action("abort", "End a rollout: no job starts after it"), statusCmd, watch)
	return cmd
}

// fetchPlan reads a plan and its rollout (with every host when hosts).
func fetchPlan(cmd *cobra.Command, o *clientOpts, id string, hosts bool) (rolloutapi.PlanStatus, error) {
	cl, err := o.client()
	if err != nil {
		return rolloutapi.PlanStatus{}, err
	}
	path := api.Prefix + "/plans/" + id
	if hosts {
		path += "?hosts=1"
	}
	var st rolloutapi.PlanStatus
	err = cl.Do(cmd.Context(), http.MethodGet, path, nil, &st)
	return st, err
}

// planActionCmd is a command that POSTs an action on a plan and says
// what came of it.
func planActionCmd(e *env, o *clientOpts, action, short string, body func() any, say func(rolloutapi.PlanStatus) string) *cobra.Command {
	return &cobra.Command{
		Use:   action + " PLAN",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := o.client()
			if err != nil {
				return err
			}
			var st rolloutapi.PlanStatus
			if err := cl.Do(cmd.Context(), http.MethodPost, api.Prefix+"/plans/"+args[0]+"/"+action, body(), &st); err != nil {
				return err
			}
			if o.data() {
				return printData(e.stdout, o.output, st)
			}
			fmt.Fprintln(e.stdout, say(st))
			return nil
		},
	}
}

// planShowCmd is a command that shows a plan with print (or as JSON or
// YAML): fitted to width, at most limit hosts (0: all).
func planShowCmd(e *env, o *clientOpts, use, short, hostsHelp string, print func(w io.Writer, width, limit int, st rolloutapi.PlanStatus) error) *cobra.Command {
	var hosts bool
	var limit int
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := fetchPlan(cmd, o, args[0], hosts)
			if err != nil {
				return err
			}
			if o.data() {
				return printData(e.stdout, o.output, st)
			}
			return print(e.stdout, e.tableWidth(o.wide), limit, st)
		},
	}
	cmd.Flags().BoolVar(&hosts, "hosts", false, hostsHelp)
	limitFlag(cmd.Flags(), &limit, 20, "hosts with --hosts (and packages of each)")
	return cmd
}

func closesString(c map[string]int) string {
	var parts []string
	for _, p := range []string{"P1", "P2", "P3", "P4"} {
		if c[p] > 0 {
			parts = append(parts, fmt.Sprintf("%s:%d", p, c[p]))
		}
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, " ")
}

func printPlan(w io.Writer, width, limit int, st rolloutapi.PlanStatus) error {
	p := st.Plan
	fmt.Fprintf(w, "plan %s  strategy %s  %s", p.ID, p.Strategy, p.State)
	if p.Emergency {
		fmt.Fprint(w, "  EMERGENCY LANE (outside windows after one approval)")
	}
	fmt.Fprintln(w)
	switch {
	case len(p.AutoRules) > 0:
		fmt.Fprintf(w, "approved automatically by %s\n", strings.Join(p.AutoRules, ", "))
	default:
		var by []string
		for _, a := range p.Approvals {
			by = append(by, a.By)
		}
		fmt.Fprintln(w, strings.TrimSpace(fmt.Sprintf("approvals %d of %d %s", len(p.Approvals), p.Required, strings.Join(by, ", "))))
	}
	tb := table.New(table.Column{Name: "RING", Shrink: 1, Min: 8}, right("HOSTS"), right("PACKAGES"), table.Column{Name: "CLOSES"},
		table.Column{Name: "WINDOWS", Shrink: 2, Min: 16})
	for _, r := range p.Rings {
		var ws []string
		for _, wp := range r.Windows {
			if wp.Name == "" {
				ws = append(ws, fmt.Sprintf("any time (%d)", wp.Hosts))
				continue
			}
			ws = append(ws, fmt.Sprintf("%s %s–%s (%d)", wp.Name, wp.Start.Format("2006-01-02 15:04 MST"), wp.End.Format("15:04"), wp.Hosts))
		}
		if p.Emergency {
			ws = []string{"now (emergency)"}
		}
		tb.Row(r.Name, strconv.Itoa(r.Hosts), strconv.Itoa(r.Packages), closesString(r.Closes), strings.Join(ws, "; "))
	}
	if err := tb.Write(w, width); err != nil {
		return err
	}
	if len(p.Skipped) > 0 {
		keys := make([]string, 0, len(p.Skipped))
		for k := range p.Skipped {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			fmt.Fprintf(w, "not in the plan: %d %s\n", p.Skipped[k], k)
		}
	}
	if st.Rollout != nil {
		if err := printRollout(w, width, limit, st); err != nil {
			return err
		}
	}
	if len(st.Hosts) == 0 {
		return nil
	}
	// One package a line: a host's first beside its name, the others
	// under it; at most limit of each.
	tb = table.New(table.Column{Name: "HOST", Shrink: 2, Min: 12}, table.Column{Name: "RING", Shrink: 1, Min: 8}, table.Column{Name: "OUTCOME"},
		table.Column{Name: "PACKAGES", Shrink: 3, Min: 20})
	n := table.Limit(len(st.Hosts), limit)
	for _, h := range st.Hosts[:n] {
		out, _ := hostOutcome(h, st.Rollout, time.Now())
		if len(h.Targets) == 0 {
			tb.Row(h.Hostname, p.Rings[h.Ring].Name, out)
		}
		k := table.Limit(len(h.Targets), limit)
		for i, t := range h.Targets[:k] {
			pkg := t.Name + " " + t.From + "→" + t.To
			if i == 0 {
				tb.Row(h.Hostname, p.Rings[h.Ring].Name, out, pkg)
			} else {
				tb.Row("", "", "", pkg)
			}
		}
		if more := table.More(len(h.Targets), k); more != "" {
			tb.Row("", "", "", more)
		}
	}
	if err := tb.Write(w, width); err != nil {
		return err
	}
	if more := table.More(len(st.Hosts), n); more != "" {
		fmt.Fprintln(w, more)
	}
	return nil
}

func rolloutLine(st rolloutapi.PlanStatus) string {
	if st.Rollout == nil {
		return fmt.Sprintf("plan %s: %s, not started", st.Plan.ID, st.Plan.State)
	}
	m := st.Rollout
	var rings []string
	for _, r := range st.Rings {
		var oc []string
		for _, o := range []job.Outcome{job.Succeeded, job.SucceededReboot, job.NoChange, job.Skipped, job.Failed, job.RolledBack, job.TimedOut, job.NoAgent} {
			if r.Outcomes[o] > 0 {
				oc = append(oc, fmt.Sprintf("%s %d", o, r.Outcomes[o]))
			}
		}
		if r.InFlight > 0 {
			oc = append(oc, fmt.Sprintf("running %d", r.InFlight))
		}
		if r.Pending > 0 {
			oc = append(oc, fmt.Sprintf("pending %d", r.Pending))
		}
		rings = append(rings, fmt.Sprintf("%s[%s]", r.Name, strings.Join(oc, ", ")))
	}
	line := fmt.Sprintf("rollout %s: %s, ring %s; %s", st.Plan.ID, m.State, st.Plan.Rings[m.Ring].Name, strings.Join(rings, " "))
	if m.Why != "" {
		line += " — " + m.Why
	}
	return line
}

func printRollout(w io.Writer, width, limit int, st rolloutapi.PlanStatus) error {
	fmt.Fprintln(w, rolloutLine(st))
	if st.Rollout != nil && st.Rollout.State == rollout.Baking {
		fmt.Fprintf(w, "baking until %s\n", st.Rollout.BakeUntil.Format(time.RFC3339))
	}
	if len(st.Hosts) == 0 || len(st.Plan.Hosts) > 0 {
		return nil
	}
	tb := table.New(table.Column{Name: "HOST", Shrink: 2, Min: 12}, table.Column{Name: "RING", Shrink: 1, Min: 8}, right("ATTEMPT"), table.Column{Name: "OUTCOME"},
		table.Column{Name: "REASON", Shrink: 3, Min: 20})
	n := table.Limit(len(st.Hosts), limit)
	now := time.Now()
	for _, h := range st.Hosts[:n] {
		out, why := hostOutcome(h, st.Rollout, now)
		if r := hostReason(h); r != "" {
			why = r
		}
		tb.Row(h.Hostname, st.Plan.Rings[h.Ring].Name, strconv.Itoa(h.Attempt), out, why)
	}
	if err := tb.Write(w, width); err != nil {
		return err
	}
	if more := table.More(len(st.Hosts), n); more != "" {
		fmt.Fprintln(w, more)
	}
	return nil
}

// hostOutcome is a host's job as a person reads it: its outcome; while
// it has none, pending (not started) or running with how long its agent
// has had it — an agent that never reports may run no jobs (agent
// --no-jobs, the quickstart's) — or, once the rollout is aborted,
// abandoned.
func hostOutcome(h rollout.HostStatus, m *rollout.Machine, now time.Time) (outcome, why string) {
	switch {
	case h.Outcome != "":
		return string(h.Outcome), ""
	case h.Attempt == 0:
		return "pending", ""
	case m != nil && m.State == rollout.Aborted:
		return "abandoned", "the rollout was aborted after the job was handed out; its agent may still report it"
	}
	why = "handed to its agent; waiting for its report"
	if !h.Started.IsZero() {
		why = fmt.Sprintf("handed to its agent %s ago; waiting for its report", now.Sub(h.Started).Round(time.Second))
		if now.Sub(h.Started) > 5*time.Minute {
			why += " (an agent started with --no-jobs, or the quickstart's, runs no jobs)"
		}
	}
	return "running", why
}

// hostReason says why a host's job did not succeed: the agent's reason and
// the health checks that failed, with their detail ("post http
// http://127.0.0.1:8080/healthz: status 503").
func hostReason(h rollout.HostStatus) string {
	if len(h.Result) == 0 {
		return ""
	}
	var r job.Result
	if err := json.Unmarshal(h.Result, &r); err != nil {
		return "unreadable result: " + err.Error()
	}
	var parts []string
	if r.Reason != "" {
		parts = append(parts, r.Reason)
	}
	for _, c := range r.Checks {
		if c.OK {
			continue
		}
		s := string(c.Phase) + " " + checkName(c.Check)
		if c.Detail != "" {
			s += ": " + c.Detail
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, "; ")
}

// checkName names a health check as a policy document writes it.
func checkName(c job.HealthCheck) string {
	switch {
	case c.HTTP != "":
		return "http " + c.HTTP
	case c.TCP != "":
		return "tcp " + c.TCP
	case c.Systemd != "":
		return "systemd " + c.Systemd
	case len(c.Command) > 0:
		return "command " + strings.Join(c.Command, " ")
	}
	return "check"
}

// selectorFlagRE is a selector field of the plan create flags' problems.
var selectorFlagRE = regexp.MustCompile(`selector\.(types|cycles|packages)\[\d+\]`)
