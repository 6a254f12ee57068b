package cli

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/patchbay/patchbay/internal/table"
	"github.com/patchbay/patchbay/scaffold"
)

func newInitCmd(e *env) *cobra.Command {
	var (
		tmplRef          string
		sets             []string
		list, force, ask bool
	)
	cmd := &cobra.Command{
		Use:   "init [DIR] --template NAME [--set key=value …]",
		Short: "Start a policy repository from a template: documents, CI pipelines, a README",
		Long: `init writes a policy repository into DIR (default: the current directory)
from a template: Teams, Services, HostGroups (one per environment), the
Policy, a MaintenanceWindow, a RolloutStrategy (the first environment
first), ApprovalRules, the CI pipelines for GitHub Actions and GitLab CI
(policy: diff on merge requests, apply on main; service: scan --upload
with a --fail-on gate) and a README that says how to apply it.

--template names a built-in template (--list shows them) or a directory
holding a template.yaml manifest and text/template files (./my-template).
--set key=value gives a parameter (--list --template NAME shows them); the
others take their defaults. On a terminal without --template, or with
--interactive, init asks for each parameter.

What is written is checked first as ` + "`patchbay policy validate`" + ` would; nothing is
written on an error, and a DIR that holds files is refused without --force
(with it, files of the same names are replaced, others kept).`,
		// One DIR at most; two words are a mistyped subcommand (init
		// agnet DIR), said as for every other command group.
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return unknownCommand(cmd, args[0])
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if list {
				return initList(e, tmplRef)
			}
			dir := "."
			if len(args) == 1 {
				dir = args[0]
			}
			in := cmd.InOrStdin()
			interactive := ask || (tmplRef == "" && isTerminalReader(in) && e.isTerminal != nil && e.isTerminal(e.stderr))
			given := map[string]string{}
			for _, kv := range sets {
				k, v, ok := strings.Cut(kv, "=")
				if !ok || k == "" {
					return fmt.Errorf("--set %q: want key=value", kv)
				}
				if _, dup := given[k]; dup {
					return fmt.Errorf("--set %s: given twice", k)
				}
				given[k] = v
			}
			var r *bufio.Reader
			if interactive {
				r = bufio.NewReader(in)
			}
			if tmplRef == "" {
				if !interactive {
					return fmt.Errorf("--template: name a template (patchbay init --list shows the built-in ones) or a directory holding one")
				}
				var err error
				if tmplRef, err = askTemplate(r, e.stderr); err != nil {
					return err
				}
			}
			tm, err := scaffold.Open(tmplRef)
			if err != nil {
				return err
			}
			if interactive {
				if given, err = askParams(r, e.stderr, tm, given); err != nil {
					return err
				}
			}
			files, err := tm.Render(given)
			var pe *scaffold.ParamError
			if errors.As(err, &pe) {
				return fmt.Errorf("--set %w", pe)
			} else if err != nil {
				return err
			}
			if err := scaffold.Write(dir, files, force); err != nil {
				return fmt.Errorf("%w; nothing written", err)
			}
			for _, f := range files {
				fmt.Fprintln(e.stdout, filepath.Join(dir, filepath.FromSlash(f.Path)))
			}
			fmt.Fprintf(e.stderr, "%d files written to %s from template %s; next: patchbay apply --dry-run -f %s (the README says more)\n", len(files), dir, tm.Name, dir)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&tmplRef, "template", "t", "", "built-in template name, or a template directory (./my-template)")
	f.StringArrayVar(&sets, "set", nil, "a parameter's value, key=value (repeatable; a list is comma-separated)")
	f.BoolVar(&list, "list", false, "list the built-in templates, a line each (with --template: that template's parameters)")
	f.BoolVar(&force, "force", false, "write into a DIR that holds files (files of the same names are replaced)")
	f.BoolVarP(&ask, "interactive", "i", false, "ask for each parameter, even when standard input is not a terminal")
	cmd.AddCommand(newInitAgentCmd(e))
	return cmd
}

