package web_test

import (
	"context"
	"fmt"
	"html"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/patchbay/patchbay/internal/sharedtest"
	"github.com/patchbay/patchbay/inventory/collect"
	"github.com/patchbay/patchbay/kpi"
)

// tileNum reads the number of the overview tile or link with the id.
func tileNum(t *testing.T, page, id string) string {
	t.Helper()
	m := regexp.MustCompile(`id="` + id + `"[^>]*>(?:<span class="num">)?([^<]*)<`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no #%s on the page:\n%s", id, page)
	}
	return m[1]
}

// getKPI gets a page with KPI figures, reloading while they are being
// computed (in the background; a loaded machine takes a while).
func getKPI(t *testing.T, p *person, path string) (int, string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		code, _, page := p.get(path)
		if code != 200 || !strings.Contains(page, `id="kpi-pending"`) {
			return code, page
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: the KPIs still being computed after 2 minutes", path)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestKPIPanelAndAsOf: the overview's KPI panel says what the API's
// /kpi says, and the fleet as of a date before a host was enrolled is
// the fleet without it, on the overview and the findings list alike.
func TestKPIPanelAndAsOf(t *testing.T) {
	f := newFixture(t, nil)
	before := f.clock.now().Add(time.Second).UTC().Format(time.RFC3339) // after the fixture's hosts came (times to the second)
	f.clock.advance(48 * time.Hour)
	root := sharedtest.DebianRoot(t, "status-bookworm-web-db")
	inv, err := collect.Collect(context.Background(), collect.Options{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	f.enroll(f.enrollToken(), "late-1", "prod", inv.Packages)
	ada := f.person("ada")
	ada.login(password)

	// Now: the panel's numbers are the API's.
	var rep kpi.Report
	f.apiDo("GET", "/kpi?since=90d&by=priority", nil, &rep)
	code, page := getKPI(t, ada, "/")
	if code != 200 {
		t.Fatalf("overview: %d\n%s", code, page)
	}
	if got, want := tileNum(t, page, "kpi-open"), strconv.Itoa(rep.Total.Open.Count); got != want {
		t.Errorf("panel's open exposure %s, the API's %s", got, want)
	}
	if got, want := tileNum(t, page, "kpi-overdue"), strconv.Itoa(rep.Total.Open.Overdue); got != want {
		t.Errorf("panel's overdue %s, the API's %s", got, want)
	}
	sla := "—"
	if d := rep.Total.SLA.Due - rep.Total.SLA.Excluded; d > 0 {
		sla = strconv.FormatFloat(rep.Total.SLA.Rate*100, 'f', 1, 64) + " %"
	}
	if got := tileNum(t, page, "kpi-sla"); got != sla {
		t.Errorf("panel's SLA compliance %s, the API's %s", got, sla)
	}
	if rep.Total.MTTP.N == 0 && tileNum(t, page, "kpi-mttp") != "—" {
		t.Errorf("panel's MTTP %s with nothing patched", tileNum(t, page, "kpi-mttp"))
	}
	if !strings.Contains(page, `<svg class="chart lines"`) || !strings.Contains(page, `class="line p1"`) {
		t.Errorf("no exposure chart on the overview:\n%s", page)
	}

	// As of a date: the overview's open findings by priority are the
	// ledger's then, and each lists as many findings as it says.
	var then kpi.Report
	f.apiDo("GET", "/kpi?since=90d&by=priority&as_of="+url.QueryEscape(before), nil, &then)
	code, page = getKPI(t, ada, "/?as_of="+url.QueryEscape(before))
	if code != 200 || !strings.Contains(page, `id="asof-note"`) {
		t.Fatalf("overview as of %s: %d\n%s", before, code, page)
	}
	if got, want := tileNum(t, page, "tile-open"), strconv.Itoa(then.Total.Open.Count); got != want {
		t.Errorf("overview as of %s: %s open, the API's %s", before, got, want)
	}
	if strings.Contains(page, `id="flight-h"`) {
		t.Error("the overview as of a date shows today's rollouts")
	}
	total := 0
	for _, p := range []string{"P1", "P2", "P3", "P4"} {
		var n int
		fmt.Sscan(tileNum(t, page, "open-"+p), &n)
		var wantN int
		for _, g := range then.Groups {
			if g.Group == p {
				wantN = g.Open.Count
			}
		}
		if n != wantN {
			t.Errorf("as of %s: %d open %s, the API's %d", before, n, p, wantN)
		}
		total += n
		m := regexp.MustCompile(`href="([^"]*)" id="open-` + p + `"`).FindStringSubmatch(page)
		if m == nil {
			t.Fatalf("no link behind the %s number", p)
		}
		href := html.UnescapeString(m[1])
		if !strings.Contains(href, "as_of=") {
			t.Errorf("%s links to %s, not a list as of the date", p, href)
		}
		rows := 0
		for pg := 1; ; pg++ {
			code, _, list := ada.get(href + "&page=" + strconv.Itoa(pg))
			if code != 200 {
				t.Fatalf("%s: %d\n%s", href, code, list)
			}
			rows += strings.Count(list, `<span class="prio `+strings.ToLower(p)+`">`)
			if !strings.Contains(list, `id="next-page"`) {
				if got := regexp.MustCompile(`id="asof-total">(\d+)<`).FindStringSubmatch(list); got == nil || got[1] != strconv.Itoa(n) {
					t.Errorf("%s says %v open, the overview %d", href, got, n)
				}
				break
			}
		}
		if rows != n {
			t.Errorf("as of %s the overview says %d open %s; its list has %d rows", before, n, p, rows)
		}
	}
	if then.Total.Open.Count == 0 || then.Total.Open.Count >= rep.Total.Open.Count {
		t.Errorf("open as of %s %d, now (a host later) %d: want fewer then, and some", before, then.Total.Open.Count, rep.Total.Open.Count)
	}
	if total != then.Total.Open.Count {
		t.Errorf("by priority %d, in all %d", total, then.Total.Open.Count)
	}

	// The hosts as of the date: the fixture's three, not the later one,
	// with the open findings of the overview then.
	code, _, page = ada.get("/hosts?as_of=" + url.QueryEscape(before))
	if code != 200 || strings.Contains(page, ">late-1<") || strings.Count(page, "<td class=\"n\" data-open>") != len(f.hosts) {
		t.Errorf("hosts as of %s: %d, want the %d hosts there then\n%s", before, code, len(f.hosts), page)
	}
	sum := 0
	for _, m := range regexp.MustCompile(`data-open>(\d+)<`).FindAllStringSubmatch(page, -1) {
		n, _ := strconv.Atoi(m[1])
		sum += n
	}
	if sum != then.Total.Open.Count {
		t.Errorf("hosts as of %s: %d open in all, the API's %d", before, sum, then.Total.Open.Count)
	}
	if _, _, now := ada.get("/hosts"); !strings.Contains(now, ">late-1<") {
		t.Error("the hosts page now lacks the later host")
	}

	// The KPI page cuts by each dimension; a bad date is a clear 400.
	for _, by := range []string{"priority", "cycle", "type", "team"} {
		code, page := getKPI(t, ada, "/kpi?by="+by+"&as_of="+url.QueryEscape(before))
		if code != 200 || !strings.Contains(page, `id="kpi-table"`) {
			t.Errorf("/kpi by %s: %d\n%s", by, code, page)
		}
	}
	for pg, want := range map[string]string{
		"/?as_of=yesterday":         `as of &#34;yesterday&#34;: want a date`,
		"/findings?as_of=31/3/2026": `as of &#34;31/3/2026&#34;: want a date`,
		"/hosts?as_of=soon":         `as of &#34;soon&#34;: want a date`,
		"/kpi?by=colour":            `colour`,
	} {
		code, _, body := ada.get(pg)
		if code != 400 || !strings.Contains(body, want) {
			t.Errorf("%s: %d, want a 400 saying %q\n%s", pg, code, want, body)
		}
	}
}
