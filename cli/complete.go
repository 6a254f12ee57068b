package cli

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/patchbay/patchbay/api"
	"github.com/patchbay/patchbay/api/policyapi"
	"github.com/patchbay/patchbay/api/rolloutapi"
	"github.com/patchbay/patchbay/kinds"
	"github.com/patchbay/patchbay/patch"
)

// completions gives the commands that name things their dynamic shell
// completion (`patchbay completion bash|zsh|fish`): kinds from the one
// list, host ids and hostnames, plan ids and document names from the
// server the command would talk to (its --server, --ca, --pin and
// PATCHBAY_TOKEN). A server that cannot be reached completes nothing,
// quickly.
func completions(root *cobra.Command) {
	hosts := argsOnce(func(ctx context.Context, cmd *cobra.Command, _ []string) []string { return completeHosts(ctx, cmd) })
	plans := argsOnce(func(ctx context.Context, cmd *cobra.Command, _ []string) []string { return completePlans(ctx, cmd) })
	kindThenName := func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		if len(args) == 0 {
			return kindNames(), cobra.ShellCompDirectiveNoFileComp
		}
		if len(args) == 1 || cmd.Name() == "delete" {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			return completeDocs(ctx, cmd, args[0]), cobra.ShellCompDirectiveNoFileComp
		}
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			walk(sub)
		}
		path := strings.TrimPrefix(c.CommandPath(), "patchbay ")
		switch {
		case path == "hosts show":
			c.ValidArgsFunction = hosts
		case path == "get" || path == "delete" || path == "policy history":
			c.ValidArgsFunction = kindThenName
		case strings.HasPrefix(path, "plan ") && path != "plan create" && path != "plan list",
			strings.HasPrefix(path, "rollout "):
			c.ValidArgsFunction = plans
		}
		fixed := map[string][]string{
			"priority": {"P1", "P2", "P3", "P4"}, "fail-on": {"P1", "P2", "P3", "P4"},
			"type": typeNames(), "cycle": {"system", "application"},
		}
		if f := c.Flag("output"); f != nil && len(f.Annotations[formatsAnnotation]) > 0 {
			fixed["output"] = f.Annotations[formatsAnnotation]
		}
		for name, values := range fixed {
			if c.Flag(name) != nil {
				c.RegisterFlagCompletionFunc(name, cobra.FixedCompletions(values, cobra.ShellCompDirectiveNoFileComp))
			}
		}
		if f := c.Flags().Lookup("host"); f != nil && f.Value.Type() == "string" {
			c.RegisterFlagCompletionFunc("host", func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
				defer cancel()
				return completeHosts(ctx, cmd), cobra.ShellCompDirectiveNoFileComp
			})
		}
	}
	walk(root)
}

// argsOnce completes the first argument only.
func argsOnce(list func(ctx context.Context, cmd *cobra.Command, args []string) []string) func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return func(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		return list(ctx, cmd, args), cobra.ShellCompDirectiveNoFileComp
	}
}

// kindNames are the kinds as `get` takes them: services, hostgroups …
func kindNames() []string {
	var out []string
	for _, k := range kinds.All().Names() {
		l := strings.ToLower(k)
		if strings.HasSuffix(l, "y") {
			out = append(out, l[:len(l)-1]+"ies")
		} else {
			out = append(out, l+"s")
		}
	}
	return out
}

// completionClient is the command's client of the server, or nil.
func completionClient(cmd *cobra.Command) *api.Client {
	get := func(name string) string {
		if f := cmd.Flag(name); f != nil {
			return f.Value.String()
		}
		return ""
	}
	cc := clientConfig{server: get("server"), ca: get("ca"), pin: get("pin")}
	if cc.server == "" || os.Getenv(envToken) == "" {
		return nil
	}
	c, err := cc.apiClient()
	if err != nil {
		return nil
	}
	return c
}

func completeHosts(ctx context.Context, cmd *cobra.Command) []string {
	c := completionClient(cmd)
	if c == nil {
		return nil
	}
	var hl api.HostList
	if err := c.Do(ctx, http.MethodGet, api.Prefix+"/hosts", nil, &hl); err != nil {
		return nil
	}
	// A hostname several hosts share is offered once (it names them all:
	// the server then asks for an id); each id once.
	var out []string
	names := map[string]int{}
	for _, h := range hl.Hosts {
		names[h.Hostname]++
	}
	for _, h := range hl.Hosts {
		switch n := names[h.Hostname]; {
		case n == 1:
			out = append(out, h.Hostname+"\t"+h.ID)
		case n > 1:
			out = append(out, fmt.Sprintf("%s\t%d hosts", h.Hostname, n))
			names[h.Hostname] = 0
		}
		out = append(out, h.ID+"\t"+h.Hostname)
	}
	return out
}

func completePlans(ctx context.Context, cmd *cobra.Command) []string {
	c := completionClient(cmd)
	if c == nil {
		return nil
	}
	var resp struct {
		Plans []rolloutapi.PlanStatus `json:"plans"`
	}
	if err := c.Do(ctx, http.MethodGet, api.Prefix+"/plans", nil, &resp); err != nil {
		return nil
	}
	var out []string
	for _, st := range resp.Plans {
		out = append(out, st.Plan.ID+"\t"+string(st.Plan.State))
	}
	return out
}

func completeDocs(ctx context.Context, cmd *cobra.Command, kind string) []string {
	k, err := kinds.All().Canonical(kind)
	if err != nil {
		return nil
	}
	c := completionClient(cmd)
	if c == nil {
		return nil
	}
	var list policyapi.PolicyList
	if err := c.Do(ctx, http.MethodGet, api.Prefix+"/policy?"+url.Values{"kind": {k}}.Encode(), nil, &list); err != nil {
		return nil
	}
	var out []string
	for _, d := range list.Documents {
		out = append(out, d.Name)
	}
	return out
}

func typeNames() []string {
	var out []string
	for _, t := range patch.Types {
		out = append(out, string(t))
	}
	return out
}
