package scorecard

import (
	"slices"

	"github.com/patchbay/patchbay/fleet"
	"github.com/patchbay/patchbay/kpi"
	"github.com/patchbay/patchbay/policy"
)

// The entities a scorecard scores (its spec.entity).
const (
	EntityService   = "service"
	EntityHost      = "host"
	EntityHostGroup = "hostGroup"
)

// Entities are the kinds of entity a scorecard can score.
var Entities = []string{EntityService, EntityHost, EntityHostGroup}

// findingFacts are the findings facts a service, a host and a host group
// have alike.
var findingFacts = []Fact{
	{"open", "int", "open findings"},
	{"open_p1", "int", "open P1 findings"},
	{"open_p2", "int", "open P2 findings"},
	{"open_p3", "int", "open P3 findings"},
	{"open_p4", "int", "open P4 findings"},
	{"overdue", "int", "open findings past their due date"},
	{"overdue_p1", "int", "overdue P1 findings"},
	{"overdue_p2", "int", "overdue P2 findings"},
	{"overdue_p3", "int", "overdue P3 findings"},
	{"overdue_p4", "int", "overdue P4 findings"},
	{"oldest_p1_days", "int", "days the oldest open P1 has been open (0: none)"},
	{"oldest_p2_days", "int", "days the oldest open P2 has been open (0: none)"},
	{"kev", "int", "open findings in CISA KEV"},
}

// HostFacts are the facts of a host (entity: host).
var HostFacts = append(slices.Clip(findingFacts),
	Fact{"hostname", "string", "the host's name"},
	Fact{"team", "string", "the owning team (its label or its services' owner)"},
	Fact{"not_reporting", "bool", "the agent has not checked in within the stale interval"},
	Fact{"pending_reboot", "bool", "the host needs a reboot"},
	Fact{"kernel_behind", "bool", "the running kernel is older than the newest installed"},
	Fact{"os_eol", "bool", "the OS release is past its end of life (the shipped table)"},
	Fact{"exceptions", "int", "active exceptions that name the host (their host selector matches it, or they name one of its services)"},
)

// HostGroupFacts are the facts of a host group (entity: hostGroup): its
// hosts' facts summed.
var HostGroupFacts = append(slices.Clip(findingFacts),
	Fact{"hosts", "int", "hosts in the group"},
	Fact{"agents_not_reporting", "int", "hosts whose agent has not checked in within the stale interval"},
	Fact{"not_reporting_share", "double", "share (0..1) of the group's hosts not reporting (0: no hosts)"},
	Fact{"pending_reboots", "int", "hosts that need a reboot"},
	Fact{"kernel_behind", "int", "hosts running an older kernel than the newest installed"},
	Fact{"os_eol", "int", "hosts whose OS release is past its end of life (the shipped table)"},
	Fact{"exceptions", "int", "active exceptions that name any of the group's hosts"},
)

// FactsFor are the built-in facts of an entity kind ("" is service).
func FactsFor(entity string) []Fact {
	switch entity {
	case EntityHost:
		return HostFacts
	case EntityHostGroup:
		return HostGroupFacts
	}
	return BuiltinFacts
}

func (s *Spec) entity() string {
	if s.Entity == "" {
		return EntityService
	}
	return s.Entity
}

// EntityKey is how an entity's results are kept: a service by its name,
// a host as host/HOSTNAME, a host group as hostGroup/NAME.
func EntityKey(entity, name string) string {
	if entity == EntityService || entity == "" {
		return name
	}
	return entity + "/" + name
}

// hostName is how a host is named in scores: its hostname, else its id.
func hostName(h fleet.HostSummary) string {
	if h.Hostname != "" {
		return h.Hostname
	}
	return h.ID
}

// entityFacts are the facts of every entity a scorecard scores, by key,
// and the keys in order.
func entityFacts(entity string, in Inputs) ([]string, map[string]Facts) {
	switch entity {
	case EntityHost, EntityHostGroup:
		return hostFactsOf(entity, in)
	}
	return Services(in.Set), FactsOf(in)
}

