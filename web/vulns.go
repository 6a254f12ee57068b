package web

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/patchbay/patchbay/api"
	"github.com/patchbay/patchbay/fleet"
)

const vulnsPerPage = 50

type vulnsData struct {
	Q          url.Values
	Vulns      []fleet.Vulnerability
	Total      int
	Page, Last int
	Prios      []string
	AsOf       time.Time // when the list was counted
}

func (u *UI) vulns(w http.ResponseWriter, r *http.Request, s *session) error {
	in := r.URL.Query()
	q := pick(in, []string{"priority", "kev"})
	var vl api.VulnList
	asOf, err := u.callCached(r.Context(), s, "/api/v1/vulns", q, &vl)
	if err != nil {
		return err
	}
	vs := vl.Vulnerabilities
	if id := strings.ToUpper(strings.TrimSpace(in.Get("q"))); id != "" {
		keep := vs[:0]
		for _, v := range vs {
			if strings.Contains(strings.ToUpper(v.ID), id) {
				keep = append(keep, v)
			}
		}
		vs = keep
	}
	if in.Get("state") != "all" {
		keep := vs[:0]
		for _, v := range vs {
			if v.Open > 0 {
				keep = append(keep, v)
			}
		}
		vs = keep
	}
	d := vulnsData{Q: pick(in, []string{"priority", "kev", "q", "state"}), Total: len(vs), Prios: priorities, AsOf: asOf}
	d.Last = max(1, (len(vs)+vulnsPerPage-1)/vulnsPerPage)
	d.Page, _ = strconv.Atoi(in.Get("page"))
	d.Page = min(max(d.Page, 1), d.Last)
	lo := (d.Page - 1) * vulnsPerPage
	d.Vulns = vs[lo:min(lo+vulnsPerPage, len(vs))]
	u.render(w, r, s, http.StatusOK, "vulns", "Vulnerabilities", d)
	return nil
}

func (u *UI) vuln(w http.ResponseWriter, r *http.Request, s *session) error {
	var v fleet.Vulnerability
	if err := u.call(r.Context(), s, "GET", "/api/v1/vulns/"+url.PathEscape(r.PathValue("id")), nil, nil, &v); err != nil {
		return err
	}
	u.render(w, r, s, http.StatusOK, "vuln", v.ID, v)
	return nil
}
