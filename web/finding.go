package web

import (
	"net/http"
	"net/url"

	"github.com/patchbay/patchbay/api/policyapi"
)

// finding explains one finding: its asset's context, the decision of the
// applied policy and why, the evidence, and its history.
func (u *UI) finding(w http.ResponseWriter, r *http.Request, s *session) error {
	var d policyapi.FindingDetail
	if err := u.call(r.Context(), s, "GET", "/api/v1/findings/"+url.PathEscape(r.PathValue("id")), nil, nil, &d); err != nil {
		return err
	}
	u.render(w, r, s, http.StatusOK, "finding", d.Finding.Vulnerability+" on "+d.Hostname, d)
	return nil
}