// hostFactsOf computes the facts of every host (entity host) or every
// host group of the catalog (entity hostGroup). A service's uploaded
// inventory is not a host and counts in neither.
func hostFactsOf(entity string, in Inputs) ([]string, map[string]Facts) {
	open := map[string][]kpi.Interval{}
	for _, iv := range in.Open {
		open[iv.Asset] = append(open[iv.Asset], iv)
	}
	assetOf := map[string]kpi.Asset{}
	for _, a := range in.Assets {
		assetOf[a.ID] = a
	}
	type exc struct {
		hosts    policy.Selector
		services []string
	}
	var excs []exc
	for _, d := range in.Set.Documents() {
		if ex, ok := d.Spec.(*policy.ExceptionSpec); ok && in.Set.ExceptionActive(d.Metadata.Name, in.Now) {
			excs = append(excs, exc{ex.Hosts, ex.Services})
		}
	}
	excOf := func(a kpi.Asset) int64 {
		var n int64
		for _, e := range excs {
			if (!e.hosts.Empty() && e.hosts.Matches(a.Labels)) || slices.ContainsFunc(e.services, func(s string) bool { return slices.Contains(a.Services, s) }) {
				n++
			}
		}
		return n
	}
	var keys []string
	out := map[string]Facts{}
	if entity == EntityHost {
		for i := range in.Hosts {
			h := &in.Hosts[i]
			if h.IsService() {
				continue
			}
			var t tally
			t.add(h, open[h.ID], in)
			v := map[string]any{"hostname": hostName(*h), "team": assetOf[h.ID].Team}
			t.put(v)
			v["not_reporting"], v["pending_reboot"], v["kernel_behind"], v["os_eol"] = t.notReporting > 0, t.reboots > 0, t.kernel > 0, t.eol > 0
			v["exceptions"] = excOf(assetOf[h.ID])
			k := EntityKey(EntityHost, hostName(*h))
			keys = append(keys, k)
			out[k] = Facts{Values: v, Custom: map[string]any{}}
		}
		slices.Sort(keys)
		return keys, out
	}
	tallies := map[string]*tally{}
	excN := map[string]int64{}
	for _, g := range HostGroups(in.Set) {
		tallies[g] = &tally{}
	}
	for i := range in.Hosts {
		h := &in.Hosts[i]
		if h.IsService() {
			continue
		}
		a := assetOf[h.ID]
		for _, g := range a.Groups {
			if t := tallies[g]; t != nil {
				t.add(h, open[h.ID], in)
				excN[g] += excOf(a)
			}
		}
	}
	for _, g := range HostGroups(in.Set) {
		t := tallies[g]
		v := map[string]any{}
		t.put(v)
		share := 0.0
		if t.hosts > 0 {
			share = float64(t.notReporting) / float64(t.hosts)
		}
		v["hosts"], v["agents_not_reporting"], v["not_reporting_share"], v["pending_reboots"], v["kernel_behind"], v["os_eol"], v["exceptions"] =
			t.hosts, t.notReporting, share, t.reboots, t.kernel, t.eol, excN[g]
		k := EntityKey(EntityHostGroup, g)
		keys = append(keys, k)
		out[k] = Facts{Values: v, Custom: map[string]any{}}
	}
	return keys, out
}

// HostGroups are the catalog's host group names, in order.
func HostGroups(set *policy.Set) []string {
	var out []string
	for _, d := range set.Documents() {
		if d.Kind == policy.KindHostGroup {
			out = append(out, d.Metadata.Name)
		}
	}
	return out
}

// teamOf is the team a result is about (the owner a level drop goes to).
func teamOf(entity, key string, in Inputs, facts Facts) string {
	if entity == EntityService {
		if sp := in.Set.Service(key); sp != nil {
			return sp.Owner
		}
		return ""
	}
	t, _ := facts.Values["team"].(string)
	return t
}

// EntityFacts are the facts of every entity of a kind (service, host or
// hostGroup), by result key.
func EntityFacts(entity string, in Inputs) map[string]Facts {
	_, f := entityFacts(entity, in)
	return f
}
