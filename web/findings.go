package web

import (
	"net/http"
	"net/url"

	"github.com/patchbay/patchbay/fleet"
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
}

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
