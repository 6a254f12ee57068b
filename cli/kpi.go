package cli

import (
	"encoding/csv"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/patchbay/patchbay/api"
	"github.com/patchbay/patchbay/internal/table"
	"github.com/patchbay/patchbay/kpi"
	"github.com/patchbay/patchbay/server"
)

// kpiFormats are the formats of the KPI commands: the data formats and
// csv (one row per group, or per step).
var kpiFormats = []string{"table", "json", "yaml", "csv"}

// kpiFlags are the flags of every KPI query.
type kpiFlags struct {
	clientConfig
	output, since, from, asOf, by, stale  string
	team, service, group, priority, cycle string
	labels                                []string
	within                                int
	wide                                  bool
}

func (k *kpiFlags) bind(cmd *cobra.Command) {
	f := cmd.PersistentFlags()
	k.clientConfig.bind(f, clientFlags{trust: true})
	outputFlag(f, &k.output, kpiFormats)
	wideFlag(f, &k.wide)
	f.StringVar(&k.since, "since", "", "the period before --as-of: 90d, 12w, 6m or a duration (default 90d)")
	f.StringVar(&k.from, "from", "", "the period's first day instead of --since (YYYY-MM-DD)")
	f.StringVar(&k.asOf, "as-of", "", "see the fleet as it was at the end of this day (YYYY-MM-DD) or at an RFC 3339 time; also --to")
	f.StringVar(&k.asOf, "to", "", "the period's last day (same as --as-of)")
	f.StringVar(&k.by, "by", "", "cut by priority, cycle, type, team, service, group, strategy, rollout, package (jobs) or label:KEY")
	f.IntVar(&k.within, "within", 0, "N of \"patched within N days of the fix's release\" (0: each finding's SLA)")
	f.StringVar(&k.stale, "stale", "", "a check-in pause this long is downtime (at least 15m; default 15m)")
	k.filterFlags(f)
}

func (k *kpiFlags) filterFlags(f *pflag.FlagSet) {
	f.StringVar(&k.team, "team", "", "only the assets of this team ((none): those without one)")
	f.StringVar(&k.service, "service", "", "only the assets that run this service")
	f.StringVar(&k.group, "group", "", "only the hosts of this host group")
	f.StringSliceVar(&k.labels, "label", nil, "only hosts with this label, key=value (repeatable)")
	f.StringVar(&k.priority, "priority", "", "only findings of this priority (P1..P4)")
	f.StringVar(&k.cycle, "cycle", "", "only findings of this cycle (system, application)")
}

// query is the API query the flags ask for; bad values are usage
// errors found before any request.
func (k *kpiFlags) query() (url.Values, error) {
	if err := checkOutput(k.output, kpiFormats); err != nil {
		return nil, err
	}
	q := url.Values{}
	set := func(name, v string) {
		if v != "" {
			q.Set(name, v)
		}
	}
	if k.since != "" && k.from != "" {
		return nil, fmt.Errorf("--since and --from: give one")
	}
	if k.since != "" {
		if _, err := kpi.ParseSince(k.since); err != nil {
			return nil, fmt.Errorf("--since: %w", err)
		}
	}
	for name, v := range map[string]string{"--from": k.from, "--as-of": k.asOf} {
		if v != "" {
			if _, err := kpi.ParseDate(v); err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
		}
	}
	if _, err := kpi.ParseDimension(k.by); err != nil {
		return nil, fmt.Errorf("--by: %w", err)
	}
	set("since", k.since)
	set("from", k.from)
	set("as_of", k.asOf)
	set("by", k.by)
	set("stale", k.stale)
	if k.within > 0 {
		q.Set("within", strconv.Itoa(k.within))
	} else if k.within < 0 {
		return nil, fmt.Errorf("--within %d: want 0 (the SLA) or a number of days", k.within)
	}
	set("team", k.team)
	set("service", k.service)
	set("group", k.group)
	set("priority", k.priority)
	set("cycle", k.cycle)
	for _, l := range k.labels {
		q.Add("label", l)
	}
	return q, nil
}

