package web

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/patchbay/patchbay/fleet"
	"github.com/patchbay/patchbay/kpi"
)

// findingParams are the query parameters the findings page passes to the
// API, which checks them.
var findingParams = []string{"status", "priority", "host", "vuln", "package", "ecosystem", "label", "sort", "limit", "cursor", "lane", "team", "service"}

type findingsData struct {
	Q        url.Values
	Findings []fleet.FindingRow
	Next     string
	Error    string
	Sorts    []string
	Statuses []string
	Prios    []string
	// AsOf is the date of a view of the fleet as it was ("" now); AsOfPage
	// is its page, from the exposure ledger.
	AsOf     string
	AsOfPage asOfFindings
	Pager    pagerView
}

// asOfFindings is the API's page of findings open at a date
// (/api/v1/kpi/findings).
type asOfFindings struct {
	AsOf     time.Time      `json:"as_of"`
	Total    int            `json:"total"`
	Offset   int            `json:"offset"`
	Findings []kpi.Exposure `json:"findings"`
}

// asOfPageSize is the rows of a page of findings as of a date.
const asOfPageSize = 50

func pick(q url.Values, keys []string) url.Values {
	out := url.Values{}
	for _, k := range keys {
		for _, v := range q[k] {
			if v != "" {
				out.Add(k, v)
			}
		}
	}
	return out
}

func (u *UI) findings(w http.ResponseWriter, r *http.Request, s *session) error {
	asOf, _, err := asOfParam(r)
	if err != nil {
		return err
	}
	if asOf != "" {
		return u.findingsAsOf(w, r, s, asOf)
	}
	q := pick(r.URL.Query(), findingParams)
	if q.Get("limit") == "" {
		q.Set("limit", "50")
	}
	d := findingsData{Q: q, Sorts: []string{"urgency", "priority", "due", "first_seen", "-first_seen"},
		Statuses: []string{"open", "overdue", "accepted", "not_affected", "unremediated", "remediated", "all"}, Prios: priorities}
	var page fleet.FindingPage
	status := http.StatusOK
	if err := u.call(r.Context(), s, "GET", "/api/v1/findings", q, nil, &page); err != nil {
		ae, ok := refusal(err)
		if !ok || ae.Status != http.StatusBadRequest && ae.Status != http.StatusNotFound && ae.Status != http.StatusConflict {
			return err
		}
		d.Error, status = ae.Body.Error, ae.Status
	}
	d.Findings, d.Next = page.Findings, page.Next
	u.render(w, r, s, status, "findings", "Findings", d)
	return nil
}

// findingsAsOf lists the findings open at the end of a date, as the
// exposure ledger kept them: most urgent first, a page at a time.
func (u *UI) findingsAsOf(w http.ResponseWriter, r *http.Request, s *session, asOf string) error {
	page := 1
	if v := r.URL.Query().Get("page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return badInput{fmt.Sprintf("page %q: want a page number from 1", v)}
		}
		page = n
	}
	q := pick(r.URL.Query(), []string{"as_of", "priority", "cycle", "team", "label"})
	d := findingsData{Q: q, AsOf: asOf, Prios: priorities}
	aq := pick(q, []string{"as_of", "priority", "cycle", "team", "label"})
	aq.Set("limit", strconv.Itoa(asOfPageSize))
	aq.Set("offset", strconv.Itoa((page-1)*asOfPageSize))
	status := http.StatusOK
	if err := u.call(r.Context(), s, "GET", "/api/v1/kpi/findings", aq, nil, &d.AsOfPage); err != nil {
		ae, ok := refusal(err)
		if !ok || ae.Status != http.StatusBadRequest {
			return err
		}
		d.Error, status = ae.Body.Error, ae.Status
	}
	d.Pager = newPager("/findings", q, page, max(1, (d.AsOfPage.Total+asOfPageSize-1)/asOfPageSize))
	u.render(w, r, s, status, "findings", "Findings as of "+asOf, d)
	return nil
}
