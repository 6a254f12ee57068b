package web_test

import (
	"context"
	"encoding/json"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/patchbay/patchbay/api"
	"github.com/patchbay/patchbay/api/policyapi"
	"github.com/patchbay/patchbay/audit"
	"github.com/patchbay/patchbay/rollout"
)

// TestLoginSessionsAndRoles walks the UI as its people do, without a
// browser: logging in and out, sessions ending idle and for good, CSRF,
// roles, and two people approving a plan.
func TestLoginSessionsAndRoles(t *testing.T) {
	f := newFixture(t, nil)
	alice, bob, vera := f.person("alice"), f.person("bob"), f.person("vera")

	t.Run("login", func(t *testing.T) {
		code, loc, _ := alice.get("/findings?priority=P1")
		if code != http.StatusSeeOther || loc != "/login?next="+url.QueryEscape("/findings?priority=P1") {
			t.Fatalf("anonymous findings: %d → %q, want the login page", code, loc)
		}
		if code, body := alice.login("wrong password here"); code != http.StatusUnauthorized || !strings.Contains(body, "Wrong user name or password") {
			t.Errorf("wrong password: %d %s", code, body)
		}
		if code, body := f.person("nobody").login(password); code != http.StatusUnauthorized {
			t.Errorf("unknown user: %d %s", code, body)
		}
		// The login form itself carries a CSRF token bound to a cookie.
		fresh := f.person("alice")
		if code, _, body := fresh.post("/login", url.Values{"csrf": {"forged"}, "name": {"alice"}, "password": {password}}); code != http.StatusForbidden {
			t.Errorf("login without its CSRF cookie: %d %s", code, body)
		}
		if code, loc := alice.login(password); code != http.StatusSeeOther || loc != "/" {
			t.Fatalf("login: %d %s", code, loc)
		}
		u, _ := url.Parse(f.ts.URL)
		var sc *http.Cookie
		for _, c := range alice.c.Jar.Cookies(u) {
			if c.Name == "__Host-patchbay-session" {
				sc = c
			}
		}
		if sc == nil {
			t.Fatal("no session cookie")
		}
		code, _, body := alice.get("/")
		if code != 200 || !strings.Contains(body, `<span class="user">alice</span>`) || !strings.Contains(body, "Open findings by priority") {
			t.Fatalf("overview: %d %s", code, body)
		}
	})

	t.Run("cookie attributes", func(t *testing.T) {
		p := f.person("bob")
		_, _, page := p.get("/login")
		req, _ := http.NewRequest("POST", f.ts.URL+"/login", strings.NewReader(url.Values{"csrf": {csrfOf(t, page)}, "name": {"bob"}, "password": {password}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := p.c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		var set string
		for _, v := range resp.Header.Values("Set-Cookie") {
			if strings.HasPrefix(v, "__Host-patchbay-session=") {
				set = v
			}
		}
		for _, want := range []string{"Path=/", "HttpOnly", "Secure", "SameSite=Lax", "Max-Age=43200"} {
			if !strings.Contains(set, want) {
				t.Errorf("session cookie %q lacks %s", set, want)
			}
		}
	})

	p := f.createPlan("security patches, week 48")
	approve := func(who *person, comment string, hdr ...string) (int, string) {
		t.Helper()
		_, _, page := who.get("/plans/" + p.ID)
		code, _, body := who.post("/plans/"+p.ID+"/approve", url.Values{"csrf": {csrfOf(t, page)}, "comment": {comment}}, hdr...)
		return code, body
	}

	t.Run("csrf", func(t *testing.T) {
		if code, _, body := alice.post("/plans/"+p.ID+"/approve", url.Values{"comment": {"no token"}}); code != http.StatusForbidden || !strings.Contains(body, "CSRF") {
			t.Errorf("approve without a CSRF token: %d %s", code, body)
		}
		if code, _, body := alice.post("/plans/"+p.ID+"/approve", url.Values{"csrf": {"not-the-token"}}); code != http.StatusForbidden {
			t.Errorf("approve with a wrong CSRF token: %d %s", code, body)
		}
		if code, body := approve(alice, "from elsewhere", "Origin", "https://evil.example"); code != http.StatusForbidden {
			t.Errorf("approve from another origin: %d %s", code, body)
		}
		if code, body := approve(alice, "cross-site", "Sec-Fetch-Site", "cross-site"); code != http.StatusForbidden {
			t.Errorf("approve cross-site: %d %s", code, body)
		}
		if st := f.planStatus(p.ID); len(st.Plan.Approvals) != 0 {
			t.Fatalf("a refused form approved: %+v", st.Plan.Approvals)
		}
	})

	t.Run("a viewer cannot approve", func(t *testing.T) {
		if code, _ := vera.login(password); code != http.StatusSeeOther {
			t.Fatalf("vera login: %d", code)
		}
		_, _, page := vera.get("/plans/" + p.ID)
		if strings.Contains(page, `id="approve"`) {
			t.Error("the plan page offers a viewer the approve button")
		}
		_, _, any := vera.get("/")
		code, _, body := vera.post("/plans/"+p.ID+"/approve", url.Values{"csrf": {csrfOf(t, any)}})
		if code != http.StatusForbidden || !strings.Contains(html.UnescapeString(body), "role viewer may not POST /api/v1/plans/{id}/approve (needs operator)") {
			t.Errorf("viewer approve: %d %s", code, body)
		}
	})

	t.Run("four eyes are two people", func(t *testing.T) {
		if code, body := approve(alice, "looks fine"); code != http.StatusSeeOther {
			t.Fatalf("alice approves: %d %s", code, body)
		}
		// alice again, from a second session of hers: still alice.
		alice2 := f.person("alice")
		alice2.login(password)
		if code, body := approve(alice2, "me again"); code != http.StatusConflict || !strings.Contains(body, "already approved by this actor") {
			t.Errorf("alice's second approval: %d %s", code, body)
		}
		if st := f.planStatus(p.ID); st.Plan.State != rollout.AwaitingApproval {
			t.Fatalf("one person approved twice and the plan is %s", st.Plan.State)
		}
		if code, _ := bob.login(password); code != http.StatusSeeOther {
			t.Fatal("bob login")
		}
		if code, body := approve(bob, "ok from me"); code != http.StatusSeeOther {
			t.Fatalf("bob approves: %d %s", code, body)
		}
		st := f.planStatus(p.ID)
		if st.Plan.State != rollout.Approved || len(st.Plan.Approvals) != 2 || st.Plan.Approvals[0].By != "user:alice" || st.Plan.Approvals[1].By != "user:bob" ||
			st.Plan.Approvals[0].Comment != "looks fine" {
			t.Fatalf("plan after two approvals: %s %+v", st.Plan.State, st.Plan.Approvals)
		}
		var es []audit.Entry
		code, b := f.raw("GET", api.Prefix+"/audit", f.admin, nil)
		if code != 200 {
			t.Fatal(code)
		}
		for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			var e audit.Entry
			json.Unmarshal([]byte(line), &e)
			if e.Action == "plan.approve" {
				es = append(es, e)
			}
		}
		if len(es) != 2 || es[0].Actor != "user:alice" || es[1].Actor != "user:bob" {
			t.Errorf("audit of the approvals: %+v", es)
		}
	})

	t.Run("api tokens keep working", func(t *testing.T) {
		code, b := f.raw("GET", api.Prefix+"/whoami", f.admin, nil)
		if code != 200 || !strings.Contains(string(b), `"role":"admin"`) {
			t.Errorf("whoami with a token through the UI's handler: %d %s", code, b)
		}
		if code, b := f.raw("GET", "/no/such/route", "", nil); code != 404 || !strings.Contains(string(b), "no such route") {
			t.Errorf("unknown path: %d %s, want the API's 404", code, b)
		}
		// A session cookie is no API credential.
		req, _ := http.NewRequest("GET", f.ts.URL+api.Prefix+"/whoami", nil)
		resp, err := alice.c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 {
			t.Errorf("API with a session cookie only: %d, want 401", resp.StatusCode)
		}
	})

	t.Run("audit page is for admins, and verifies", func(t *testing.T) {
		if code, _, body := alice.get("/audit"); code != http.StatusForbidden {
			t.Errorf("audit as operator: %d %s", code, body)
		}
		ada := f.person("ada")
		ada.login(password)
		code, _, body := ada.get("/audit?verify=1&action=plan.approve")
		if code != 200 || !strings.Contains(body, `id="verify-result">The chain of`) || strings.Count(body, "<td>plan.approve</td>") != 2 {
			t.Errorf("audit verify: %d %s", code, body)
		}
	})

	t.Run("idle and absolute expiry", func(t *testing.T) {
		// bob uses the UI every 20 minutes: alive; then idle 31: gone.
		for i := 0; i < 3; i++ {
			f.clock.advance(20 * time.Minute)
			if code, _, _ := bob.get("/plans"); code != 200 {
				t.Fatalf("bob after %d × 20 minutes of use: %d", i+1, code)
			}
		}
		f.clock.advance(31 * time.Minute)
		if code, loc, _ := bob.get("/plans"); code != http.StatusSeeOther || !strings.HasPrefix(loc, "/login") {
			t.Errorf("bob idle 31 minutes: %d %s", code, loc)
		}
		// vera keeps using it, yet 12 hours after login it ends.
		vera.login(password)
		// Her login swept the ended sessions away: bob's two.
		var n int
		if err := f.db.SQL().QueryRow(`SELECT COUNT(*) FROM sessions WHERE username = 'bob'`).Scan(&n); err != nil || n != 0 {
			t.Errorf("bob's ended sessions after a later login: %d left (%v), want 0", n, err)
		}
		for elapsed := time.Duration(0); elapsed < 12*time.Hour-20*time.Minute; elapsed += 20 * time.Minute {
			f.clock.advance(20 * time.Minute)
			if code, _, _ := vera.get("/"); code != 200 {
				t.Fatalf("vera at %s: %d", elapsed+20*time.Minute, code)
			}
		}
		f.clock.advance(20 * time.Minute)
		if code, _, _ := vera.get("/"); code != http.StatusSeeOther {
			t.Errorf("vera 12 hours after login: %d, want the login page", code)
		}
	})

	t.Run("logout", func(t *testing.T) {
		carol := f.person("alice")
		carol.login(password)
		_, _, page := carol.get("/")
		if code, loc, _ := carol.post("/logout", url.Values{"csrf": {csrfOf(t, page)}}); code != http.StatusSeeOther || loc != "/login?out=1" {
			t.Fatalf("logout: %d %s", code, loc)
		}
		if code, _, _ := carol.get("/"); code != http.StatusSeeOther {
			t.Errorf("after logout: %d", code)
		}
	})
}

var hrefRE = regexp.MustCompile(`<a href="([^"]+)" id="open-(P[1-4])">(\d+)</a>`)

// TestOverviewNumbersLeadToTheirLists: every open-by-priority number of
// the overview links to the findings list it counts.
func TestOverviewNumbersLeadToTheirLists(t *testing.T) {
	f := newFixture(t, nil)
	ada := f.person("ada")
	ada.login(password)
	_, _, page := ada.get("/")
	ms := hrefRE.FindAllStringSubmatch(page, -1)
	if len(ms) != 4 {
		t.Fatalf("overview has %d priority links, want 4:\n%s", len(ms), page)
	}
	total := 0
	for _, m := range ms {
		href, prio := html.UnescapeString(m[1]), m[2]
		n, _ := strconv.Atoi(m[3])
		total += n
		q := url.Values{}
		q.Set("limit", "1000")
		rows := 0
		for cursor := ""; ; {
			link := href + "&limit=1000"
			if cursor != "" {
				link += "&cursor=" + url.QueryEscape(cursor)
			}
			code, _, list := ada.get(link)
			if code != 200 {
				t.Fatalf("%s: %d", link, code)
			}
			rows += strings.Count(list, `<span class="prio `+strings.ToLower(prio)+`">`)
			if strings.Count(list, `<span class="prio p`) != strings.Count(list, `<span class="prio `+strings.ToLower(prio)+`">`) {
				t.Errorf("%s lists other priorities", link)
			}
			next := regexp.MustCompile(`href="/findings\?[^"]*cursor=([^"&]+)[^"]*" id="next-page"`).FindStringSubmatch(list)
			if next == nil {
				break
			}
			cursor, _ = url.QueryUnescape(html.UnescapeString(next[1]))
		}
		if rows != n {
			t.Errorf("overview says %d open %s findings; its list %s has %d", n, prio, href, rows)
		}
	}
	if total == 0 {
		t.Fatal("the fleet has no open findings")
	}
}

// TestRolloutProgressStream: the progress stream of a rollout sends its
// state as it moves, and ends when the rollout does.
func TestRolloutProgressStream(t *testing.T) {
	f := newFixture(t, nil)
	p := f.createPlan("stream")
	for _, tok := range []string{f.token("operator"), f.token("operator")} {
		f.apiAs(tok, "POST", "/plans/"+p.ID+"/approve", nil, nil)
	}
	f.apiDo("POST", "/plans/"+p.ID+"/start", nil, nil)
	alice := f.person("alice")
	alice.login(password)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", f.ts.URL+"/plans/"+p.ID+"/progress", nil)
	resp, err := alice.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	events := make(chan string, 100)
	go func() {
		defer close(events)
		buf := make([]byte, 1<<16)
		var acc string
		for {
			n, err := resp.Body.Read(buf)
			acc += string(buf[:n])
			for {
				i := strings.Index(acc, "\n\n")
				if i < 0 {
					break
				}
				events <- acc[:i]
				acc = acc[i+2:]
			}
			if err != nil {
				return
			}
		}
	}()
	var states []string
	for i := 0; i < 20; i++ {
		f.step(ctx)
		if st := f.planStatus(p.ID); st.Rollout != nil && st.Rollout.State == rollout.Completed {
			break
		}
	}
	for ev := range events {
		if strings.HasPrefix(ev, "event: end") {
			break
		}
		data, ok := strings.CutPrefix(ev, "event: progress\ndata: ")
		if !ok {
			t.Fatalf("event %q", ev)
		}
		var pr struct {
			State string            `json:"state"`
			Hosts map[string]string `json:"hosts"`
		}
		if err := json.Unmarshal([]byte(data), &pr); err != nil {
			t.Fatal(err)
		}
		states = append(states, pr.State)
		if pr.State == "completed" {
			for id, o := range pr.Hosts {
				if o != "succeeded" {
					t.Errorf("host %s: %s at the end", id, o)
				}
			}
		}
	}
	if len(states) < 2 || states[len(states)-1] != "completed" {
		t.Errorf("streamed states %v, want progress ending completed", states)
	}
}

// TestFindingPage: a finding's page explains its priority, from the
// findings list's link.
func TestFindingPage(t *testing.T) {
	f := newFixture(t, nil)
	vera := f.person("vera")
	vera.login(password)
	_, _, list := vera.get("/findings?package=openssl&limit=1")
	m := regexp.MustCompile(`href="/findings/(\d+)"`).FindStringSubmatch(list)
	if m == nil {
		t.Fatalf("the findings list links no finding:\n%s", list)
	}
	code, _, page := vera.get("/findings/" + m[1])
	if code != 200 || !strings.Contains(page, "Why this priority") || !strings.Contains(page, "openssl") || !strings.Contains(page, "exposure internet") {
		t.Errorf("finding %s: %d\n%s", m[1], code, page)
	}
	if code, _, _ := vera.get("/findings/999999"); code != http.StatusNotFound {
		t.Errorf("no such finding: %d", code)
	}
}

// TestEveryPageEveryRole: every page renders for every role, but the
// audit log, which is the admins'.
func TestEveryPageEveryRole(t *testing.T) {
	f := newFixture(t, nil)
	p := f.createPlan("every page")
	var vl api.VulnList
	f.apiDo("GET", "/vulns", nil, &vl)
	if len(vl.Vulnerabilities) == 0 {
		t.Fatal("no vulnerabilities")
	}
	pages := []string{"/", "/findings", "/findings?status=all&sort=-first_seen", "/hosts", "/hosts?stale=1h&reboot=1&sort=open", "/hosts/" + f.hosts[0].id,
		"/vulns", "/vulns?kev=true", "/vulns/" + vl.Vulnerabilities[0].ID, "/patches", "/plans", "/plans?state=awaiting_approval", "/rollouts", "/rollouts?active=1",
		"/plans/" + p.ID, "/policy", "/policy?kind=RolloutStrategy&name=fast", "/feeds", "/audit", "/backups", "/schedules",
		"/kpi", "/kpi?by=team&since=30d", "/fixes", "/?as_of=2026-01-31", "/findings?as_of=2026-01-31", "/hosts?as_of=2026-01-31",
		"/templates", "/templates?name=regulated"}
	for _, who := range []string{"vera", "alice", "ada"} {
		c := f.person(who)
		c.login(password)
		for _, pg := range pages {
			want := http.StatusOK
			if (pg == "/audit" || pg == "/backups") && who != "ada" {
				want = http.StatusForbidden
			}
			code, _, body := c.get(pg)
			if code != want || !strings.Contains(body, "</html>") {
				t.Errorf("%s %s: %d, want %d\n%s", who, pg, code, want, body)
			}
			if strings.Contains(body, "internal error") {
				t.Errorf("%s %s: internal error", who, pg)
			}
		}
	}
	// Bad input is a clear refusal, not an internal error.
	c := f.person("vera")
	c.login(password)
	for pg, want := range map[string]string{
		"/findings?sort=sideways":  `sort &#34;sideways&#34;: want urgency, priority, due, first_seen or -first_seen`,
		"/findings?priority=P9":    `priority &#34;P9&#34;: want P1, P2, P3 or P4`,
		"/hosts?stale=soon":        `stale &#34;soon&#34;: want a duration such as 24h`,
		"/hosts?label=bad":         `label &#34;bad&#34;`,
		"/hosts/no-such-host":      `no host with the id or hostname &#34;no-such-host&#34;`,
		"/plans/plan-nope":         `no such plan: plan-nope`,
		"/vulns/CVE-1999-0000":     `vulnerability CVE-1999-0000: no host has or had it`,
		"/policy?kind=Nope&name=x": `Nope`,
	} {
		code, _, body := c.get(pg)
		if code < 400 || code >= 500 || !strings.Contains(body, want) {
			t.Errorf("%s: %d, want a 4xx saying %q\n%s", pg, code, want, body)
		}
	}
}

// TestPolicyHistoryDiff: a document's history shows what each version
// changed.
func TestPolicyHistoryDiff(t *testing.T) {
	f := newFixture(t, nil)
	changed := strings.Replace(fastStrategy, "maxConcurrency: 2, errorThreshold: 0}\n  reboot", "maxConcurrency: 5, errorThreshold: 0}\n  reboot", 1)
	if changed == fastStrategy {
		t.Fatal("the strategy did not change")
	}
	f.apiDo("POST", "/policy/apply", policyapi.ApplyRequest{Files: []policyapi.PolicyFile{{Name: "fast.yaml", Content: changed}}}, nil)
	ada := f.person("ada")
	ada.login(password)
	code, _, page := ada.get("/policy?kind=RolloutStrategy&name=fast")
	if code != 200 || !strings.Contains(page, "Version 2 · changed") || !regexp.MustCompile(`<span class="dadd">&#43; .*&#34;maxConcurrency&#34;: &#34;5&#34;`).MatchString(page) ||
		!regexp.MustCompile(`<span class="ddel">- .*&#34;maxConcurrency&#34;: &#34;2&#34;`).MatchString(page) {
		t.Errorf("history: %d\n%s", code, page)
	}
}
