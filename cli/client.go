package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/patchbay/patchbay/api"
	"github.com/patchbay/patchbay/fleet"
)

// clientOpts are the flags of the commands that talk to the server's API:
// how to reach it, and the output format.
type clientOpts struct {
	clientConfig
	output string
}

func (o *clientOpts) flags(cmd *cobra.Command) {
	f := cmd.PersistentFlags()
	o.bind(f, clientFlags{trust: true})
	f.StringVarP(&o.output, "output", "o", "table", "table or json")
}

func (o *clientOpts) client() (*api.Client, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	if o.output != "table" && o.output != "json" {
		return nil, fmt.Errorf("-o %q: want table or json", o.output)
	}
	return o.apiClient()
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func ago(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return age(now, t) + " ago"
}

func counts(open map[string]int) string {
	return fmt.Sprintf("%d\t%d\t%d\t%d", open["P1"], open["P2"], open["P3"], open["P4"])
}

func labelString(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for i, k := range keys {
		keys[i] = k + "=" + m[k]
	}
	return strings.Join(keys, ",")
}

func newClientCmds(e *env) []*cobra.Command {
	return []*cobra.Command{newHostsCmd(e), newFindingsCmd(e), newVulnsCmd(e)}
}

func newHostsCmd(e *env) *cobra.Command {
	o := &clientOpts{}
	cmd := &cobra.Command{Use: "hosts", Short: "List and show the server's hosts"}
	o.flags(cmd)
	var labels []string
	var osName, priority string
	var stale time.Duration
	var minOpen int
	var clones bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List hosts with their open findings by priority",
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client()
			if err != nil {
				return err
			}
			q := url.Values{}
			for _, l := range labels {
				q.Add("label", l)
			}
			if osName != "" {
				q.Set("os", osName)
			}
			if priority != "" {
				q.Set("priority", priority)
			}
			if minOpen > 0 {
				q.Set("min_open", strconv.Itoa(minOpen))
			}
			if stale > 0 {
				q.Set("seen_before", time.Now().Add(-stale).UTC().Format(time.RFC3339))
			}
			if clones {
				q.Set("clones", "true")
			}
			var hl api.HostList
			if err := c.Do(cmd.Context(), http.MethodGet, api.Prefix+"/hosts?"+q.Encode(), nil, &hl); err != nil {
				return err
			}
			if o.output == "json" {
				return printJSON(e.stdout, hl)
			}
			now := time.Now()
			tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "HOSTNAME\tID\tOS\tLAST SEEN\tP1\tP2\tP3\tP4\tUPDATES\tREBOOT\tLABELS")
			for _, h := range hl.Hosts {
				reboot := ""
				if h.Facts.RebootRequired {
					reboot = "yes"
				}
				name := h.Hostname
				if h.CloneOf != "" {
					name += " (clone)"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", name, h.ID, h.Ecosystem, ago(now, h.LastSeen), counts(h.Open), h.Updates, reboot, labelString(h.EffectiveLabels()))
			}
			tw.Flush()
			fmt.Fprintf(e.stderr, "%d hosts\n", len(hl.Hosts))
			return nil
		},
	}
	lf := list.Flags()
	lf.StringSliceVar(&labels, "label", nil, "only hosts with this label, key=value (repeatable)")
	lf.StringVar(&osName, "os", "", "only hosts of this OS ecosystem: Debian:12, or Debian for every release")
	lf.StringVar(&priority, "priority", "", "only hosts with open findings of this priority")
	lf.IntVar(&minOpen, "min-open", 0, "only hosts with at least this many open findings")
	lf.DurationVar(&stale, "stale", 0, "only hosts not seen for this long")
	lf.BoolVar(&clones, "clones", false, "only hosts flagged as clones")
	show := &cobra.Command{
		Use:   "show HOST",
		Long:  "show prints one host, named by its id or its hostname (a hostname several hosts share is refused, naming their ids).",
		Short: "Show a host: facts, open findings and available patches",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client()
			if err != nil {
				return err
			}
			var d fleet.HostDetail
			if err := c.Do(cmd.Context(), http.MethodGet, api.Prefix+"/hosts/"+url.PathEscape(args[0]), nil, &d); err != nil {
				return err
			}
			if o.output == "json" {
				return printJSON(e.stdout, d)
			}
			w := e.stdout
			now := time.Now()
			fmt.Fprintf(w, "%s (%s)\n", d.Hostname, d.ID)
			fmt.Fprintf(w, "  os:          %s (%s)\n", d.Facts.OSPretty, d.Ecosystem)
			fmt.Fprintf(w, "  kernel:      %s (newest installed %s)\n", d.Facts.KernelRunning, d.Facts.KernelNewest)
			fmt.Fprintf(w, "  reboot:      %v %s\n", d.Facts.RebootRequired, strings.Join(d.Facts.RebootReasons, "; "))
			fmt.Fprintf(w, "  last seen:   %s; enrolled %s\n", ago(now, d.LastSeen), d.EnrolledAt.Format(time.RFC3339))
			fmt.Fprintf(w, "  agent:       %s\n", d.Facts.AgentVersion)
			fmt.Fprintf(w, "  labels:      %s\n", labelString(d.EffectiveLabels()))
			if d.CloneOf != "" {
				fmt.Fprintf(w, "  CLONE:       same machine-id as host %s\n", d.CloneOf)
			}
			if d.Facts.Problem != "" {
				fmt.Fprintf(w, "  problem:     %s\n", d.Facts.Problem)
			}
			fmt.Fprintf(w, "  packages:    %d; open findings P1 %d, P2 %d, P3 %d, P4 %d\n\n", len(d.Packages), d.Open["P1"], d.Open["P2"], d.Open["P3"], d.Open["P4"])
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "PRIORITY\tVULNERABILITY\tPACKAGE\tVERSION\tFIXED\tDUE")
			for _, f := range d.Findings {
				if !f.RemediatedAt.IsZero() {
					continue
				}
				fixed := f.Fixed
				if fixed == "" {
					fixed = "(no fix)"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", f.Priority, f.Vulnerability, f.Package, f.Version, fixed, f.Due.Format(time.DateOnly))
			}
			tw.Flush()
			if len(d.Updates) > 0 {
				fmt.Fprintf(w, "\navailable updates (%d):\n", len(d.Updates))
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "PACKAGE\tINSTALLED\tCANDIDATE\tPOCKET\tCVES")
				for _, u := range d.Updates {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\n", u.Name, u.Installed, u.Candidate, u.Pocket, len(u.CVEs))
				}
				tw.Flush()
			}
			return nil
		},
	}
	cmd.AddCommand(list, show)
	return cmd
}

