package cli

import (
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/spf13/cobra"

	"github.com/patchbay/patchbay/api"
	"github.com/patchbay/patchbay/api/rolloutapi"
)

// newEventsCmd prints one timeline of a host or a rollout.
func newEventsCmd(e *env) *cobra.Command {
	o := &clientOpts{}
	var host, plan string
	var follow bool
	var every time.Duration
	cmd := &cobra.Command{
		Use:   "events",
		Short: "One timeline of a host or a rollout: check-ins, jobs, checks, reboots, alerts and gates",
		Long: `One timeline of a host (--host) or a rollout (--rollout), or of a host
within a rollout (both), oldest first: check-ins, jobs started and
reported, their checks and reboots, the alerts Alertmanager sent
(linked to the job that preceded them) and the rollout's gate
measurements and halt. --follow prints new events as they come.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if host == "" && plan == "" {
				return fmt.Errorf("name a host (--host) or a rollout (--rollout)")
			}
			cl, err := o.client()
			if err != nil {
				return err
			}
			var since time.Time
			for {
				q := url.Values{}
				if host != "" {
					q.Set("host", host)
				}
				if plan != "" {
					q.Set("rollout", plan)
				}
				if !since.IsZero() {
					q.Set("since", since.Format(time.RFC3339Nano))
				}
				var evs rolloutapi.Events
				if err := cl.Do(cmd.Context(), http.MethodGet, api.Prefix+"/events?"+q.Encode(), nil, &evs); err != nil {
					return err
				}
				if o.data() && !follow {
					return printData(e.stdout, o.output, evs)
				}
				for _, ev := range evs.Events {
					if o.data() { // --follow: one document per event
						if err := printData(e.stdout, o.output, ev); err != nil {
							return err
						}
						since = ev.Time
						continue
					}
					who := ev.Hostname
					if who == "" {
						who = "-"
					}
					ro := ev.Rollout
					if ro == "" {
						ro = "-"
					}
					fmt.Fprintf(e.stdout, "%s  %-12s  %-12s  %s  %s\n", ev.Time.UTC().Format(time.RFC3339), ev.Kind, who, ro, ev.Summary)
					if ev.Time.After(since) {
						since = ev.Time
					}
				}
				if !follow {
					return nil
				}
				select {
				case <-cmd.Context().Done():
					return nil
				case <-time.After(every):
				}
			}
		},
	}
	o.flags(cmd)
	f := cmd.Flags()
	f.StringVar(&host, "host", "", "the host's timeline (id or hostname)")
	f.StringVar(&plan, "rollout", "", "the rollout's timeline (plan id)")
	f.BoolVar(&follow, "follow", false, "keep printing new events")
	spanVar(f, &every, "every", 2*time.Second, "with --follow: how often to look")
	return cmd
}
