package cli

import (
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/spf13/cobra"

	"github.com/patchbay/patchbay/api"
	"github.com/patchbay/patchbay/kpi"
	"github.com/patchbay/patchbay/report/monthly"
	"github.com/patchbay/patchbay/server"
)

func newReportCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{Use: "report", Short: "Reports for people: the monthly patching report"}
	cmd.AddCommand(newReportMonthlyCmd(e))
	return cmd
}

func newReportMonthlyCmd(e *env) *cobra.Command {
	var cfg clientConfig
	var output, outFile, team, month string
	cmd := &cobra.Command{
		Use:   "monthly",
		Short: "The month's patching KPIs, trends and top overdue patches as one self-contained HTML file",
		Long: `The month's patching report (the last full month unless --month): its KPIs,
the trends of the twelve months before (open exposure by priority, MTTP
per month, SLA compliance per team, patch success rate) and the top
overdue patches, grouped by patch. One HTML file with its styles and SVG
charts inside: it opens with no network and forwards as it is.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output, []string{"html"}); err != nil {
				return err
			}
			var first time.Time
			if month == "" {
				now := time.Now().UTC()
				first = time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC).AddDate(0, -1, 0)
			} else {
				t, err := time.Parse("2006-01", month)
				if err != nil {
					return fmt.Errorf("--month %q: want YYYY-MM", month)
				}
				first = t
			}
			if err := cfg.check(); err != nil {
				return err
			}
			c, err := cfg.apiClient()
			if err != nil {
				return err
			}
			last := first.AddDate(0, 1, -1).Format(time.DateOnly)
			yearAgo := first.AddDate(-1, 1, 0).Format(time.DateOnly)
			get := func(path string, q url.Values, v any) error {
				if team != "" {
					q.Set("team", team)
				}
				return c.Do(cmd.Context(), http.MethodGet, api.Prefix+path+"?"+q.Encode(), nil, v)
			}
			d := monthly.Data{Month: first, Team: team, Generated: time.Now().UTC()}
			month := func(by string) url.Values {
				return url.Values{"from": {first.Format(time.DateOnly)}, "as_of": {last}, "by": {by}}
			}
			trend := func(metric, step, by string) url.Values {
				q := url.Values{"from": {yearAgo}, "as_of": {last}, "metric": {metric}, "interval": {step}}
				if by != "" {
					q.Set("by", by)
				}
				return q
			}
			var overdue server.FindingsAsOf
			for _, f := range []struct {
				path string
				q    url.Values
				v    any
			}{
				{"/kpi", month(string(kpi.ByTeam)), &d.Report},
				{"/kpi", month(string(kpi.ByPriority)), &d.ByPriority},
				{"/kpi/history", trend("open", "week", "priority"), &d.Open},
				{"/kpi/history", trend("mttp_mean", "month", ""), &d.MTTP},
				{"/kpi/history", trend("success_rate", "month", ""), &d.Success},
				{"/kpi/findings", url.Values{"as_of": {last}, "limit": {"0"}}, &overdue},
			} {
				if err := get(f.path, f.q, f.v); err != nil {
					return err
				}
			}
			d.Overdue = overdue.Findings
			if outFile == "" {
				return monthly.Render(e.stdout, d)
			}
			out, err := createOutput(outFile)
			if err != nil {
				return err
			}
			defer out.abort()
			if err := monthly.Render(out, d); err != nil {
				return err
			}
			if err := out.commit(); err != nil {
				return err
			}
			fmt.Fprintf(e.stderr, "wrote %s\n", outFile)
			return nil
		},
	}
	f := cmd.Flags()
	cfg.bind(f, clientFlags{trust: true})
	outputFlag(f, &output, []string{"html"})
	f.StringVar(&outFile, "output-file", "", "write the report to this file (replaced only once whole; default standard output)")
	f.StringVar(&team, "team", "", "the report of one team's assets")
	f.StringVar(&month, "month", "", "the month, YYYY-MM (default the last full month)")
	return cmd
}
