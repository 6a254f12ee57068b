package scorecard

import (
	"time"

	"github.com/patchbay/patchbay/fleet"
	"github.com/patchbay/patchbay/kpi"
	"github.com/patchbay/patchbay/policy"
)

// CustomFact is a fact pushed for a service (from CI), with its time.
type CustomFact struct {
	Service string    `json:"service"`
	Name    string    `json:"name"`
	Value   string    `json:"value"`
	At      time.Time `json:"at"`
	Actor   string    `json:"actor,omitempty"`
}

// Inputs are what the facts of every service are computed from, read once
// per scoring.
type Inputs struct {
	Set    *policy.Set
	Hosts  []fleet.HostSummary
	Assets []kpi.Asset // kpi.AssetsOf(Hosts, Set)
	// Open are the exposure intervals open now, with their vulnerability.
	Open []kpi.Interval
	// KEV are the vulnerabilities in CISA KEV.
	KEV map[string]bool
	// KPI are the last 90 days' figures by service.
	KPI map[string]kpi.Figures
	// Custom are the latest pushed facts by service and name.
	Custom map[string]map[string]CustomFact
	// Stale: a host not seen for this long has an agent not reporting.
	Stale time.Duration
	Now   time.Time
	// TeamWebhooks: a team's own webhook (its Team document's) receives
	// the notices about the team, besides the server's webhooks.
	TeamWebhooks bool
}

// Services are the catalog's service names, in order.
func Services(set *policy.Set) []string {
	var out []string
	for _, d := range set.Documents() {
		if d.Kind == policy.KindService {
			out = append(out, d.Metadata.Name)
		}
	}
	return out
}

// FactsOf computes the facts of every service of the catalog.
func FactsOf(in Inputs) map[string]Facts {
	out := map[string]Facts{}
	svcAssets := map[string][]string{} // service → asset ids
	hostOf := map[string]*fleet.HostSummary{}
	for i := range in.Hosts {
		hostOf[in.Hosts[i].ID] = &in.Hosts[i]
	}
	for _, a := range in.Assets {
		for _, s := range a.Services {
			svcAssets[s] = append(svcAssets[s], a.ID)
		}
		if a.Service != "" && len(a.Services) == 0 {
			svcAssets[a.Service] = append(svcAssets[a.Service], a.ID)
		}
	}
	open := map[string][]kpi.Interval{}
	for _, iv := range in.Open {
		open[iv.Asset] = append(open[iv.Asset], iv)
	}
	for _, name := range Services(in.Set) {
		sp := in.Set.Service(name)
		v := map[string]any{"tier": int64(sp.Tier), "team": sp.Owner}
		var t tally
		invAge := int64(-1)
		for _, id := range svcAssets[name] {
			h := hostOf[id]
			if h != nil && fleet.AssetOf(h.Host).Service != "" {
				// The service's uploaded inventory: its age.
				invAge = max(invAge, int64(in.Now.Sub(h.LastSeen)/(24*time.Hour)))
				h = nil
			}
			t.add(h, open[id], in)
		}
		t.put(v)
		v["hosts"], v["agents_not_reporting"], v["pending_reboots"], v["kernel_behind"], v["os_eol"], v["inventory_age_days"] =
			t.hosts, t.notReporting, t.reboots, t.kernel, t.eol, invAge
		var exc, expiry int64 = 0, -1
		for _, d := range in.Set.Documents() {
			ex, ok := d.Spec.(*policy.ExceptionSpec)
			if !ok || !in.Set.ExceptionActive(d.Metadata.Name, in.Now) || !names(ex.Services, name) {
				continue
			}
			exc++
			if !ex.Expires.IsZero() {
				days := int64(ex.Expires.End().Sub(in.Now) / (24 * time.Hour))
				if expiry < 0 || days < expiry {
					expiry = days
				}
			}
		}
		v["exceptions"], v["exception_expiry_days"] = exc, expiry
		f := in.KPI[name]
		v["mttp_days"] = f.MTTP.Mean
		v["sla_compliance"] = 1.0
		if f.SLA.Due-f.SLA.Excluded > 0 {
			v["sla_compliance"] = f.SLA.Rate
		}
		v["patch_success_rate"] = 1.0
		if f.Jobs != nil && f.Jobs.Completed > 0 {
			v["patch_success_rate"] = float64(f.Jobs.Succeeded) / float64(f.Jobs.Completed)
		}
		custom := map[string]any{}
		for n, cf := range in.Custom[name] {
			custom[n] = ParseValue(cf.Value)
		}
		out[name] = Facts{Values: v, Custom: custom}
	}
	return out
}

// tally sums the host facts and open findings of some assets: what a
// service, a host and a host group are scored on alike.
type tally struct {
	hosts, notReporting, reboots, kernel, eol int64
	open, overdue, kev                        int64
	byP, overP                                map[string]int64
	oldest                                    map[string]time.Duration
}

// add counts one asset: its host facts (h nil for a service's uploaded
// inventory) and its open findings.
func (t *tally) add(h *fleet.HostSummary, open []kpi.Interval, in Inputs) {
	if t.byP == nil {
		t.byP, t.overP, t.oldest = map[string]int64{}, map[string]int64{}, map[string]time.Duration{}
	}
	if h != nil {
		t.hosts++
		if in.Now.Sub(h.LastSeen) > in.Stale {
			t.notReporting++
		}
		if h.Facts.RebootRequired {
			t.reboots++
		}
		if h.Facts.KernelNewest != "" && h.Facts.KernelRunning != "" && h.Facts.KernelNewest != h.Facts.KernelRunning {
			t.kernel++
		}
		if e := EndOfLife(h.Facts.OSID, h.Facts.OSVersion); !e.IsZero() && !in.Now.Before(e) {
			t.eol++
		}
	}
	for _, iv := range open {
		t.open++
		t.byP[iv.Priority]++
		if !iv.Due.IsZero() && iv.Due.Before(in.Now) {
			t.overdue++
			t.overP[iv.Priority]++
		}
		if age := in.Now.Sub(iv.Opened); age > t.oldest[iv.Priority] {
			t.oldest[iv.Priority] = age
		}
		if in.KEV[iv.Vulnerability] {
			t.kev++
		}
	}
}

// put writes the findings facts every entity has.
func (t *tally) put(v map[string]any) {
	v["open"], v["overdue"], v["kev"] = t.open, t.overdue, t.kev
	for _, p := range []string{"P1", "P2", "P3", "P4"} {
		v["open_"+lower(p)] = t.byP[p]
		v["overdue_"+lower(p)] = t.overP[p]
	}
	v["oldest_p1_days"] = int64(t.oldest["P1"] / (24 * time.Hour))
	v["oldest_p2_days"] = int64(t.oldest["P2"] / (24 * time.Hour))
}

func lower(p string) string { return "p" + p[1:] }

func names(list []string, name string) bool {
	for _, s := range list {
		if s == name {
			return true
		}
	}
	return false
}
