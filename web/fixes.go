package web

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"time"

	"github.com/patchbay/patchbay/api/fixapi"
	"github.com/patchbay/patchbay/api/policyapi"
	"github.com/patchbay/patchbay/remedy"
	"github.com/patchbay/patchbay/risk"
)

// fixesData is the fixes page: the proposals of every service with their
// merge requests and states, and the services that name a repo.
type fixesData struct {
	Proposals []fixRow
	// Services are the services with a repo, for the propose form.
	Services []string
	Service  string // the ?service filter
}

type fixRow struct {
	remedy.Proposal
	Deployed int // fixes deployed
	// Patches are the fixes grouped by upgrade (package, from, to), most
	// urgent first: the unit people act on.
	Patches []fixPatch
}

// fixPatch is one upgrade of a proposal and the findings it closes.
type fixPatch struct {
	Ecosystem, Package, From, To string
	Priority                     risk.Priority
	Due                          time.Time // the earliest
	Vulns                        []string
	Deployed                     time.Time // when every finding of it was
}

func patchesOf(fixes []remedy.ProposedFix) []fixPatch {
	var out []fixPatch
	at := map[string]int{}
	open := map[int]bool{} // patches with a finding not yet deployed
	for _, f := range fixes {
		k := f.Ecosystem + "\x00" + f.Package + "\x00" + f.From + "\x00" + f.To
		i, ok := at[k]
		if !ok {
			i = len(out)
			at[k] = i
			out = append(out, fixPatch{Ecosystem: f.Ecosystem, Package: f.Package, From: f.From, To: f.To, Priority: f.Priority, Due: f.Due})
		}
		p := &out[i]
		p.Vulns = append(p.Vulns, f.Vulnerability)
		if f.Priority != 0 && (p.Priority == 0 || f.Priority < p.Priority) {
			p.Priority = f.Priority
		}
		if !f.Due.IsZero() && (p.Due.IsZero() || f.Due.Before(p.Due)) {
			p.Due = f.Due
		}
		if f.DeployedAt.IsZero() {
			open[i] = true
		} else if f.DeployedAt.After(p.Deployed) {
			p.Deployed = f.DeployedAt
		}
	}
	for i := range open {
		out[i].Deployed = time.Time{}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Priority != out[j].Priority {
			return out[i].Priority < out[j].Priority
		}
		return out[i].Due.Before(out[j].Due)
	})
	return out
}

func (u *UI) fixes(w http.ResponseWriter, r *http.Request, s *session) error {
	ctx := r.Context()
	d := fixesData{Service: r.URL.Query().Get("service")}
	q := url.Values{}
	if d.Service != "" {
		q.Set("service", d.Service)
	}
	var list fixapi.List
	if err := u.call(ctx, s, "GET", "/api/v1/fixes", q, nil, &list); err != nil {
		return err
	}
	for _, p := range list.Proposals {
		row := fixRow{Proposal: p, Patches: patchesOf(p.Fixes)}
		for _, f := range p.Fixes {
			if !f.DeployedAt.IsZero() {
				row.Deployed++
			}
		}
		d.Proposals = append(d.Proposals, row)
	}
	var docs policyapi.PolicyList
	if err := u.call(ctx, s, "GET", "/api/v1/policy", url.Values{"kind": {"Service"}}, nil, &docs); err != nil {
		return err
	}
	for _, doc := range docs.Documents {
		var v struct {
			Spec struct {
				Repo *struct {
					URL string `json:"url"`
				} `json:"repo"`
			} `json:"spec"`
		}
		if json.Unmarshal(doc.Document, &v) == nil && v.Spec.Repo != nil {
			d.Services = append(d.Services, doc.Name)
		}
	}
	sort.Strings(d.Services)
	u.render(w, r, s, http.StatusOK, "fixes", "Fixes", d)
	return nil
}

// proposeFix is the form that asks the server for a service's fix.
func (u *UI) proposeFix(w http.ResponseWriter, r *http.Request, s *session) error {
	name := r.PostFormValue("service")
	if name == "" {
		return badInput{"choose a service"}
	}
	req := fixapi.Request{Priority: r.PostFormValue("priority"), Strategy: r.PostFormValue("strategy"), Urgent: r.PostFormValue("urgent") == "on"}
	var d fixapi.Delivery
	if err := u.call(r.Context(), s, "POST", "/api/v1/services/"+url.PathEscape(name)+"/fixes", nil, req, &d); err != nil {
		return err
	}
	u.log.Info("fix proposed", "service", name, "branch", d.Proposal.Branch, "user", s.User)
	http.Redirect(w, r, "/fixes?service="+url.QueryEscape(name), http.StatusSeeOther)
	return nil
}

// refreshFix reads a proposal's merge request state from its forge.
func (u *UI) refreshFix(w http.ResponseWriter, r *http.Request, s *session) error {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		return badInput{fmt.Sprintf("fix %q: want a number", r.PathValue("id"))}
	}
	if err := u.call(r.Context(), s, "POST", fmt.Sprintf("/api/v1/fixes/%d/refresh", id), nil, nil, nil); err != nil {
		return err
	}
	http.Redirect(w, r, "/fixes", http.StatusSeeOther)
	return nil
}