func newFindingsCmd(e *env) *cobra.Command {
	o := &clientOpts{}
	cmd := &cobra.Command{Use: "findings", Short: "Query findings across the fleet"}
	o.flags(cmd)
	var priorities, labels []string
	var status, host, eco, vuln, pkg, sortBy, cursor, team, service, lane string
	var overdue, all bool
	var limit int
	list := &cobra.Command{
		Use:   "list",
		Short: "List findings (open by default), a page at a time",
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client()
			if err != nil {
				return err
			}
			q := url.Values{}
			set := func(k, v string) {
				if v != "" {
					q.Set(k, v)
				}
			}
			set("status", status)
			set("host", host)
			set("ecosystem", eco)
			set("vuln", vuln)
			set("package", pkg)
			set("sort", sortBy)
			set("cursor", cursor)
			set("team", team)
			set("service", service)
			set("lane", lane)
			if len(priorities) > 0 {
				q.Set("priority", strings.Join(priorities, ","))
			}
			for _, l := range labels {
				q.Add("label", l)
			}
			if overdue {
				q.Set("overdue", "true")
			}
			q.Set("limit", strconv.Itoa(limit))
			var rows []fleet.FindingRow
			next := ""
			for {
				var page fleet.FindingPage
				if err := c.Do(cmd.Context(), http.MethodGet, api.Prefix+"/findings?"+q.Encode(), nil, &page); err != nil {
					return err
				}
				rows = append(rows, page.Findings...)
				next = page.Next
				if !all || next == "" {
					break
				}
				q.Set("cursor", next)
			}
			if o.output == "json" {
				return printJSON(e.stdout, fleet.FindingPage{Findings: rows, Next: next})
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tPRIORITY\tSTATE\tVULNERABILITY\tPACKAGE\tVERSION\tFIXED\tHOST\tFIRST SEEN\tDUE")
			now := time.Now()
			for _, f := range rows {
				fixed := f.Fixed
				if fixed == "" {
					fixed = "(no fix)"
				}
				state := string(f.State)
				switch {
				case !f.RemediatedAt.IsZero():
					state = "remediated " + f.RemediatedAt.Format(time.DateOnly)
				case f.State == fleet.StateOpen && !f.Due.IsZero() && f.Due.Before(now):
					state = "OVERDUE"
				}
				prio := f.Priority.String()
				if f.Lane != "" {
					prio += "!"
				}
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", f.ID, prio, state, f.Vulnerability, f.Package, f.Version, fixed, f.Hostname,
					f.FirstSeen.Format(time.DateOnly), f.Due.Format(time.DateOnly))
			}
			tw.Flush()
			if next != "" {
				fmt.Fprintf(e.stderr, "%d findings; more: --cursor %s (or --all)\n", len(rows), next)
			} else {
				fmt.Fprintf(e.stderr, "%d findings\n", len(rows))
			}
			return nil
		},
	}
	lf := list.Flags()
	lf.StringSliceVar(&priorities, "priority", nil, "P1..P4 (repeatable)")
	lf.StringVar(&status, "status", "open", "open, overdue, accepted, not_affected, unremediated, remediated or all")
	lf.StringVar(&team, "team", "", "findings on the assets of this team")
	lf.StringVar(&service, "service", "", "findings on the hosts and uploaded inventory of this service")
	lf.StringVar(&lane, "lane", "", "emergency: only the emergency lane (marked ! after the priority)")
	lf.StringVar(&host, "host", "", "host id")
	lf.StringSliceVar(&labels, "label", nil, "hosts with this label, key=value (repeatable)")
	lf.StringVar(&eco, "ecosystem", "", "ecosystem: Debian:12, Debian, PyPI, …")
	lf.StringVar(&vuln, "vuln", "", "vulnerability id")
	lf.StringVar(&pkg, "package", "", "package name")
	lf.BoolVar(&overdue, "overdue", false, "only open findings past their due date")
	lf.StringVar(&sortBy, "sort", "urgency", "urgency (overdue first, then priority), priority, due, first_seen or -first_seen")
	lf.IntVar(&limit, "limit", 100, "page size (at most 1000)")
	lf.StringVar(&cursor, "cursor", "", "continue after a previous page")
	lf.BoolVar(&all, "all", false, "fetch every page")
	cmd.AddCommand(list, newFindingsExplainCmd(e, o))
	return cmd
}