func (k *kpiFlags) client() (*api.Client, error) {
	if err := k.check(); err != nil {
		return nil, err
	}
	return k.apiClient()
}

func newKPICmd(e *env) *cobra.Command {
	k := &kpiFlags{}
	cmd := &cobra.Command{
		Use:   "kpi",
		Short: "Patching KPIs of a period as of a date: MTTP beside open exposure, SLA, success rate, uptime, coverage",
		Long: `Patching KPIs of a period (--since 90d by default) as of a date (--as-of,
default now), for the whole fleet and, with --by, for each group of a cut.
docs/kpis.md defines every figure.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			q, err := k.query()
			if err != nil {
				return err
			}
			c, err := k.client()
			if err != nil {
				return err
			}
			var rep kpi.Report
			if err := c.Do(cmd.Context(), http.MethodGet, api.Prefix+"/kpi?"+q.Encode(), nil, &rep); err != nil {
				return err
			}
			switch k.output {
			case "table":
				return e.kpiTable(rep, k.wide)
			case "csv":
				return kpiCSV(e.stdout, rep)
			}
			return printData(e.stdout, k.output, rep)
		},
	}
	k.bind(cmd)
	cmd.AddCommand(newKPIHistoryCmd(e, k))
	return cmd
}

// kpiColumns are the table's and the CSV's columns of a group.
var kpiColumns = []string{"GROUP", "OPEN", "OVERDUE", "AGE P50", "MTTP MEAN", "MTTP P50", "MTTP P90", "SEEN P50", "WITHIN", "SLA", "SUCCESS", "AVAILABLE", "COVERAGE", "REOPEN"}

func kpiRow(f kpi.Figures) []string {
	d := func(v float64, n int) string {
		if n == 0 {
			return "-"
		}
		return strconv.FormatFloat(v, 'f', 1, 64) + "d"
	}
	pct := func(r float64, den int) string {
		if den == 0 {
			return "-"
		}
		return strconv.FormatFloat(100*r, 'f', 1, 64) + "%"
	}
	success, avail, cover := "-", "-", "-"
	if f.Jobs != nil {
		success = pct(f.Jobs.Success, f.Jobs.Completed)
	}
	if f.Uptime != nil {
		avail = pct(f.Uptime.Availability, f.Uptime.Hosts)
	}
	if f.Coverage != nil {
		cover = pct(f.Coverage.Rate, f.Coverage.Hosts)
	}
	return []string{f.Group, strconv.Itoa(f.Open.Count), strconv.Itoa(f.Open.Overdue), d(f.Open.Age.Median, f.Open.Age.N),
		d(f.MTTP.Mean, f.MTTP.N), d(f.MTTP.Median, f.MTTP.N), d(f.MTTP.P90, f.MTTP.N), d(f.MTTPSeen.Median, f.MTTPSeen.N),
		pct(f.Within.Rate, f.Within.Den), pct(f.SLA.Rate, f.SLA.Due-f.SLA.Excluded), success, avail, cover, pct(f.Reopen.Rate, f.Reopen.Den)}
}

func (e *env) kpiTable(rep kpi.Report, wide bool) error {
	cols := make([]table.Column, len(kpiColumns))
	for i, n := range kpiColumns {
		cols[i] = table.Column{Name: n, Right: i > 0, Drop: max(0, 14-i)}
	}
	cols[0].Drop = 0
	tb := table.New(cols...)
	for _, g := range append(rep.Groups, rep.Total) {
		tb.Row(kpiRow(g)...)
	}
	fmt.Fprintf(e.stdout, "%s to %s (as of)", rep.From.UTC().Format(time.DateOnly), rep.AsOf.UTC().Format(time.RFC3339))
	if rep.By != "" {
		fmt.Fprintf(e.stdout, ", by %s", rep.By)
	}
	within := "the SLA"
	if rep.WithinDays > 0 {
		within = table.Plural(rep.WithinDays, "day")
	}
	fmt.Fprintf(e.stdout, "; WITHIN: patched within %s of the fix's release\n", within)
	if err := e.writeTable(tb, wide); err != nil {
		return err
	}
	t := rep.Total
	if j := t.Jobs; j != nil {
		fmt.Fprintf(e.stdout, "jobs: %d completed (%d succeeded, %d no change, %d rebooted), %d failed, %d rolled back, %d timed out; %d without an agent, %d skipped; health checks %d of %d passed\n",
			j.Completed, j.Succeeded-j.NoChange, j.NoChange, j.Rebooted, j.Failed, j.RolledBack, j.TimedOut, j.NoAgent, j.Skipped, j.ChecksPassed, j.Checks)
	}
	if u := t.Uptime; u != nil {
		fmt.Fprintf(e.stdout, "downtime: %.1fh of %.1f host-hours, %.1fh of it inside patch jobs\n", u.Down, u.Window, u.PatchDown)
	}
	fmt.Fprintf(e.stdout, "SLA: %d due, %d on time, %d accepted or not affected (excluded); %d accepted in the period\n", t.SLA.Due, t.SLA.OnTime, t.SLA.Excluded, t.Accepted)
	b := t.Open.Buckets
	fmt.Fprintf(e.stdout, "open by age: 0-7d %d, 8-30d %d, 31-90d %d, 91-180d %d, 180d+ %d\n", b.D0to7, b.D8to30, b.D31to90, b.D91to180, b.Over180)
	return nil
}

func kpiCSV(w io.Writer, rep kpi.Report) error {
	cw := csv.NewWriter(w)
	head := slices.Concat([]string{"from", "as_of", "by"}, kpiColumns)
	for i := range head {
		head[i] = strings.ToLower(strings.ReplaceAll(head[i], " ", "_"))
	}
	cw.Write(head)
	for _, g := range append(rep.Groups, rep.Total) {
		cw.Write(slices.Concat([]string{rep.From.UTC().Format(time.RFC3339), rep.AsOf.UTC().Format(time.RFC3339), rep.By}, kpiRow(g)))
	}
	cw.Flush()
	return cw.Error()
}

func newKPIHistoryCmd(e *env, k *kpiFlags) *cobra.Command {
	var metric, interval string
	cmd := &cobra.Command{
		Use:   "history",
		Short: "A KPI's series: one value per day, week or month of the period",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := kpi.MetricNamed(metric); err != nil {
				return fmt.Errorf("--metric: %w", err)
			}
			if _, err := kpi.ParseStep(interval); err != nil {
				return fmt.Errorf("--interval: %w", err)
			}
			q, err := k.query()
			if err != nil {
				return err
			}
			q.Set("metric", metric)
			q.Set("interval", interval)
			c, err := k.client()
			if err != nil {
				return err
			}
			var s kpi.Series
			if err := c.Do(cmd.Context(), http.MethodGet, api.Prefix+"/kpi/history?"+q.Encode(), nil, &s); err != nil {
				return err
			}
			groups := s.Groups()
			switch k.output {
			case "table":
				cols := []table.Column{{Name: "START"}}
				for _, g := range groups {
					cols = append(cols, right(strings.ToUpper(g)))
				}
				tb := table.New(cols...)
				for _, p := range s.Points {
					row := []string{p.Start.UTC().Format(time.DateOnly)}
					for _, g := range groups {
						row = append(row, strconv.FormatFloat(p.Values[g], 'f', 3, 64))
					}
					tb.Row(row...)
				}
				fmt.Fprintf(e.stdout, "%s per %s\n", s.Metric, s.Step)
				return e.writeTable(tb, k.wide)
			case "csv":
				cw := csv.NewWriter(e.stdout)
				cw.Write(append([]string{"start", "end"}, groups...))
				for _, p := range s.Points {
					row := []string{p.Start.UTC().Format(time.RFC3339), p.End.UTC().Format(time.RFC3339)}
					for _, g := range groups {
						row = append(row, strconv.FormatFloat(p.Values[g], 'g', -1, 64))
					}
					cw.Write(row)
				}
				cw.Flush()
				return cw.Error()
			}
			return printData(e.stdout, k.output, s)
		},
	}
	names := make([]string, len(kpi.Metrics))
	for i, m := range kpi.Metrics {
		names[i] = m.Name
	}
	cmd.Flags().StringVar(&metric, "metric", "", "the metric: "+strings.Join(names, ", "))
	cmd.Flags().StringVar(&interval, "interval", "week", "day, week or month")
	cmd.MarkFlagRequired("metric")
	return cmd
}

// findingsAsOf lists the findings open at a past date (findings list
// --as-of), from the exposure ledger.
func (e *env) findingsAsOf(cmd *cobra.Command, o *clientOpts, asOf string, k *kpiFlags, limit int) error {
	if _, err := kpi.ParseDate(asOf); err != nil {
		return fmt.Errorf("--as-of: %w", err)
	}
	c, err := o.client()
	if err != nil {
		return err
	}
	q, err := k.query()
	if err != nil {
		return err
	}
	q.Set("as_of", asOf)
	q.Set("limit", strconv.Itoa(limit))
	var page server.FindingsAsOf
	if err := c.Do(cmd.Context(), http.MethodGet, api.Prefix+"/kpi/findings?"+q.Encode(), nil, &page); err != nil {
		return err
	}
	if o.data() {
		return printData(e.stdout, o.output, page)
	}
	tb := table.New(table.Column{Name: "PRIORITY"}, table.Column{Name: "STATE"}, table.Column{Name: "VULNERABILITY"},
		table.Column{Name: "PACKAGE", Shrink: 3, Min: 8}, table.Column{Name: "FIXED", Shrink: 5, Min: 8},
		table.Column{Name: "HOST", Shrink: 2, Min: 8, Drop: 2}, table.Column{Name: "OPEN SINCE", Drop: 3}, table.Column{Name: "DUE"})
	for _, f := range page.Findings {
		state := "open"
		if f.Overdue {
			state = "OVERDUE"
		}
		fixed := f.Fixed
		if fixed == "" {
			fixed = "(no fix)"
		}
		tb.Row(orDash(f.Priority), state, f.Vulnerability, f.Package, fixed, f.Hostname, dateOnly(f.Opened), dateOnly(f.Due))
	}
	fmt.Fprintf(e.stdout, "as of %s\n", page.AsOf.UTC().Format(time.RFC3339))
	if err := e.writeTable(tb, o.wide); err != nil {
		return err
	}
	if len(page.Findings) < page.Total {
		fmt.Fprintf(e.stderr, "%d of %s (--limit, --all)\n", len(page.Findings), table.Plural(page.Total, "finding"))
		return nil
	}
	fmt.Fprintln(e.stderr, table.Plural(len(page.Findings), "finding"))
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// findingsAsOfCmd is findings list --as-of: the flags that filter the
// ledger pass on, those of the live list are refused.
func (e *env) findingsAsOfCmd(cmd *cobra.Command, o *clientOpts, asOf string, priorities, labels []string, team, service string, limit int, all bool) error {
	for _, name := range []string{"status", "host", "ecosystem", "vuln", "package", "overdue", "sort", "cursor", "lane"} {
		if cmd.Flags().Changed(name) {
			return fmt.Errorf("--as-of lists the findings open then, most urgent first: --%s does not apply", name)
		}
	}
	if len(priorities) > 1 {
		return fmt.Errorf("--as-of: one --priority at most")
	}
	k := &kpiFlags{output: "json", team: team, service: service, labels: labels}
	if len(priorities) == 1 {
		k.priority = priorities[0]
	}
	if limit < 1 || limit > 1000 {
		return fmt.Errorf("--limit %d: want 1 to 1000 (--all: every finding)", limit)
	}
	if all {
		limit = 0
	}
	return e.findingsAsOf(cmd, o, asOf, k, limit)
}
