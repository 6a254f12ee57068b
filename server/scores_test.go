package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/patchbay/patchbay/api"
	"github.com/patchbay/patchbay/api/policyapi"
	"github.com/patchbay/patchbay/auth"
	"github.com/patchbay/patchbay/scorecard"
	"github.com/patchbay/patchbay/server"
)

// clock is an injectable time.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

func TestScorecardsSQLite(t *testing.T)   { t.Parallel(); testScorecards(t, "sqlite") }
func TestScorecardsPostgres(t *testing.T) { t.Parallel(); testScorecards(t, "postgres") }

// testScorecards applies the docs' example (the patch-hygiene scorecard
// and the q1-silver initiative), enrolls a checkout host and walks a
// quarter on an injectable clock: levels and scores equal the values
// computed by hand, a pushed fact moves a score and leaves history, an
// exemption expires, the initiative reminds the teams behind once and is
// missed, and the catalog shows it all.
func testScorecards(t *testing.T, backend string) {
	ctx := context.Background()
	clk := &clock{t: time.Date(2027, 1, 5, 9, 0, 0, 0, time.UTC)}
	var mu sync.Mutex
	var texts []string
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m struct{ Text string }
		json.NewDecoder(r.Body).Decode(&m)
		mu.Lock()
		texts = append(texts, m.Text)
		mu.Unlock()
	}))
	defer hook.Close()
	// payments' own webhook (its Team document's) receives its reminders
	// and drops, in the generic JSON format.
	var teamEvents []string
	teamHook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m map[string]any
		json.NewDecoder(r.Body).Decode(&m)
		mu.Lock()
		teamEvents = append(teamEvents, fmt.Sprintf("%s %v", r.Header.Get("X-Patchbay-Event"), m["team"]))
		mu.Unlock()
	}))
	defer teamHook.Close()
	f := newFixture(t, backend, func(c *server.Config) {
		c.Now = clk.Now
		c.Webhooks = []server.Webhook{{Name: "chat", URL: hook.URL, Format: "slack"}}
		c.TeamWebhooks = true
	})
	admin, operator, viewer := f.api(auth.Admin), f.api(auth.Operator), f.api(auth.Viewer)
	files := exampleFiles(t)
	for i := range files {
		if path.Base(files[i].Name) == "teams.yaml" {
			files[i].Content = strings.Replace(files[i].Content, "https://hooks.example.com/patchbay/payments", teamHook.URL, 1)
		}
	}
	f.apply(admin, policyapi.ApplyRequest{Files: files})
	facts := factsOf("web-1", "m-web-1")
	facts.OSVersion, facts.Ecosystem = "10", "Debian:10" // buster: past its end of life
	facts.Labels = map[string]string{"env": "prod", "role": "web"}
	f.enroll(f.token(auth.KindEnrollment, auth.Agent, -1, time.Time{}), facts)

	results := func(card string) map[string]scorecard.Result {
		t.Helper()
		code, b := f.do("GET", api.Prefix+"/scorecards/"+card, viewer, nil)
		if code != 200 {
			t.Fatalf("scorecard: %d %s", code, b)
		}
		var d scorecard.Detail
		f.decode(b, &d)
		out := map[string]scorecard.Result{}
		for _, r := range d.Results {
			out[r.Entity] = r
		}
		return out
	}
	score := func() scorecard.Outcome {
		t.Helper()
		o, err := f.srv.ScoreNow(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	want := func(r scorecard.Result, level string, sc float64) {
		t.Helper()
		if r.Level != level || r.Score != sc {
			t.Errorf("%s: level %q score %v, want %q %v (%+v)", r.Entity, r.Level, r.Score, level, sc, r.Failing())
		}
	}

	// Weights: no-kev 3, no-overdue-p1 3, p2-within-30-days 2,
	// agents-reporting 1, sla 2, nothing-overdue 1, supported-os 1,
	// ci-coverage 1: 14 in all.
	o := score()
	if o.Evaluated != 3 || o.Changed != 3 {
		t.Errorf("first scoring: %+v", o)
	}
	r := results("patch-hygiene")
	want(r["checkout"], "silver", 85.7)    // supported-os and ci-coverage fail: 12/14
	want(r["billing-api"], "silver", 92.9) // ci-coverage fails: 13/14
	want(r["reporting"], "gold", 100)      // ci-coverage exempted: 13/13
	if ex := r["reporting"].Rules[7]; ex.Rule != "ci-coverage" || ex.Pass || !strings.Contains(ex.Exempt, "SQL only") {
		t.Errorf("reporting's exemption: %+v", ex)
	}
	if o := score(); o.Changed != 0 {
		t.Errorf("scoring again changed %d", o.Changed)
	}

	// A pushed fact is an event: it marks the scores, and billing-api
	// reaches gold.
	if code, b := f.do("POST", api.Prefix+"/services/billing-api/facts", operator, map[string]any{"facts": map[string]string{"9x": "1"}}); code != 400 || !strings.Contains(string(b), "facts.9x") {
		t.Errorf("bad fact name: %d %s", code, b)
	}
	if code, _ := f.do("POST", api.Prefix+"/services/nope/facts", operator, map[string]any{"facts": map[string]string{"coverage": "1"}}); code != 404 {
		t.Errorf("unknown service: %d", code)
	}
	if code, b := f.do("POST", api.Prefix+"/services/billing-api/facts", viewer, map[string]any{"facts": map[string]string{"coverage": "91.5"}}); code != 403 {
		t.Errorf("viewer pushes: %d %s", code, b)
	}
	clk.Set(clk.Now().Add(time.Minute))
	if code, b := f.do("POST", api.Prefix+"/services/billing-api/facts", operator, map[string]any{"facts": map[string]string{"coverage": "91.5"}}); code != 200 {
		t.Fatalf("push: %d %s", code, b)
	}
	if n, err := f.db.Scores.Marked(ctx); err != nil || n == 0 {
		t.Errorf("a push left no mark: %d %v", n, err)
	}
	if len(f.auditOf("facts.push")) != 1 {
		t.Errorf("push not audited")
	}
	defer func() {
		if n := len(f.auditOf("scorecard.exemption_expired")); n != 1 {
			t.Errorf("exemption expiries audited: %d", n)
		}
	}()
	if o := score(); o.Changed != 1 {
		t.Errorf("after the push: %+v", o)
	}
	want(results("patch-hygiene")["billing-api"], "gold", 100)
	code, b := f.do("GET", api.Prefix+"/scores/history?service=billing-api", viewer, nil)
	var hist []scorecard.Record
	f.decode(b, &hist)
	if code != 200 || len(hist) != 2 || hist[0].Level != "silver" || hist[1].Level != "gold" || !hist[1].At.After(hist[0].At) {
		t.Errorf("history: %d %+v", code, hist)
	}

	// The initiative: tier 1 and 2 at silver. The checkout host stops
	// reporting: checkout drops to bronze, a notice says so.
	clk.Set(time.Date(2027, 1, 10, 9, 0, 0, 0, time.UTC))
	score()
	want(results("patch-hygiene")["checkout"], "bronze", 78.6) // 11/14
	progress := func() scorecard.InitiativeProgress {
		t.Helper()
		code, b := f.do("GET", api.Prefix+"/initiatives/q1-silver", viewer, nil)
		if code != 200 {
			t.Fatalf("initiative: %d %s", code, b)
		}
		var p scorecard.InitiativeProgress
		f.decode(b, &p)
		return p
	}
	p := progress()
	if p.State != "active" || p.Entities != 2 || p.Passing != 1 || len(p.Items) != 1 || p.Items[0].Service != "checkout" ||
		len(p.Items[0].Failing) != 1 || p.Items[0].Failing[0].Rule != "agents-reporting" {
		t.Errorf("progress: %+v", p)
	}
	// Burn-up: one point a day from the start; billing-api and checkout
	// were silver or better from the first scoring (Jan 5) to Jan 10.
	if len(p.Burnup) != 10 || p.Burnup[0].Passing != 0 || p.Burnup[4].Passing != 2 || p.Burnup[9].Passing != 1 || p.Burnup[9].Total != 2 {
		t.Errorf("burn-up: %+v", p.Burnup)
	}

	events := func() map[string]int {
		out := map[string]int{}
		for _, n := range f.notifications(viewer, "") {
			if n.Target == "chat" {
				out[n.Event]++
			}
		}
		return out
	}
	if ev := events(); ev["initiative.started"] != 1 || ev["scorecard.level_dropped"] != 1 || ev["initiative.reminder"] != 0 {
		t.Errorf("events: %v", ev)
	}
	// 14 days before the target: a reminder to payments, once.
	clk.Set(time.Date(2027, 3, 18, 12, 0, 0, 0, time.UTC))
	score()
	score()
	if ev := events(); ev["initiative.reminder"] != 1 || ev["initiative.started"] != 1 {
		t.Errorf("events at the first reminder: %v", ev)
	}
	clk.Set(time.Date(2027, 3, 29, 12, 0, 0, 0, time.UTC))
	score()
	if ev := events(); ev["initiative.reminder"] != 2 {
		t.Errorf("events at the second reminder: %v", ev)
	}
	// After the target: missed. reporting's exemption (to 2027-03-31)
	// has expired: it drops to silver.
	clk.Set(time.Date(2027, 4, 2, 0, 0, 0, 0, time.UTC))
	score()
	want(results("patch-hygiene")["reporting"], "silver", 92.9)
	if ev := events(); ev["initiative.missed"] != 1 || ev["scorecard.level_dropped"] != 2 || ev["scorecard.exemption_expired"] != 1 {
		t.Errorf("events after the target: %v", ev)
	}
	if p := progress(); p.State != "missed" {
		t.Errorf("state after the target: %s", p.State)
	}
	// The webhook deliveries, in Slack's format.
	if err := f.srv.DeliverNotifications(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	all := strings.Join(texts, "\n")
	slices.Sort(teamEvents)
	if got := strings.Join(teamEvents, ", "); got != "initiative.reminder payments, initiative.reminder payments, scorecard.level_dropped payments" {
		t.Errorf("payments' webhook received: %s", got)
	}
	mu.Unlock()
	for _, want := range []string{
		"patchbay: initiative `q1-silver` started: patch-hygiene by 2027-03-31",
		"patchbay: service `checkout` (team payments) dropped from silver to bronze on scorecard `patch-hygiene`",
		"patchbay: initiative `q1-silver`: team payments has 1 of 2 services passing, 14 days before the target 2027-03-31",
		"patchbay: initiative `q1-silver` *missed* its target 2027-03-31",
		"patchbay: the exemption of service `reporting` from rule `ci-coverage` of scorecard `patch-hygiene` expired on 2027-03-31 (approved by carol@example.com)",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("no %q among the deliveries:\n%s", want, all)
		}
	}

	// The catalog.
	code, b = f.do("GET", api.Prefix+"/services/checkout", viewer, nil)
	var sv scorecard.ServiceView
	f.decode(b, &sv)
	if code != 200 || sv.Spec.Owner != "payments" || sv.Team == nil || sv.Team.Contact != "#payments-oncall" || len(sv.Hosts) != 1 || sv.Hosts[0].Hostname != "web-1" ||
		len(sv.Scores) != 1 || sv.Scores[0].Level != "bronze" || len(sv.Initiatives) != 1 || sv.Facts["os_eol"] != float64(1) {
		t.Errorf("service: %d %+v", code, sv)
	}
	code, b = f.do("GET", api.Prefix+"/teams/payments", viewer, nil)
	var tv scorecard.TeamView
	f.decode(b, &tv)
	ru := tv.Rollups["patch-hygiene"]
	if code != 200 || len(tv.Services) != 2 || ru.Services != 2 || ru.Average != 89.3 || ru.Worst != 78.6 || ru.WorstLevel != "bronze" {
		t.Errorf("team: %d %+v", code, tv)
	}
	code, b = f.do("GET", api.Prefix+"/scorecards/patch-hygiene?team=platform", viewer, nil)
	var d scorecard.Detail
	f.decode(b, &d)
	if code != 200 || len(d.Results) != 1 || d.Results[0].Entity != "reporting" {
		t.Errorf("--team platform: %d %+v", code, d.Results)
	}
	if code, _ := f.do("GET", api.Prefix+"/scorecards/nope", viewer, nil); code != 404 {
		t.Errorf("unknown scorecard: %d", code)
	}
}
