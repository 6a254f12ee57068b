package cli

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/patchbay/patchbay/api"
	"github.com/patchbay/patchbay/fleet"
	"github.com/patchbay/patchbay/internal/table"
)

// clientOpts are the flags of the commands that talk to the server's API:
// how to reach it, and the output format.
type clientOpts struct {
	clientConfig
	output string
	wide   bool
}

func (o *clientOpts) flags(cmd *cobra.Command) {
	f := cmd.PersistentFlags()
	o.bind(f, clientFlags{trust: true})
	outputFlag(f, &o.output, dataFormats)
	wideFlag(f, &o.wide)
}

func (o *clientOpts) client() (*api.Client, error) {
	if err := checkOutput(o.output, dataFormats); err != nil {
		return nil, err
	}
	if err := o.check(); err != nil {
		return nil, err
	}
	return o.apiClient()
}

// data is whether -o asks for data (json, yaml) rather than a table.
func (o *clientOpts) data() bool { return o.output != "table" }

// ago is how long ago t was, for a table cell: "3h ago", or "never".
func ago(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	s := age(now, t)
	if i := strings.Index(s, " ("); i >= 0 {
		s = s[:i]
	}
	return s
}

// dateOnly is t's date, or "" when there is none.
func dateOnly(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Format(time.DateOnly)
}

func counts(open map[string]int) []string {
	return []string{strconv.Itoa(open["P1"]), strconv.Itoa(open["P2"]), strconv.Itoa(open["P3"]), strconv.Itoa(open["P4"])}
}

