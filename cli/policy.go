package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/patchbay/patchbay/api"
	"github.com/patchbay/patchbay/api/policyapi"
	"github.com/patchbay/patchbay/fleet"
	"github.com/patchbay/patchbay/internal/table"
	"github.com/patchbay/patchbay/kinds"
	"github.com/patchbay/patchbay/policy"
)

func newPolicyCmds(e *env) []*cobra.Command {
	return []*cobra.Command{newApplyCmd(e, false), newApplyCmd(e, true), newGetCmd(e), newDeleteCmd(e), newPolicyCmd(e)}
}

// readPolicyFiles reads the files and directories named, as the server
// will read them: YAML documents and VEX (JSON) files. They are parsed
// here first, so problems are reported before anything is sent.
func readPolicyFiles(paths []string, stdin io.Reader) ([]policyapi.PolicyFile, int, error) {
	if len(paths) == 0 {
		return nil, 0, fmt.Errorf("-f: name a file or directory of policy documents (- for standard input)")
	}
	files, err := policy.CollectFiles(paths, stdin)
	if err != nil {
		return nil, 0, err
	}
	docs, err := kinds.All().ParseFiles(files)
	if es := policy.AsErrors(err); es != nil {
		return nil, 0, problemsError(len(es), es.Error())
	} else if err != nil {
		return nil, 0, err
	}
	out := make([]policyapi.PolicyFile, len(files))
	for i, f := range files {
		out[i] = policyapi.PolicyFile{Name: f.Name, Content: string(f.Data)}
	}
	return out, len(docs), nil
}

// kindQuery is the query of KIND [NAME] arguments.
func kindQuery(args []string) (url.Values, error) {
	kind, err := kinds.All().Canonical(args[0])
	if err != nil {
		return nil, err
	}
	q := url.Values{"kind": {kind}}
	if len(args) == 2 {
		q.Set("name", args[1])
	}
	return q, nil
}

// problemsError lists every problem, one per line, and says nothing was
// applied.
func problemsError(n int, lines string) error {
	return fmt.Errorf("%d problem(s); nothing applied:\n%s", n, lines)
}

// policyErr turns an invalid_policy response into its problems.
func policyErr(err error) error {
	var se *api.StatusError
	if errors.As(err, &se) && len(se.Body.Problems) > 0 {
		lines := make([]string, len(se.Body.Problems))
		for i, p := range se.Body.Problems {
			lines[i] = p.Error()
		}
		return problemsError(len(lines), strings.Join(lines, "\n"))
	}
	return err
}

