package cli

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/patchbay/patchbay/api"
	"github.com/patchbay/patchbay/api/rolloutapi"
	"github.com/patchbay/patchbay/internal/table"
	"github.com/patchbay/patchbay/rollout"
)

func newSchedulesCmd(e *env) *cobra.Command {
	o := &clientOpts{}
	cmd := &cobra.Command{
		Use:   "schedules",
		Short: "List, preview, pause and resume the PatchSchedules the leader runs by itself",
		Long: `A PatchSchedule (a policy document, applied with patchbay apply) is the
autopilot: at each opening of its maintenance windows the leader plans what
its selector takes, has the approval rules decide, and starts the rollout;
new emergency-lane patches go out at once. These commands show the
schedules, preview what each opening would patch now and why the rest is
left out, and pause or resume a schedule (audited, with a reason).`,
	}
	o.flags(cmd)
	list := &cobra.Command{
		Use:   "list",
		Short: "List the schedules: strategy, windows, next opening, last run, paused",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := o.client()
			if err != nil {
				return err
			}
			var resp rolloutapi.ScheduleList
			if err := cl.Do(cmd.Context(), http.MethodGet, api.Prefix+"/schedules", nil, &resp); err != nil {
				return err
			}
			if o.data() {
				return printData(e.stdout, o.output, resp)
			}
			tb := table.New(table.Column{Name: "SCHEDULE"}, table.Column{Name: "STRATEGY", Shrink: 1, Min: 8}, table.Column{Name: "WINDOWS", Shrink: 2, Min: 8},
				table.Column{Name: "NEXT OPENING"}, table.Column{Name: "LAST RUN", Drop: 1}, table.Column{Name: "STATE", Shrink: 3, Min: 6})
			for _, s := range resp.Schedules {
				next := "-"
				if len(s.Next) > 0 {
					next = s.Next[0].Window + " " + s.Next[0].Start.UTC().Format("2006-01-02 15:04Z")
				}
				last := "-"
				if s.LastRun != nil {
					last = s.LastRun.At.UTC().Format("2006-01-02 15:04Z") + " " + planOrNothing(s.LastRun.Plan)
				}
				tb.Row(s.Name, s.Spec.Strategy, windowsOf(s.Spec), next, last, stateOf(s))
			}
			if err := e.writeTable(tb, o.wide); err != nil {
				return err
			}
			if len(resp.Schedules) == 0 {
				fmt.Fprintln(e.stdout, "no PatchSchedule: apply one (docs/rollouts.md)")
			}
			return nil
		},
	}
	show := &cobra.Command{
		Use:   "show NAME",
		Short: "Preview a schedule's next 5 openings: what each would patch now and why the rest is left out",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := o.client()
			if err != nil {
				return err
			}
			var st rolloutapi.ScheduleStatus
			if err := cl.Do(cmd.Context(), http.MethodGet, api.Prefix+"/schedules/"+url.PathEscape(args[0]), nil, &st); err != nil {
				return err
			}
			if o.data() {
				return printData(e.stdout, o.output, st)
			}
			return printSchedule(e.stdout, st)
		},
	}
	var reason string
	action := func(name, short string) *cobra.Command {
		c := &cobra.Command{
			Use:   name + " NAME",
			Short: short,
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				if name == "pause" && strings.TrimSpace(reason) == "" {
					return errors.New("--reason: missing: say why the schedule pauses (it is audited)")
				}
				cl, err := o.client()
				if err != nil {
					return err
				}
				var s rolloutapi.ScheduleSummary
				if err := cl.Do(cmd.Context(), http.MethodPost, api.Prefix+"/schedules/"+url.PathEscape(args[0])+"/"+name, map[string]string{"reason": reason}, &s); err != nil {
					return err
				}
				if o.data() {
					return printData(e.stdout, o.output, s)
				}
				fmt.Fprintf(e.stdout, "schedule %s: %s\n", s.Name, stateOf(s))
				return nil
			},
		}
		c.Flags().StringVar(&reason, "reason", "", "why (audited; required to pause)")
		return c
	}
	cmd.AddCommand(list, show, action("pause", "Pause a schedule: none of its openings is planned until it resumes (running rollouts go on)"),
		action("resume", "Resume a paused schedule"))
	return cmd
}

func planOrNothing(s string) string {
	if s == "" {
		return "(nothing to patch)"
	}
	return s
}

func windowsOf(s *rollout.ScheduleSpec) string {
	if len(s.Windows) == 0 {
		return "each host's own"
	}
	return strings.Join(s.Windows, ",")
}

func stateOf(s rolloutapi.ScheduleSummary) string {
	if s.Paused != nil {
		return fmt.Sprintf("paused by %s: %s", s.Paused.By, s.Paused.Reason)
	}
	return "active"
}

func leftOutString(m map[string]int) string {
	if len(m) == 0 {
		return "-"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s: %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

func printSchedule(w io.Writer, st rolloutapi.ScheduleStatus) error {
	s := st.Spec
	fmt.Fprintf(w, "schedule %s  strategy %s  windows %s  %s\n", st.Name, s.Strategy, windowsOf(s), stateOf(st.ScheduleSummary))
	if s.Description != "" {
		fmt.Fprintf(w, "  %s\n", s.Description)
	}
	if len(s.MinAge) > 0 {
		var gates []string
		for t, d := range s.MinAge {
			gates = append(gates, t+" "+d.String())
		}
		slices.Sort(gates)
		kev := ""
		if s.KEVBypassesMinAge {
			kev = " (KEV findings bypass it)"
		}
		fmt.Fprintf(w, "  release-age gate: %s%s\n", strings.Join(gates, ", "), kev)
	}
	if len(st.Openings) == 0 {
		fmt.Fprintln(w, "no opening ahead: the schedule's windows never open")
	}
	fmt.Fprintln(w, "\nnext openings (what each would patch if it opened now):")
	for _, o := range st.Openings {
		ran := ""
		if o.Ran {
			ran = "  (planned)"
		}
		fmt.Fprintf(w, "  %s  %s–%s%s\n", o.Window, o.Start.UTC().Format("2006-01-02 15:04"), o.End.UTC().Format("15:04Z"), ran)
		printPreview(w, o.Preview)
	}
	if st.Emergency != nil {
		fmt.Fprintln(w, "\nemergency lane (at once, outside windows):")
		printPreview(w, *st.Emergency)
	}
	if len(st.Runs) > 0 {
		fmt.Fprintln(w, "\nruns:")
		for _, r := range st.Runs[:min(len(st.Runs), 5)] {
			fmt.Fprintf(w, "  %s  %s  %s\n", r.At.UTC().Format(time.RFC3339), r.Opening, planOrNothing(r.Plan))
		}
	}
	return nil
}

func printPreview(w io.Writer, pv rollout.Preview) {
	fmt.Fprintf(w, "    hosts %d  packages %d  closes %s\n", pv.Hosts, pv.Packages, closesString(pv.Closes))
	if len(pv.LeftOut) > 0 {
		fmt.Fprintf(w, "    left out: %s\n", leftOutString(pv.LeftOut))
	}
	for _, b := range pv.Bypassed {
		fmt.Fprintf(w, "    age gate bypassed (KEV %s): %s %s on %s\n", b.Vulnerability, b.Package, b.Version, b.Host)
	}
}
