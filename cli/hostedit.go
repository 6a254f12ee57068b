package cli

import (
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/patchbay/patchbay/api"
	"github.com/patchbay/patchbay/fleet"
)

// newHostLabelCmd is `hosts label HOST k=v… k-…`: the labels set on the
// server (which win over the agent's own --label ones), changed as kubectl
// label changes them.
func newHostLabelCmd(e *env, o *clientOpts) *cobra.Command {
	var clear bool
	cmd := &cobra.Command{
		Use:   "label HOST KEY=VALUE… | KEY-…",
		Short: "Set or remove a host's labels on the server (they win over the agent's own)",
		Long: `label sets (KEY=VALUE) and removes (KEY-) labels of a host on the server,
keeping its other labels; --clear removes every label set here first.
Labels set here win over those the agent reports (agent --label); an
agent's label is removed on its host. The findings of the host are decided
again in the new context (tier, exposure, services) at once.`,
		Example: `  patchbay hosts label web-1 env=prod role=web
  patchbay hosts label web-1 role-
  patchbay hosts label web-1 --clear`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 && !clear {
				return fmt.Errorf("nothing to change: give KEY=VALUE to set, KEY- to remove, or --clear\nusage: %s", cmd.UseLine())
			}
			set, del := map[string]string{}, map[string]bool{}
			for _, a := range args[1:] {
				if k, ok := strings.CutSuffix(a, "-"); ok && !strings.Contains(a, "=") {
					del[k] = true
					continue
				}
				k, v, ok := strings.Cut(a, "=")
				if !ok || k == "" {
					return fmt.Errorf("%q: want KEY=VALUE to set a label or KEY- to remove one", a)
				}
				set[k] = v
			}
			c, err := o.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			var d fleet.HostDetail
			if err := c.Do(ctx, http.MethodGet, api.Prefix+"/hosts/"+url.PathEscape(args[0]), nil, &d); err != nil {
				return err
			}
			labels := map[string]string{}
			if !clear {
				for k, v := range d.Labels {
					labels[k] = v
				}
			}
			for k := range del {
				if _, ok := labels[k]; !ok {
					if _, agent := d.Facts.Labels[k]; agent {
						return fmt.Errorf("label %s of host %s comes from its agent (agent --label): change it on the host, or set another value here", k, d.Hostname)
					}
					return fmt.Errorf("host %s has no label %s", d.Hostname, k)
				}
				delete(labels, k)
			}
			for k, v := range set {
				labels[k] = v
			}
			var h fleet.HostSummary
			if err := c.Do(ctx, http.MethodPut, api.Prefix+"/hosts/"+url.PathEscape(d.ID)+"/labels", map[string]any{"labels": labels}, &h); err != nil {
				return err
			}
			if o.data() {
				return printData(e.stdout, o.output, h)
			}
			fmt.Fprintf(e.stdout, "host %s (%s) labels: %s\n", h.Hostname, h.ID, noneIfEmpty(labelString(h.EffectiveLabels())))
			return nil
		},
	}
	cmd.Flags().BoolVar(&clear, "clear", false, "remove every label set on the server first")
	return cmd
}

// newHostRevokeCmd is `hosts revoke HOST`: the host's credentials are
// refused from its next check-in on.
func newHostRevokeCmd(e *env, o *clientOpts) *cobra.Command {
	return &cobra.Command{
		Use:   "revoke HOST",
		Short: "Revoke a host's credentials: its agent is refused from its next check-in (admin)",
		Long: `revoke revokes every credential of a host (a decommissioned or compromised
machine): its agent is refused from its next check-in on, and jobs are no
longer handed to it. The host's record, findings and history stay. To
bring the machine back, enroll it again with a new enrollment token.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client()
			if err != nil {
				return err
			}
			var resp struct {
				HostID  string   `json:"host_id"`
				Revoked []string `json:"revoked"`
			}
			if err := c.Do(cmd.Context(), http.MethodPost, api.Prefix+"/hosts/"+url.PathEscape(args[0])+"/revoke", nil, &resp); err != nil {
				return err
			}
			if o.data() {
				return printData(e.stdout, o.output, resp)
			}
			sort.Strings(resp.Revoked)
			if len(resp.Revoked) == 0 {
				fmt.Fprintf(e.stdout, "host %s: no active credential (already revoked)\n", resp.HostID)
				return nil
			}
			fmt.Fprintf(e.stdout, "host %s: revoked %s\n", resp.HostID, strings.Join(resp.Revoked, ", "))
			return nil
		},
	}
}

func noneIfEmpty(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