func newVulnsCmd(e *env) *cobra.Command {
	o := &clientOpts{}
	cmd := &cobra.Command{Use: "vulns", Short: "Vulnerabilities across the fleet"}
	o.flags(cmd)
	var priorities []string
	var kev bool
	var limit int
	list := &cobra.Command{
		Use:   "list",
		Short: "List vulnerabilities with open findings: affected hosts, fixed versions, KEV and EPSS",
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client()
			if err != nil {
				return err
			}
			q := url.Values{}
			if len(priorities) > 0 {
				q.Set("priority", strings.Join(priorities, ","))
			}
			if kev {
				q.Set("kev", "true")
			}
			if limit > 0 {
				q.Set("limit", strconv.Itoa(limit))
			}
			var vl api.VulnList
			if err := c.Do(cmd.Context(), http.MethodGet, api.Prefix+"/vulns?"+q.Encode(), nil, &vl); err != nil {
				return err
			}
			if o.output == "json" {
				return printJSON(e.stdout, vl)
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "PRIORITY\tVULNERABILITY\tHOSTS\tKEV\tEPSS\tPACKAGES\tFIXED")
			for _, v := range vl.Vulnerabilities {
				fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\n", v.Priority, v.ID, v.Hosts, yes(v.KEV), epssString(v.EPSS), short(v.Packages), short(v.Fixed))
			}
			tw.Flush()
			fmt.Fprintf(e.stderr, "%d vulnerabilities\n", len(vl.Vulnerabilities))
			return nil
		},
	}
	list.Flags().StringSliceVar(&priorities, "priority", nil, "P1..P4 (repeatable)")
	list.Flags().BoolVar(&kev, "kev", false, "only vulnerabilities in CISA KEV")
	list.Flags().IntVar(&limit, "limit", 0, "at most this many (0: all)")
	show := &cobra.Command{
		Use:   "show ID",
		Short: "Show one vulnerability and the hosts it affects",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client()
			if err != nil {
				return err
			}
			var v fleet.Vulnerability
			if err := c.Do(cmd.Context(), http.MethodGet, api.Prefix+"/vulns/"+url.PathEscape(args[0]), nil, &v); err != nil {
				return err
			}
			if o.output == "json" {
				return printJSON(e.stdout, v)
			}
			w := e.stdout
			fmt.Fprintf(w, "%s  priority %s  severity %s\n", v.ID, v.Priority, v.Severity)
			fmt.Fprintf(w, "  open on %d hosts (%d findings); %d remediated\n", v.Hosts, v.Open, v.Remediated)
			fmt.Fprintf(w, "  KEV: %s %s  EPSS: %s\n", yes(v.KEV), v.KEVDue, epssString(v.EPSS))
			fmt.Fprintf(w, "  packages: %s\n  fixed in: %s\n  hosts:\n", strings.Join(v.Packages, ", "), strings.Join(v.Fixed, ", "))
			for _, h := range v.AffectedHosts {
				fmt.Fprintf(w, "    %s (%s)\n", h.Hostname, h.ID)
			}
			return nil
		},
	}
	cmd.AddCommand(list, show)
	return cmd
}

func yes(b bool) string {
	if b {
		return "yes"
	}
	return ""
}

func epssString(p *float64) string {
	if p == nil {
		return ""
	}
	return fmt.Sprintf("%.3f", *p)
}

func short(xs []string) string {
	if len(xs) > 3 {
		return strings.Join(xs[:3], ",") + fmt.Sprintf(",…(+%d)", len(xs)-3)
	}
	return strings.Join(xs, ",")
}
