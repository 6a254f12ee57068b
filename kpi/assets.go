package kpi

import (
	"github.com/patchbay/patchbay/fleet"
	"github.com/patchbay/patchbay/policy"
)

// AssetsOf turns hosts into assets with the dimensions the policy gives
// them: the team (its `team` label, else the owner of its most critical
// service), the services it runs and the host groups it is in. This is
// the one place a team or service is resolved: when the service catalog
// arrives, it changes here. A nil set gives teams from labels only.
func AssetsOf(hosts []fleet.HostSummary, set *policy.Set) []Asset {
	out := make([]Asset, 0, len(hosts))
	for _, h := range hosts {
		fa := fleet.AssetOf(h.Host)
		a := Asset{ID: h.ID, Hostname: h.Hostname, Service: fa.Service, Labels: fa.Labels, Enrolled: h.EnrolledAt, LastSeen: h.LastSeen}
		if set != nil {
			c := set.Context(policy.AssetOf(fa))
			a.Team, a.Services, a.Groups = c.Team, c.Services, c.Groups
		} else {
			a.Team = fa.Labels["team"]
			if fa.Service != "" {
				a.Services = []string{fa.Service}
			}
		}
		out = append(out, a)
	}
	return out
}
