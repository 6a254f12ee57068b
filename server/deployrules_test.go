package server_test

import (
	"context"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/patchbay/patchbay/api"
	"github.com/patchbay/patchbay/auth"
	"github.com/patchbay/patchbay/feeds"
	"github.com/patchbay/patchbay/internal/promtest"
)

// TestDeployRules checks patchbay's own alert rules and the example
// Alertmanager configuration with the real tools (promtool check rules
// and its unit tests in deploy/patchbay.rules.test.yml, amtool
// check-config), and that every patchbay metric the rules name is one the
// server exports, but the backup's (built on another branch).
func TestDeployRules(t *testing.T) {
	t.Parallel()
	promtool := promtest.Binary(t, "promtool", "prometheus")
	amtool := promtest.Binary(t, "amtool", "prometheus-alertmanager")
	run := func(dir, bin string, args ...string) {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s %s: %v\n%s", bin, strings.Join(args, " "), err, out)
		}
	}
	run("../deploy", promtool, "check", "rules", "patchbay.rules.yml")
	run("../deploy", promtool, "test", "rules", "patchbay.rules.test.yml")
	run("../deploy", amtool, "check-config", "alertmanager.example.yml")

	rules, err := os.ReadFile("../deploy/patchbay.rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	// A server with a feed imported and a host with findings exports
	// every series the rules read.
	f := newFixture(t, "sqlite", nil)
	if _, err := (&feeds.Importer{Store: f.db}).ImportPaths(context.Background(), []string{debianFeed(t)}); err != nil {
		t.Fatal(err)
	}
	facts := factsOf("web-1", "m-web-1")
	e := f.enroll(f.token(auth.KindEnrollment, auth.Agent, -1, time.Time{}), facts)
	if code, body := f.do("POST", api.Prefix+"/agent/checkin", e.Credential, report(facts, webDB(t), true)); code != 200 {
		t.Fatalf("check-in: %d %s", code, body)
	}
	code, body := f.do("GET", "/metrics", "", nil)
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	var exported []string
	for _, m := range regexp.MustCompile(`(?m)^# TYPE (patchbay_\w+)`).FindAllStringSubmatch(string(body), -1) {
		exported = append(exported, m[1])
	}
	for _, m := range regexp.MustCompile(`patchbay_\w+`).FindAllString(string(rules), -1) {
		if strings.HasPrefix(m, "patchbay_backup_") || strings.HasSuffix(m, "_test") {
			continue
		}
		if !slices.Contains(exported, m) {
			t.Errorf("the rules name %s, which /metrics does not export (%v)", m, exported)
		}
	}
}