func isTerminalReader(r io.Reader) bool {
	f, ok := r.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// initList prints the built-in templates, or one template's parameters.
func initList(e *env, ref string) error {
	if ref == "" {
		tb := table.New(table.Column{Name: "TEMPLATE"}, table.Column{Name: "DESCRIPTION", Shrink: 1, Min: 20})
		for _, t := range scaffold.Builtins() {
			tb.Row(t.Name, t.Description)
		}
		return tb.Write(e.stdout, e.tableWidth(false))
	}
	t, err := scaffold.Open(ref)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%s: %s\n", t.Name, t.Description)
	tb := table.New(table.Column{Name: "PARAMETER"}, table.Column{Name: "TYPE"}, table.Column{Name: "DEFAULT", Shrink: 2, Min: 8},
		table.Column{Name: "ALLOWED", Shrink: 3, Min: 8}, table.Column{Name: "PROMPT", Shrink: 1, Min: 20})
	for _, p := range t.Params {
		def := p.DefaultText()
		if p.Required() {
			def = "(required)"
		}
		tb.Row(p.Name, p.Type, def, p.AllowedText(), p.Prompt)
	}
	return tb.Write(e.stdout, e.tableWidth(false))
}

// errInterrupted: the answers ended before the questions.
var errInterrupted = errors.New("no answer (end of input); nothing written")

// readAnswer reads one line; Enter alone answers the default.
func readAnswer(r *bufio.Reader) (string, error) {
	line, err := r.ReadString('\n')
	if err != nil && (line == "" || !errors.Is(err, io.EOF)) {
		if errors.Is(err, io.EOF) {
			return "", errInterrupted
		}
		return "", err
	}
	return strings.TrimSpace(line), nil
}

func askTemplate(r *bufio.Reader, w io.Writer) (string, error) {
	ts := scaffold.Builtins()
	fmt.Fprintln(w, "Templates:")
	for i, t := range ts {
		fmt.Fprintf(w, "  %d. %-12s %s\n", i+1, t.Name, t.Description)
	}
	for {
		fmt.Fprintf(w, "Template (a name, a number or a directory) [%s]: ", ts[0].Name)
		a, err := readAnswer(r)
		if err != nil {
			return "", err
		}
		if a == "" {
			return ts[0].Name, nil
		}
		for i, t := range ts {
			if a == t.Name || a == fmt.Sprint(i+1) {
				return t.Name, nil
			}
		}
		if _, err := scaffold.Open(a); err != nil {
			fmt.Fprintf(w, "  %v\n", err)
			continue
		}
		return a, nil
	}
}

// askParams asks for every parameter not given with --set, checking each
// answer and asking again until it is valid.
func askParams(r *bufio.Reader, w io.Writer, t *scaffold.Template, given map[string]string) (map[string]string, error) {
	out := map[string]string{}
	for k, v := range given {
		out[k] = v
	}
	fmt.Fprintf(w, "%s: %s. Enter keeps the value in brackets.\n", t.Name, t.Description)
	for i := range t.Params {
		p := &t.Params[i]
		if _, ok := given[p.Name]; ok {
			continue
		}
		for {
			hint := ""
			if p.Type == scaffold.TypeBool {
				hint = " (true/false)"
			} else if len(p.Allowed) > 0 {
				hint = " (" + strings.ReplaceAll(p.AllowedText(), ", ", "/") + ")"
			}
			if p.Required() {
				fmt.Fprintf(w, "%s%s: ", p.Prompt, hint)
			} else {
				fmt.Fprintf(w, "%s%s [%s]: ", p.Prompt, hint, p.DefaultText())
			}
			a, err := readAnswer(r)
			if err != nil {
				return nil, err
			}
			if a == "" && !p.Required() {
				break
			}
			if _, err := p.Parse(a); err != nil {
				fmt.Fprintf(w, "  %s: %v\n", p.Name, err)
				continue
			}
			out[p.Name] = a
			break
		}
	}
	return out, nil
}

func newInitAgentCmd(e *env) *cobra.Command {
	var (
		a         scaffold.Agent
		tokenFile string
		labels    []string
		force     bool
	)
	cmd := &cobra.Command{
		Use:   "agent [DIR] --server URL --pin sha256:… --token-file F",
		Short: "Write a systemd unit, its environment file and a cloud-init snippet that install and enroll the agent",
		Long: `init agent writes into DIR (default: the current directory):

  patchbay-agent.service  the systemd unit (copy to /etc/systemd/system/)
  agent.env               its environment file, mode 0600: the server, its
                          pin and the enrollment token (copy to
                          /etc/patchbay/agent.env)
  cloud-init.yaml         user data that writes both, installs the binary
                          (--binary-url, checked against --binary-sha256)
                          and starts the agent

The enrollment token is read from --token-file (an admin makes one with
patchbay admin token create --enrollment --uses N) and used once by each
host; labels (--label env=staging --label role=web) place the host in the
policy's host groups and services.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := "."
			if len(args) == 1 {
				dir = args[0]
			}
			if tokenFile == "" {
				return fmt.Errorf("--token-file: name the file holding the enrollment token (patchbay admin token create --enrollment > FILE)")
			}
			b, err := os.ReadFile(tokenFile)
			if err != nil {
				return fmt.Errorf("--token-file: %w", err)
			}
			a.Token = strings.TrimSpace(string(b))
			if a.Labels, err = parseLabels("--label", labels); err != nil {
				return err
			}
			if err := a.Check(); err != nil {
				return err
			}
			files := a.Files()
			if err := scaffold.Write(dir, files, force); err != nil {
				return fmt.Errorf("%w; nothing written", err)
			}
			for _, f := range files {
				fmt.Fprintln(e.stdout, filepath.Join(dir, f.Path))
			}
			fmt.Fprintf(e.stderr, "agent installation written to %s: copy %s to /etc/systemd/system/ and agent.env to %s, or give cloud-init.yaml as user data\n", dir, scaffold.AgentUnit, scaffold.AgentEnvPath)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&a.Server, "server", os.Getenv(envServer), "the server's URL (env "+envServer+")")
	f.StringVar(&a.Pin, "pin", os.Getenv(envPin), "the server's certificate fingerprint, sha256:… (env "+envPin+")")
	f.StringVar(&a.CAFile, "ca", "", "a CA bundle on the host that signs the server's certificate, instead of --pin")
	f.StringVar(&tokenFile, "token-file", "", "file holding the enrollment token")
	f.StringSliceVar(&labels, "label", nil, "label of the hosts, key=value (repeatable): env=staging, role=web")
	f.StringVar(&a.BinaryURL, "binary-url", "", "https URL cloud-init downloads the patchbay binary from (without it the image holds "+scaffold.BinaryPath+")")
	f.StringVar(&a.BinarySHA256, "binary-sha256", "", "the binary's SHA-256 (hex), checked after the download")
	spanVar(f, &a.Interval, "interval", 0, "check-in interval (default the agent's, 5m)")
	f.BoolVar(&force, "force", false, "write into a DIR that holds files (files of the same names are replaced)")
	return cmd
}
