package web

import (
	"cmp"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/patchbay/patchbay/api"
	"github.com/patchbay/patchbay/api/rolloutapi"
	"github.com/patchbay/patchbay/fleet"
	"github.com/patchbay/patchbay/rollout"
	"github.com/patchbay/patchbay/scorecard"
)

const hostsPerPage = 50

type hostsData struct {
	Q          url.Values
	Hosts      []fleet.HostSummary
	Total      int
	Page, Last int
	Error      string
	Stales     []string
}

// hostParams go to the API as they are; stale, reboot, sort and page are
// the page's own.
var hostParams = []string{"label", "os", "priority", "min_open", "clones"}

func (u *UI) hosts(w http.ResponseWriter, r *http.Request, s *session) error {
	asOf, _, err := asOfParam(r)
	if err != nil {
		return err
	}
	if asOf != "" {
		return u.hostsAsOf(w, r, s, asOf)
	}
	in := r.URL.Query()
	q := pick(in, hostParams)
	d := hostsData{Q: pick(in, append(hostParams, "stale", "reboot", "sort")), Stales: []string{"1h", "24h", "168h"}}
	if st := in.Get("stale"); st != "" {
		dur, err := time.ParseDuration(st)
		if err != nil || dur <= 0 {
			return badInput{"stale " + strconv.Quote(st) + ": want a duration such as 24h"}
		}
		q.Set("seen_before", u.cfg.Now().Add(-dur).UTC().Format(time.RFC3339))
	}
	// The API sorts, filters and pages: a page of 50, not the fleet.
	if in.Get("reboot") != "" {
		q.Set("reboot", "true")
	}
	switch st := in.Get("sort"); st {
	case "open", "last_seen":
		q.Set("sort", st)
	}
	d.Page, _ = strconv.Atoi(in.Get("page"))
	d.Page = max(d.Page, 1)
	q.Set("limit", strconv.Itoa(hostsPerPage))
	q.Set("offset", strconv.Itoa((d.Page-1)*hostsPerPage))
	var hl api.HostList
	status := http.StatusOK
	if err := u.call(r.Context(), s, "GET", "/api/v1/hosts", q, nil, &hl); err != nil {
		ae, ok := refusal(err)
		if !ok || ae.Status != http.StatusBadRequest {
			return err
		}
		d.Error, status = ae.Body.Error, ae.Status
	}
	if hl.Total != nil {
		d.Total = *hl.Total
	}
	d.Last = max(1, (d.Total+hostsPerPage-1)/hostsPerPage)
	d.Hosts = hl.Hosts
	u.render(w, r, s, status, "hosts", "Hosts", d)
	return nil
}

type hostData struct {
	fleet.HostDetail
	Open int
	// Patches group the open findings by the upgrade that closes them
	// (those without a fix yet under an empty Fixed), most urgent first.
	Patches []hostPatch
	Jobs    []hostJob
	// Events is the host's timeline: check-ins, jobs, checks, reboots,
	// alerts (docs/gates.md).
	Events []rolloutapi.Event
	// Scores are the host's latest results on the host scorecards.
	Scores []scorecard.Result
}

// hostPatch is one upgrade of a host and the open findings it closes.
type hostPatch struct {
	Package, Fixed string
	Top            string
	Findings       []fleet.Finding
}

type hostJob struct {
	Plan   string
	State  string
	Status rollout.HostStatus
}

func (u *UI) host(w http.ResponseWriter, r *http.Request, s *session) error {
	ctx := r.Context()
	var d hostData
	if err := u.call(ctx, s, "GET", "/api/v1/hosts/"+url.PathEscape(r.PathValue("id")), nil, nil, &d.HostDetail); err != nil {
		return err
	}
	byPatch := map[[2]string]*hostPatch{}
	for _, f := range d.Findings {
		if f.State != fleet.StateOpen {
			continue
		}
		d.Open++
		k := [2]string{f.Package, f.Fixed}
		hp := byPatch[k]
		if hp == nil {
			hp = &hostPatch{Package: f.Package, Fixed: f.Fixed}
			byPatch[k] = hp
		}
		hp.Findings = append(hp.Findings, f)
	}
	for _, hp := range byPatch {
		slices.SortStableFunc(hp.Findings, func(a, b fleet.Finding) int { return cmp.Compare(a.Priority, b.Priority) })
		hp.Top = hp.Findings[0].Priority.String()
		d.Patches = append(d.Patches, *hp)
	}
	slices.SortFunc(d.Patches, func(a, b hostPatch) int {
		if (a.Fixed == "") != (b.Fixed == "") {
			if a.Fixed == "" {
				return 1 // patches first, findings without a fix last
			}
			return -1
		}
		if c := cmp.Compare(a.Top, b.Top); c != 0 {
			return c
		}
		if c := cmp.Compare(len(b.Findings), len(a.Findings)); c != 0 {
			return c
		}
		return cmp.Compare(a.Package, b.Package)
	})
	var evs rolloutapi.Events
	if err := u.call(ctx, s, "GET", "/api/v1/events", url.Values{"host": {d.ID}}, nil, &evs); err != nil {
		return err
	}
	// Its scorecard levels: the last record of each host scorecard.
	name := d.Hostname
	if name == "" {
		name = d.ID
	}
	var recs []scorecard.Record
	if err := u.call(ctx, s, "GET", "/api/v1/scores/history", url.Values{"host": {name}}, nil, &recs); err != nil {
		return err
	}
	last := map[string]int{}
	for _, rec := range recs {
		if i, ok := last[rec.Scorecard]; ok {
			d.Scores[i] = rec.Result
			continue
		}
		last[rec.Scorecard] = len(d.Scores)
		d.Scores = append(d.Scores, rec.Result)
	}
	d.Events = evs.Events
	// The host's jobs in the recent rollouts.
	plans, err := u.planList(ctx, s)
	if err != nil {
		return err
	}
	for i, p := range plans {
		if i >= 20 {
			break
		}
		if p.Plan.State != rollout.Started {
			continue
		}
		var st rolloutapi.PlanStatus
		if err := u.call(ctx, s, "GET", "/api/v1/plans/"+url.PathEscape(p.Plan.ID), url.Values{"hosts": {"1"}}, nil, &st); err != nil {
			var ae *apiError
			if errors.As(err, &ae) && ae.Status == http.StatusNotFound {
				continue
			}
			return err
		}
		for _, h := range st.Hosts {
			if h.ID == d.ID {
				state := ""
				if st.Rollout != nil {
					state = string(st.Rollout.State)
				}
				d.Jobs = append(d.Jobs, hostJob{Plan: p.Plan.ID, State: state, Status: h})
			}
		}
	}
	u.render(w, r, s, http.StatusOK, "host", "Host "+d.Hostname, d)
	return nil
}

