package cli

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/patchbay/patchbay/scorecard"
)

// TestScorecardCommands applies the docs' example to a running server,
// pushes a fact, and waits for the leader to score on that event; the
// catalog, scorecard, initiative, history and facts commands show it.
func TestScorecardCommands(t *testing.T) {
	// The server's clock starts on 2027-01-05 09:00 UTC and runs: inside
	// the example initiative's quarter and before the exemption expires,
	// whatever the real date (the test is not parallel: it sets the
	// environment, so nothing else reads the hook meanwhile).
	began, at := time.Now(), time.Date(2027, 1, 5, 9, 0, 0, 0, time.UTC)
	saved := testClockHook
	testClockHook = func(string) func() time.Time { return func() time.Time { return at.Add(time.Since(began)) } }
	t.Cleanup(func() { testClockHook = saved })
	t.Setenv(envTestClock, "in-process")
	serverEnv(t)
	data := t.TempDir()
	if code, _, stderr := run(t, data, "apply", "-f", filepath.Join("..", "docs", "policy-example")); code != ExitOK {
		t.Fatalf("apply: %d %s", code, stderr)
	}
	if code, _, stderr := run(t, data, "facts", "push", "--service", "billing-api", "coverage"); code == ExitOK || !strings.Contains(stderr, `"coverage": want NAME=VALUE`) {
		t.Errorf("facts push without a value: %d %s", code, stderr)
	}
	code, stdout, stderr := run(t, data, "facts", "push", "--service", "billing-api", "coverage=91.5")
	if code != ExitOK || !strings.HasPrefix(stdout, "billing-api coverage=91.5 at ") {
		t.Fatalf("facts push: %d %s %s", code, stdout, stderr)
	}
	// The leader scores within a second or two of the push.
	var d scorecard.Detail
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		code, stdout, stderr = run(t, data, "scorecards", "show", "patch-hygiene", "-o", "json")
		if code != ExitOK {
			t.Fatalf("scorecards show: %d %s", code, stderr)
		}
		d = scorecard.Detail{}
		if err := json.Unmarshal([]byte(stdout), &d); err != nil {
			t.Fatal(err)
		}
		if len(d.Results) == 3 || time.Now().After(deadline) {
			break
		}
	}
	levels := map[string]string{}
	for _, r := range d.Results {
		levels[r.Entity] = r.Level
	}
	// No hosts: nothing fails but ci-coverage, pushed for billing-api and
	// exempted for reporting until the end of 2027-03-31.
	reporting, byLevel := "gold", "(none) 0, bronze 0, silver 1, gold 2"
	if levels["billing-api"] != "gold" || levels["reporting"] != reporting || levels["checkout"] != "silver" {
		t.Fatalf("levels: %v", levels)
	}
	for _, c := range []struct {
		args  []string
		wants []string
	}{
		{[]string{"scorecards", "list"}, []string{"patch-hygiene", byLevel}},
		{[]string{"scorecards", "show", "patch-hygiene", "--team", "payments"}, []string{"checkout", "silver", "ci-coverage", "payments"}},
		{[]string{"initiatives", "list"}, []string{"q1-silver", "active", "level silver", "2027-03-31"}},
		{[]string{"initiatives", "show", "q1-silver"}, []string{"Initiative q1-silver: level silver on patch-hygiene", "team payments"}},
		{[]string{"scores", "history", "--service", "billing-api"}, []string{"patch-hygiene", "billing-api", "gold"}},
		{[]string{"scores", "history", "--team", "platform"}, []string{"reporting", reporting}},
		{[]string{"services", "show", "checkout"}, []string{"Service checkout: team payments, tier 1, internet", "contact: #payments-oncall", "chat: #checkout", "runbook: https://wiki.example.com/payments/checkout/runbook", "scorecard patch-hygiene: silver", "failing ci-coverage (gold): Push the test coverage", "initiatives: q1-silver", "KPIs (90 days): MTTP 0.0d, SLA 100%, patch success 100%; 0 open"}},
		{[]string{"teams", "show", "payments", "-o", "yaml"}, []string{"name: payments", "rollups:", "patch-hygiene:"}},
		{[]string{"teams", "show", "payments"}, []string{"Team payments, contact #payments-oncall", "checkout", "billing-api", "scorecard patch-hygiene: average", "KPIs (90 days): 0 open, 0 overdue"}},
	} {
		code, stdout, stderr := runWidth(t, data, 200, c.args...)
		if code != ExitOK {
			t.Errorf("%v: %d %s", c.args, code, stderr)
			continue
		}
		for _, w := range c.wants {
			if !strings.Contains(stdout, w) {
				t.Errorf("%v: no %q in\n%s", c.args, w, stdout)
			}
		}
	}
	if code, _, stderr := run(t, data, "services", "show", "nope"); code == ExitOK || !strings.Contains(stderr, `no Service named "nope"`) {
		t.Errorf("services show nope: %d %s", code, stderr)
	}
}
