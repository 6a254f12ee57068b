package web

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/patchbay/patchbay/audit"
)

const auditPerPage = 100

type auditData struct {
	Actor, Action, Object string
	Entries               []audit.Entry
	Total, Page, Last     int
	// Verified is set when the chain was verified on request: Broken is
	// empty when it holds.
	Verified bool
	Broken   string
	Count    int
}

// audit shows the audit log (newest first) with filters, and verifies
// the whole chain on request. The API allows it to admins only.
func (u *UI) audit(w http.ResponseWriter, r *http.Request, s *session) error {
	raw, err := u.callRaw(r.Context(), s, "GET", "/api/v1/audit", nil, nil)
	if err != nil {
		return err
	}
	var all []audit.Entry
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		var e audit.Entry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return fmt.Errorf("audit entry %d: %w", len(all)+1, err)
		}
		all = append(all, e)
	}
	if err := sc.Err(); err != nil {
		return err
	}
	q := r.URL.Query()
	d := auditData{Actor: q.Get("actor"), Action: q.Get("action"), Object: q.Get("object"), Count: len(all)}
	if q.Get("verify") != "" {
		d.Verified = true
		if err := audit.Verify(all, nil); err != nil {
			d.Broken = err.Error()
		}
	}
	var es []audit.Entry
	for i := len(all) - 1; i >= 0; i-- {
		e := all[i]
		if strings.Contains(e.Actor, d.Actor) && strings.Contains(e.Action, d.Action) && strings.Contains(e.Object, d.Object) {
			es = append(es, e)
		}
	}
	d.Total = len(es)
	d.Last = max(1, (len(es)+auditPerPage-1)/auditPerPage)
	d.Page, _ = strconv.Atoi(q.Get("page"))
	d.Page = min(max(d.Page, 1), d.Last)
	lo := (d.Page - 1) * auditPerPage
	d.Entries = es[lo:min(lo+auditPerPage, len(es))]
	u.render(w, r, s, http.StatusOK, "audit", "Audit log", d)
	return nil
}

// auditQuery is the audit page's filter as a query, for its pager.
func auditQuery(d auditData) url.Values {
	q := url.Values{}
	for k, v := range map[string]string{"actor": d.Actor, "action": d.Action, "object": d.Object} {
		if v != "" {
			q.Set(k, v)
		}
	}
	return q
}

func init() { funcs["auditQuery"] = auditQuery }
