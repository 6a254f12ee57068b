package web_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/patchbay/patchbay/api/policyapi"
)

// TestScorecardPages: the scorecard, initiative (with its burn-up),
// service and team pages show what the API computed for a service of the
// fixture's production hosts, whose findings come from the real feeds.
func TestScorecardPages(t *testing.T) {
	f := scorecardFixture(t)
	vera := f.person("vera")
	vera.login(password)
	for path, wants := range scorecardPages {
		code, _, page := vera.get(path)
		if code != 200 {
			t.Errorf("%s: %d\n%s", path, code, page)
			continue
		}
		for _, w := range wants {
			if !strings.Contains(page, w) {
				t.Errorf("%s: no %q in\n%s", path, w, page)
			}
		}
	}
	if code, _, page := vera.get("/services/nope"); code != 404 || !strings.Contains(page, `no Service named &#34;nope&#34;`) {
		t.Errorf("unknown service: %d %s", code, page)
	}
}

// scorecardFixture is the web fixture with a service of its production
// hosts, the docs' scorecard and initiative applied, scored twice 60
// days apart.
func scorecardFixture(t *testing.T) *fixture {
	f := newFixture(t, nil)
	example, err := os.ReadFile("../docs/policy-example/scorecards.yaml")
	if err != nil {
		t.Fatal(err)
	}
	catalog := `apiVersion: patchbay/v1
kind: Team
metadata: {name: shopfront}
spec: {contact: "#shop-oncall"}
---
apiVersion: patchbay/v1
kind: Service
metadata: {name: shop}
spec: {owner: shopfront, tier: 1, exposure: internet, hosts: env=prod, repository: "https://git.example.com/shop"}
`
	// The example's dates (a 2027 quarter) are moved to the fixture's
	// clock, so that the pages are the same whatever the real date: the
	// quarter began yesterday and ends in 89 days, with the exemption.
	day := f.clock.now().UTC().Truncate(24 * time.Hour)
	card := strings.NewReplacer("service: reporting", "service: shop",
		"start: 2027-01-01", "start: "+day.AddDate(0, 0, -1).Format(time.DateOnly),
		"2027-03-31", day.AddDate(0, 0, 89).Format(time.DateOnly)).Replace(string(example))
	f.apiDo("POST", "/policy/apply", policyapi.ApplyRequest{Files: []policyapi.PolicyFile{{Name: "catalog.yaml", Content: catalog}, {Name: "scorecards.yaml", Content: card}}}, nil)
	for i := range 2 {
		if i > 0 {
			// 60 days on (into the initiative's quarter): the agents
			// have stopped reporting.
			f.clock.advance(60 * 24 * time.Hour)
		}
		if _, err := f.srv.ScoreNow(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// scorecardPages are the pages and what each shows.
var scorecardPages = map[string][]string{
	"/scorecards":               {`<a href="/scorecards/patch-hygiene">patch-hygiene</a>`, `<a href="/initiatives/q1-silver">q1-silver</a>`},
	"/scorecards/patch-hygiene": {`<a href="/services/shop">shop</a>`, "Restart or re-enroll the agents that stopped reporting.", `<a href="/teams/shopfront">shopfront</a>`, "<code>kev == 0</code>"},
	"/initiatives/q1-silver":    {`<svg class="chart burnup"`, `<a href="/services/shop">shop</a>`, `<a href="/patches?service=shop">plan the patches</a>`, "patchbay plan create --strategy STRATEGY --service shop"},
	"/services/shop":            {"prod-1", "prod-2", "#shop-oncall", `<a href="/initiatives/q1-silver">q1-silver</a>`, `id="service-patches"`, "openssl"},
	"/teams/shopfront":          {`<a href="/services/shop">shop</a>`, `<a href="/scorecards/patch-hygiene?team=shopfront">patch-hygiene</a>`, "q1-silver"},
}