// right is a count column.
func right(name string) table.Column { return table.Column{Name: name, Right: true} }

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
	var minOpen, listLimit, showLimit int
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
			if o.data() {
				return printData(e.stdout, o.output, hl)
			}
			now := time.Now()
			tb := table.New(table.Column{Name: "HOSTNAME", Shrink: 2, Min: 12}, table.Column{Name: "ID", Drop: 1}, table.Column{Name: "OS", Shrink: 3, Min: 6},
				table.Column{Name: "LAST SEEN", Shrink: 4}, right("P1"), right("P2"), right("P3"), right("P4"), right("UPDATES"), table.Column{Name: "REBOOT", Drop: 2},
				table.Column{Name: "AGENT", Shrink: 5, Min: 5, Drop: 3}, table.Column{Name: "LABELS", Shrink: 9, Min: 10})
			n := table.Limit(len(hl.Hosts), listLimit)
			for _, h := range hl.Hosts[:n] {
				reboot := ""
				if h.Facts.RebootRequired {
					reboot = "yes"
				}
				name := h.Hostname
				if h.CloneOf != "" {
					name += " (clone)"
				}
				tb.Row(slices.Concat([]string{name, h.ID, h.Ecosystem, ago(now, h.LastSeen)}, counts(h.Open),
					[]string{strconv.Itoa(h.Updates), reboot, h.Facts.AgentVersion, labelString(h.EffectiveLabels())})...)
			}
			if err := e.writeTable(tb, o.wide); err != nil {
				return err
			}
			if more := table.More(len(hl.Hosts), n); more != "" {
				fmt.Fprintln(e.stdout, more)
			}
			fmt.Fprintln(e.stderr, table.Plural(len(hl.Hosts), "host"))
			return nil
		},
	}
	lf := list.Flags()
	lf.StringSliceVar(&labels, "label", nil, "only hosts with this label, key=value (repeatable)")
	lf.StringVar(&osName, "os", "", "only hosts of this OS ecosystem: Debian:12, or Debian for every release")
	lf.StringVar(&priority, "priority", "", "only hosts with open findings of this priority")
	lf.IntVar(&minOpen, "min-open", 0, "only hosts with at least this many open findings")
	spanVar(lf, &stale, "stale", 0, "only hosts not seen for this long")
	lf.BoolVar(&clones, "clones", false, "only hosts flagged as clones")
	limitFlag(lf, &listLimit, 0, "hosts")
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
			if o.data() {
				return printData(e.stdout, o.output, d)
			}
			w := e.stdout
			now := time.Now()
			fmt.Fprintf(w, "%s (%s)\n", d.Hostname, d.ID)
			fmt.Fprintf(w, "  os:          %s (%s)\n", d.Facts.OSPretty, d.Ecosystem)
			kernel := noneIfEmpty(d.Facts.KernelRunning)
			if d.Facts.KernelNewest != "" && d.Facts.KernelNewest != d.Facts.KernelRunning {
				kernel += " (newest installed " + d.Facts.KernelNewest + ")"
			}
			fmt.Fprintf(w, "  kernel:      %s\n", kernel)
			reboot := "not required"
			if d.Facts.RebootRequired {
				reboot = strings.TrimSpace("required " + strings.Join(d.Facts.RebootReasons, "; "))
			}
			fmt.Fprintf(w, "  reboot:      %s\n", reboot)
			lastSeen := "never"
			if !d.LastSeen.IsZero() {
				lastSeen = age(now, d.LastSeen)
			}
			fmt.Fprintf(w, "  last seen:   %s\n", lastSeen)
			fmt.Fprintf(w, "  enrolled:    %s\n", age(now, d.EnrolledAt))
			fmt.Fprintf(w, "  agent:       %s\n", d.Facts.AgentVersion)
			fmt.Fprintf(w, "  labels:      %s\n", noneIfEmpty(labelString(d.EffectiveLabels())))
			if d.CloneOf != "" {
				fmt.Fprintf(w, "  CLONE:       same machine-id as host %s\n", d.CloneOf)
			}
			if d.Facts.Problem != "" {
				fmt.Fprintf(w, "  problem:     %s\n", d.Facts.Problem)
			}
			fmt.Fprintf(w, "  packages:    %d; open findings P1 %d, P2 %d, P3 %d, P4 %d\n\n", len(d.Packages), d.Open["P1"], d.Open["P2"], d.Open["P3"], d.Open["P4"])
			var open []fleet.Finding
			for _, f := range d.Findings {
				if f.RemediatedAt.IsZero() {
					open = append(open, f)
				}
			}
			tb := table.New(table.Column{Name: "PRIORITY"}, table.Column{Name: "VULNERABILITY"}, table.Column{Name: "PACKAGE", Shrink: 2, Min: 12},
				table.Column{Name: "VERSION", Shrink: 3, Min: 10}, table.Column{Name: "FIXED", Shrink: 4, Min: 10}, table.Column{Name: "DUE"})
			n := table.Limit(len(open), showLimit)
			for _, f := range open[:n] {
				fixed := f.Fixed
				if fixed == "" {
					fixed = "(no fix)"
				}
				tb.Row(f.Priority.String(), f.Vulnerability, f.Package, f.Version, fixed, dateOnly(f.Due))
			}
			if err := e.writeTable(tb, o.wide); err != nil {
				return err
			}
			if more := table.More(len(open), n); more != "" {
				fmt.Fprintln(w, more)
			}
			if len(d.Updates) > 0 {
				fmt.Fprintf(w, "\navailable updates (%d):\n", len(d.Updates))
				tb := table.New(table.Column{Name: "PACKAGE", Shrink: 2, Min: 12}, table.Column{Name: "INSTALLED", Shrink: 3, Min: 10},
					table.Column{Name: "CANDIDATE", Shrink: 4, Min: 10}, table.Column{Name: "POCKET", Shrink: 5, Min: 8}, right("CVES"))
				n := table.Limit(len(d.Updates), showLimit)
				for _, u := range d.Updates[:n] {
					tb.Row(u.Name, u.Installed, u.Candidate, u.Pocket, strconv.Itoa(len(u.CVEs)))
				}
				if err := e.writeTable(tb, o.wide); err != nil {
					return err
				}
				if more := table.More(len(d.Updates), n); more != "" {
					fmt.Fprintln(w, more)
				}
			}
			return nil
		},
	}
	limitFlag(show.Flags(), &showLimit, 20, "open findings and updates")
	cmd.AddCommand(list, show, newHostLabelCmd(e, o), newHostRevokeCmd(e, o))
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
	var asOf string
	list := &cobra.Command{
		Use:   "list",
		Short: "List findings (open by default), a page at a time",
		RunE: func(cmd *cobra.Command, args []string) error {
			if asOf != "" {
				return e.findingsAsOfCmd(cmd, o, asOf, priorities, labels, team, service, limit, all)
			}
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
			if o.data() {
				return printData(e.stdout, o.output, fleet.FindingPage{Findings: rows, Next: next})
			}
			tb := table.New(table.Column{Name: "ID"}, table.Column{Name: "PRIORITY"}, table.Column{Name: "STATE", Shrink: 1, Min: 5, Drop: 1}, table.Column{Name: "VULNERABILITY"},
				table.Column{Name: "PACKAGE", Shrink: 3, Min: 8}, table.Column{Name: "VERSION", Shrink: 4, Min: 8}, table.Column{Name: "FIXED", Shrink: 5, Min: 8},
				table.Column{Name: "HOST", Shrink: 2, Min: 8, Drop: 2}, table.Column{Name: "FIRST SEEN", Drop: 3}, table.Column{Name: "DUE"})
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
				if f.Fix != "" && f.RemediatedAt.IsZero() {
					state += ", fix " + f.Fix
				}
				host := f.Hostname
				if f.ServicePath != "" {
					host += " (service " + f.Service + ", via " + f.ServicePath + ")"
				}
				tb.Row(strconv.FormatInt(f.ID, 10), prio, state, f.Vulnerability, f.Package, f.Version, fixed, host, dateOnly(f.FirstSeen), dateOnly(f.Due))
			}
			if err := e.writeTable(tb, o.wide); err != nil {
				return err
			}
			if next != "" {
				fmt.Fprintf(e.stderr, "%s; more: --cursor %s (or --all)\n", table.Plural(len(rows), "finding"), next)
			} else {
				fmt.Fprintln(e.stderr, table.Plural(len(rows), "finding"))
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
	lf.StringVar(&asOf, "as-of", "", "the findings open at the end of this day (YYYY-MM-DD) or at an RFC 3339 time, from the exposure ledger")
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
			if o.data() {
				return printData(e.stdout, o.output, vl)
			}
			tb := table.New(table.Column{Name: "PRIORITY"}, table.Column{Name: "VULNERABILITY"}, right("HOSTS"), table.Column{Name: "KEV"}, table.Column{Name: "EPSS"},
				table.Column{Name: "PACKAGES", Shrink: 2, Min: 12}, table.Column{Name: "FIXED", Shrink: 3, Min: 10})
			for _, v := range vl.Vulnerabilities {
				tb.Row(v.Priority, v.ID, strconv.Itoa(v.Hosts), yes(v.KEV), epssString(v.EPSS), short(v.Packages), short(v.Fixed))
			}
			if err := e.writeTable(tb, o.wide); err != nil {
				return err
			}
			fmt.Fprintln(e.stderr, table.Plural(len(vl.Vulnerabilities), "vulnerability", "vulnerabilities"))
			return nil
		},
	}
	list.Flags().StringSliceVar(&priorities, "priority", nil, "P1..P4 (repeatable)")
	list.Flags().BoolVar(&kev, "kev", false, "only vulnerabilities in CISA KEV")
	list.Flags().IntVar(&limit, "limit", 0, "at most this many (0: all)")
	show := &cobra.Command{
		Use:   "show ID",
		Short: "Show one vulnerability, the hosts it affects, and every score of it with its source",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client()
			if err != nil {
				return err
			}
			var v api.VulnDetail
			if err := c.Do(cmd.Context(), http.MethodGet, api.Prefix+"/vulns/"+url.PathEscape(args[0]), nil, &v); err != nil {
				return err
			}
			if o.data() {
				return printData(e.stdout, o.output, v)
			}
			w := e.stdout
			fmt.Fprintf(w, "%s  priority %s  severity %s\n", v.ID, v.Priority, v.Severity)
			fmt.Fprintf(w, "  open on %s (%s); %d remediated\n", table.Plural(v.Hosts, "host"), table.Plural(v.Open, "finding"), v.Remediated)
			kev := "no"
			if v.KEV {
				kev = "yes"
				if v.KEVDue != "" {
					kev += ", federal due date " + v.KEVDue
				}
			}
			epss := epssString(v.EPSS)
			if epss == "" {
				epss = "no score"
			}
			fmt.Fprintf(w, "  KEV: %s; EPSS: %s\n", kev, epss)
			fmt.Fprintf(w, "  packages: %s\n  fixed in: %s\n  hosts:\n", strings.Join(v.Packages, ", "), strings.Join(v.Fixed, ", "))
			for _, h := range v.AffectedHosts {
				fmt.Fprintf(w, "    %s (%s)\n", h.Hostname, h.ID)
			}
			return writeEnrichment(w, v.Enrichment)
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
