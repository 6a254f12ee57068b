package web

import (
	"cmp"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/patchbay/patchbay/api/policyapi"
	"github.com/patchbay/patchbay/api/rolloutapi"
	"github.com/patchbay/patchbay/fleet"
	"github.com/patchbay/patchbay/rollout"
)

// patchRow is one upgrade: a package to its fixed version, the hosts it
// applies to and the open findings it closes, by priority.
type patchRow struct {
	Ecosystem, Package, Fixed string
	Hosts                     int
	Closes                    map[string]int
	Total                     int
	Top                       string // the highest priority it closes
	// Services are the services whose findings it closes: uploaded
	// inventories and host packages under a path a service claims.
	Services []string
	hosts    map[string]bool
}

type patchesData struct {
	Q          url.Values
	Patches    []*patchRow
	Counted    int
	More       bool
	Strategies []string
}

// patchFindings bounds the open findings the patches page groups.
const patchFindings = 5000

func (u *UI) patches(w http.ResponseWriter, r *http.Request, s *session) error {
	ctx := r.Context()
	in := r.URL.Query()
	q := pick(in, []string{"priority", "ecosystem", "package", "label", "team", "service"})
	q.Set("status", "open")
	q.Set("sort", "priority")
	q.Set("limit", "1000")
	rows := map[string]*patchRow{}
	d := patchesData{Q: pick(in, []string{"priority", "ecosystem", "package"})}
	for {
		var page fleet.FindingPage
		if err := u.call(ctx, s, "GET", "/api/v1/findings", q, nil, &page); err != nil {
			return err
		}
		for _, f := range page.Findings {
			if f.Fixed == "" {
				continue // no patch yet
			}
			k := f.Ecosystem + "\x00" + f.Package + "\x00" + f.Fixed
			p := rows[k]
			if p == nil {
				p = &patchRow{Ecosystem: f.Ecosystem, Package: f.Package, Fixed: f.Fixed, Closes: map[string]int{}, hosts: map[string]bool{}}
				rows[k] = p
			}
			p.hosts[f.HostID] = true
			if f.Service != "" && !slices.Contains(p.Services, f.Service) {
				p.Services = append(p.Services, f.Service)
				slices.Sort(p.Services)
			}
			p.Closes[f.Priority.String()]++
			p.Total++
		}
		d.Counted += len(page.Findings)
		if page.Next == "" {
			break
		}
		if d.Counted >= patchFindings {
			d.More = true
			break
		}
		q.Set("cursor", page.Next)
	}
	for _, p := range rows {
		p.Hosts = len(p.hosts)
		for _, pr := range priorities {
			if p.Closes[pr] > 0 {
				p.Top = pr
				break
			}
		}
		d.Patches = append(d.Patches, p)
	}
	// The most urgent first: by the highest priority closed, then how
	// many findings.
	slices.SortFunc(d.Patches, func(a, b *patchRow) int {
		if c := cmp.Compare(a.Top, b.Top); c != 0 {
			return c
		}
		if c := cmp.Compare(b.Closes[b.Top], a.Closes[a.Top]); c != 0 {
			return c
		}
		if c := cmp.Compare(b.Total, a.Total); c != 0 {
			return c
		}
		return cmp.Compare(a.Package, b.Package)
	})
	var err error
	if d.Strategies, err = u.strategies(r, s); err != nil {
		return err
	}
	u.render(w, r, s, http.StatusOK, "patches", "Patches", d)
	return nil
}

// strategies names the applied RolloutStrategy documents.
func (u *UI) strategies(r *http.Request, s *session) ([]string, error) {
	var pl policyapi.PolicyList
	if err := u.call(r.Context(), s, "GET", "/api/v1/policy", url.Values{"kind": {rollout.KindRolloutStrategy}}, nil, &pl); err != nil {
		return nil, err
	}
	var out []string
	for _, d := range pl.Documents {
		out = append(out, d.Name)
	}
	return out, nil
}

// planPatch plans one patch (its package, on the hosts that need it)
// with a strategy, through the API's planner, and shows the plan.
func (u *UI) planPatch(w http.ResponseWriter, r *http.Request, s *session) error {
	pkg, strategy := strings.TrimSpace(r.PostFormValue("package")), r.PostFormValue("strategy")
	if pkg == "" || strategy == "" {
		return badInput{"plan this patch: the form needs a package and a strategy"}
	}
	spec := rollout.PlanSpec{Description: r.PostFormValue("description"), Selector: rollout.Selector{Packages: []string{pkg}}, Strategy: strategy}
	if spec.Description == "" {
		spec.Description = "patch " + pkg + " (planned in the web UI)"
	}
	var st rolloutapi.PlanStatus
	if err := u.call(r.Context(), s, "POST", "/api/v1/plans", nil, spec, &st); err != nil {
		return err
	}
	http.Redirect(w, r, "/plans/"+url.PathEscape(st.Plan.ID), http.StatusSeeOther)
	return nil
}