// labelList shows a host's labels as k=v, sorted.
func labelList(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	slices.Sort(out)
	return out
}

func init() {
	funcs["labels"] = labelList
	funcs["openTotal"] = func(h fleet.HostSummary) int { return h.OpenTotal() }
	funcs["hasPrefix"] = strings.HasPrefix
}

// hostsAsOfMax bounds the findings open at a date the hosts page counts
// per host (it reads them all).
const hostsAsOfMax = 200000

// hostThen is a host's open findings at a date.
type hostThen struct {
	ID, Hostname string
	Open         map[string]int
	Total        int
	Overdue      int
}

type hostsAsOfData struct {
	AsOf       string
	Hosts      []hostThen
	Total      int
	Page, Last int
	Q          url.Values
}

// hostsAsOf lists the hosts with what they had open at a date, from the
// exposure ledger (every exposure open then, counted per host), most
// open first.
func (u *UI) hostsAsOf(w http.ResponseWriter, r *http.Request, s *session, asOf string) error {
	byHost, _, err := cachedValue(u, "hosts-as-of:"+asOf, func() (map[string]*hostThen, error) {
		// How many first: the whole list of a large fleet is too big to
		// read for a page.
		var all asOfFindings
		if err := u.call(r.Context(), s, "GET", "/api/v1/kpi/findings", url.Values{"as_of": {asOf}, "limit": {"1"}}, nil, &all); err != nil {
			return nil, err
		}
		if all.Total > hostsAsOfMax {
			return nil, badInput{fmt.Sprintf("hosts as of %s: %d findings were open then, more than the %d this page counts per host; see the findings as of that date", asOf, all.Total, hostsAsOfMax)}
		}
		if err := u.call(r.Context(), s, "GET", "/api/v1/kpi/findings", url.Values{"as_of": {asOf}, "limit": {"0"}}, nil, &all); err != nil {
			return nil, err
		}
		m := map[string]*hostThen{}
		for _, e := range all.Findings {
			h := m[e.Asset]
			if h == nil {
				h = &hostThen{ID: e.Asset, Hostname: e.Hostname, Open: map[string]int{}}
				m[e.Asset] = h
			}
			h.Open[e.Priority]++
			h.Total++
			if e.Overdue {
				h.Overdue++
			}
		}
		return m, nil
	})
	if err != nil {
		if ae, ok := refusal(err); ok && ae.Status == http.StatusBadRequest {
			return badInput{ae.Body.Error}
		}
		return err
	}
	d := hostsAsOfData{AsOf: asOf, Q: url.Values{"as_of": {asOf}}}
	for _, h := range byHost {
		d.Hosts = append(d.Hosts, *h)
	}
	slices.SortFunc(d.Hosts, func(a, b hostThen) int {
		return cmp.Or(cmp.Compare(b.Total, a.Total), cmp.Compare(a.Hostname, b.Hostname), cmp.Compare(a.ID, b.ID))
	})
	d.Total = len(d.Hosts)
	d.Last = max(1, (d.Total+hostsPerPage-1)/hostsPerPage)
	d.Page, _ = strconv.Atoi(r.URL.Query().Get("page"))
	d.Page = min(max(d.Page, 1), d.Last)
	lo := (d.Page - 1) * hostsPerPage
	d.Hosts = d.Hosts[lo:min(lo+hostsPerPage, len(d.Hosts))]
	u.render(w, r, s, http.StatusOK, "hostsasof", "Hosts as of "+asOf, d)
	return nil
}