func newApplyCmd(e *env, diffOnly bool) *cobra.Command {
	o := &clientOpts{}
	var files []string
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "apply -f FILE|DIR …",
		Short: "Apply policy documents: validate all, then apply all in one transaction",
		Long: `Apply policy documents (apiVersion patchbay/v1: Team, Service, HostGroup,
Policy, Exception) and VEX files (OpenVEX, CycloneDX VEX: their not_affected
statements become Exceptions). Every document of every file is validated
first; if anything fails, nothing is applied. Prints, per document,
created, changed or unchanged.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			pf, _, err := readPolicyFiles(files, os.Stdin)
			if err != nil {
				return err
			}
			c, err := o.client()
			if err != nil {
				return err
			}
			var resp policyapi.ApplyResponse
			req := policyapi.ApplyRequest{Files: pf, DryRun: dryRun || diffOnly}
			if err := c.Do(cmd.Context(), http.MethodPost, api.Prefix+"/policy/apply", req, &resp); err != nil {
				return policyErr(err)
			}
			return printChanges(e, o, resp, diffOnly)
		},
	}
	if diffOnly {
		cmd.Use, cmd.Short = "diff -f FILE|DIR …", "Show what applying policy documents would change"
		cmd.Long = `Show, as a line diff of the YAML, what ` + "`patchbay apply`" + ` would change; nothing is applied.

Exit status: 0 when nothing would change, 1 when something would, 2 on
errors (as kubectl diff).`
	}
	o.flags(cmd)
	cmd.Flags().StringSliceVarP(&files, "filename", "f", nil, "file or directory of documents (repeatable; - for standard input)")
	if !diffOnly {
		cmd.Flags().BoolVar(&dryRun, "dry-run", false, "validate and report, apply nothing")
	}
	return cmd
}

// wouldBe is how a dry run says an action: "would be created".
func wouldBe(a policy.Action, dryRun bool) string {
	if !dryRun {
		return string(a)
	}
	switch a {
	case policy.Changed:
		return "would change"
	case policy.Unchanged:
		return "unchanged"
	}
	return "would be " + string(a)
}

// printChanges prints what an apply did, or a dry run or diff would do.
// A diff that finds differences returns ErrDiffers (exit 1, as kubectl
// diff and diff(1) do), so a pipeline can tell drift from none.
func printChanges(e *env, o *clientOpts, resp policyapi.ApplyResponse, diff bool) error {
	n := map[policy.Action]int{}
	for _, ch := range resp.Changes {
		n[ch.Action]++
	}
	differs := n[policy.Created]+n[policy.Changed]+n[policy.Deleted] > 0
	if o.data() {
		if err := printData(e.stdout, o.output, resp); err != nil {
			return err
		}
		if diff && differs {
			return ErrDiffers
		}
		return nil
	}
	for _, ch := range resp.Changes {
		if diff {
			if ch.Action != policy.Unchanged {
				fmt.Fprintf(e.stdout, "%s %s (version %d)\n%s\n", ch.Ref(), wouldBe(ch.Action, true), ch.Version, ch.Diff)
			}
			continue
		}
		fmt.Fprintf(e.stdout, "%s %s\n", ch.Ref(), wouldBe(ch.Action, resp.DryRun))
	}
	dry := resp.DryRun || diff
	fmt.Fprintf(e.stderr, "%d %s, %d %s, %d unchanged, %d %s", n[policy.Created], wouldBe(policy.Created, dry), n[policy.Changed], wouldBe(policy.Changed, dry),
		n[policy.Unchanged], n[policy.Deleted], wouldBe(policy.Deleted, dry))
	if dry {
		fmt.Fprint(e.stderr, " (nothing applied)")
	}
	if r := resp.Reprioritized; r != nil {
		fmt.Fprintf(e.stderr, "; findings decided again: %d on %s, %d changed", r.Findings, table.Plural(r.Hosts, "host"), r.Changed)
		if resp.Pending {
			fmt.Fprint(e.stderr, " so far (the server's leader decides the rest within a minute)")
		}
	}
	fmt.Fprintln(e.stderr)
	if diff && differs {
		return ErrDiffers
	}
	return nil
}

func newGetCmd(e *env) *cobra.Command {
	o := &clientOpts{}
	cmd := &cobra.Command{
		Use:   "get KIND [NAME]",
		Short: "Show applied policy documents (-o yaml applies again unchanged)",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			q, err := kindQuery(args)
			if err != nil {
				return err
			}
			out := o.output
			c, err := o.client()
			if err != nil {
				return err
			}
			var list policyapi.PolicyList
			if err := c.Do(cmd.Context(), http.MethodGet, api.Prefix+"/policy?"+q.Encode(), nil, &list); err != nil {
				return err
			}
			switch out {
			case "json":
				return printJSON(e.stdout, list)
			case "yaml":
				docs := make([]*policy.Document, 0, len(list.Documents))
				for _, d := range list.Documents {
					doc, err := kinds.All().FromCanonical(d.Document)
					if err != nil {
						return err
					}
					docs = append(docs, doc)
				}
				return policy.Encode(e.stdout, docs)
			}
			tb := table.New(table.Column{Name: "KIND"}, table.Column{Name: "NAME", Shrink: 1, Min: 12}, right("VERSION"), table.Column{Name: "APPLIED"},
				table.Column{Name: "BY", Shrink: 2, Min: 8})
			if len(list.Documents) == 0 {
				what := q.Get("kind")
				if n := q.Get("name"); n != "" {
					what += "/" + n
				}
				fmt.Fprintf(e.stderr, "no %s applied (patchbay apply -f FILE|DIR)\n", what)
				return nil
			}
			for _, d := range list.Documents {
				tb.Row(d.Kind, d.Name, strconv.Itoa(d.Version), d.AppliedAt.Format(time.RFC3339), d.AppliedBy)
			}
			if err := e.writeTable(tb, o.wide); err != nil {
				return err
			}
			fmt.Fprintln(e.stderr, table.Plural(len(list.Documents), "document"))
			return nil
		},
	}
	o.flags(cmd)
	cmd.Flag("output").Usage = "output format: table, json or yaml (the policy documents, which apply again unchanged)"
	return cmd
}

func newDeleteCmd(e *env) *cobra.Command {
	o := &clientOpts{}
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "delete KIND NAME…",
		Short: "Delete applied policy documents (kept in their history)",
		Args:  cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			kind, err := kinds.All().Canonical(args[0])
			if err != nil {
				return err
			}
			c, err := o.client()
			if err != nil {
				return err
			}
			req := policyapi.ApplyRequest{DryRun: dryRun}
			for _, n := range args[1:] {
				req.Delete = append(req.Delete, kind+"/"+n)
			}
			var resp policyapi.ApplyResponse
			if err := c.Do(cmd.Context(), http.MethodPost, api.Prefix+"/policy/apply", req, &resp); err != nil {
				return policyErr(err)
			}
			return printChanges(e, o, resp, false)
		},
	}
	o.flags(cmd)
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "validate and report, delete nothing")
	return cmd
}

func newPolicyCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{Use: "policy", Short: "The built-in policy, validation and history of policy documents"}
	def := &cobra.Command{
		Use:   "default",
		Short: "Print the built-in Policy document, a start for your own",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			_, err := e.stdout.Write(policy.DefaultYAML())
			return err
		},
	}
	var files []string
	validate := &cobra.Command{
		Use:   "validate -f FILE|DIR …",
		Short: "Check policy documents offline (each on its own; references between documents are checked by apply)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			pf, n, err := readPolicyFiles(files, os.Stdin)
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "%s in %s: valid\n", table.Plural(n, "document"), table.Plural(len(pf), "file"))
			return nil
		},
	}
	validate.Flags().StringSliceVarP(&files, "filename", "f", nil, "file or directory of documents (repeatable)")
	o := &clientOpts{}
	history := &cobra.Command{
		Use:   "history KIND [NAME]",
		Short: "Every applied version of documents: who, when, what changed",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			q, err := kindQuery(args)
			if err != nil {
				return err
			}
			c, err := o.client()
			if err != nil {
				return err
			}
			var h policyapi.PolicyHistory
			if err := c.Do(cmd.Context(), http.MethodGet, api.Prefix+"/policy/history?"+q.Encode(), nil, &h); err != nil {
				return err
			}
			if o.data() {
				return printData(e.stdout, o.output, h)
			}
			prev := map[string]*policy.Document{}
			for _, v := range h.Versions {
				ref := v.Kind + "/" + v.Name
				fmt.Fprintf(e.stdout, "%s version %d %s by %s at %s\n", ref, v.Version, v.Action, v.AppliedBy, v.AppliedAt.Format(time.RFC3339))
				var doc *policy.Document
				if len(v.Document) > 0 {
					if doc, err = kinds.All().FromCanonical(v.Document); err != nil {
						return err
					}
				}
				fmt.Fprint(e.stdout, indent(docDiff(prev[ref], doc), "    "))
				prev[ref] = doc
			}
			return nil
		},
	}
	o.flags(history)
	cmd.AddCommand(def, validate, history)
	return cmd
}

func docDiff(a, b *policy.Document) string {
	lines := func(d *policy.Document) []string {
		if d == nil {
			return nil
		}
		var buf bytes.Buffer
		if err := policy.Encode(&buf, []*policy.Document{d}); err != nil {
			return []string{err.Error()}
		}
		return strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	}
	var out []string
	for _, l := range strings.Split(policy.LineDiff(lines(a), lines(b)), "\n") {
		if strings.HasPrefix(l, "+ ") || strings.HasPrefix(l, "- ") {
			out = append(out, l)
		}
	}
	if len(out) == 0 {
		return ""
	}
	return strings.Join(out, "\n") + "\n"
}

func indent(s, pre string) string {
	if s == "" {
		return ""
	}
	return pre + strings.ReplaceAll(strings.TrimSuffix(s, "\n"), "\n", "\n"+pre) + "\n"
}

// explainFinding prints a finding's decision path.
func explainFinding(w io.Writer, d policyapi.FindingDetail, now time.Time) {
	f := d.Finding
	fmt.Fprintf(w, "finding %d: %s in %s %s (%s) on %s\n", f.ID, f.Vulnerability, f.Package, f.Version, f.Ecosystem, d.Hostname)
	state := string(f.State)
	switch {
	case !f.RemediatedAt.IsZero():
		state = "remediated " + f.RemediatedAt.Format(time.RFC3339)
	case f.State == fleet.StateOpen && !f.Due.IsZero() && f.Due.Before(now):
		state = "overdue"
	}
	lane := ""
	if f.Lane != "" {
		lane = ", " + string(f.Lane) + " lane"
	}
	fmt.Fprintf(w, "  %s, %s%s, first seen %s, due %s; fix: %s\n", state, f.Priority, lane, f.FirstSeen.Format(time.DateOnly), f.Due.Format(time.DateOnly), orNone(f.Fixed))
	if fx := d.Fix; fx != nil {
		fmt.Fprintf(w, "  fix %s: %s on branch %s%s\n", fx.State, fx.To, fx.Branch, prefixed(" ", fx.MergeRequest))
	}
	if d.Summary != "" {
		fmt.Fprintf(w, "  %s\n", d.Summary)
	}
	fmt.Fprintln(w, "\nvulnerability evidence:")
	for _, r := range d.Evidence {
		fmt.Fprintf(w, "  - %s\n", r)
	}
	fmt.Fprintf(w, "  decision points: exploitation %s, automatable %t, technical impact %s, %s cycle\n", f.Exploitation, f.Automatable, f.Impact, f.Cycle)
	c := d.Context
	fmt.Fprintln(w, "\nasset context:")
	fmt.Fprintf(w, "  tier %d (%s), exposure %s (%s)\n", c.Tier, c.TierFrom, c.Exposure, c.ExposureFrom)
	if c.Team != "" {
		fmt.Fprintf(w, "  team %s (%s)\n", c.Team, c.TeamFrom)
	}
	if len(c.Services) > 0 {
		fmt.Fprintf(w, "  services: %s\n", strings.Join(c.Services, ", "))
	}
	if cl := d.Claim; cl != nil {
		fmt.Fprintf(w, "  service: %s, via path %s (%s)\n", cl.Service, cl.Path, cl.Location)
	}
	if len(c.Groups) > 0 {
		fmt.Fprintf(w, "  host groups: %s\n", strings.Join(c.Groups, ", "))
	}
	fmt.Fprintf(w, "\ndecision (policy %s, now):\n", c.Policy)
	for i, r := range d.Decision.Reasons {
		fmt.Fprintf(w, "  %d. %s\n", i+1, r)
	}
	fmt.Fprintf(w, "  → %s, %s\n", d.Decision.Priority, d.Decision.State)
	if len(d.History) > 0 {
		fmt.Fprintln(w, "\nhistory:")
		for _, h := range d.History {
			fmt.Fprintf(w, "  %s  %s → %s", h.At.Format(time.RFC3339), h.PriorityFrom, h.PriorityTo)
			if h.StateFrom != h.StateTo {
				fmt.Fprintf(w, ", %s → %s", h.StateFrom, h.StateTo)
			}
			fmt.Fprintf(w, "  because %s\n", h.Cause)
		}
	} else {
		fmt.Fprintln(w, "\nhistory: no change of priority or state since first seen")
	}
}

func orNone(s string) string {
	if s == "" {
		return "(no fix yet)"
	}
	return s
}

func newFindingsExplainCmd(e *env, o *clientOpts) *cobra.Command {
	return &cobra.Command{
		Use:   "explain ID",
		Short: "Explain a finding: evidence, asset context, the decision path, and why its priority or state changed",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := strconv.ParseInt(args[0], 10, 64); err != nil {
				return fmt.Errorf("finding id %q: want the number findings list shows", args[0])
			}
			c, err := o.client()
			if err != nil {
				return err
			}
			var d policyapi.FindingDetail
			if err := c.Do(cmd.Context(), http.MethodGet, api.Prefix+"/findings/"+args[0], nil, &d); err != nil {
				return err
			}
			if o.data() {
				return printData(e.stdout, o.output, d)
			}
			explainFinding(e.stdout, d, time.Now())
			return nil
		},
	}
}

// prefixed is s after p, or nothing when s is empty.
func prefixed(p, s string) string {
	if s == "" {
		return ""
	}
	return p + s
}
