package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/patchbay/patchbay/api"
	"github.com/patchbay/patchbay/fleet"
	"github.com/patchbay/patchbay/internal/jsontest"
	"github.com/patchbay/patchbay/internal/sharedtest"
	"github.com/patchbay/patchbay/internal/table"
)

// syncBuffer is a buffer written by a running command and read by the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// debianAndKEV is a feeds directory of the shared Debian all.zip and the
// KEV catalog.
func debianAndKEV(t *testing.T) string {
	t.Helper()
	feeds := t.TempDir()
	os.Symlink(filepath.Join(sharedtest.Dir(t, "feeds/osv/Debian"), "all.zip"), filepath.Join(feeds, "all.zip"))
	os.Symlink(filepath.Join(sharedtest.Dir(t, "feeds/kev"), "known_exploited_vulnerabilities.json"), filepath.Join(feeds, "known_exploited_vulnerabilities.json"))
	return feeds
}

func fixtureHost(t *testing.T, fixture, machineID, hostname string) string {
	root := sharedtest.DebianRoot(t, fixture)
	os.WriteFile(filepath.Join(root, "etc/machine-id"), []byte(machineID+"\n"), 0o444)
	os.WriteFile(filepath.Join(root, "etc/hostname"), []byte(hostname+"\n"), 0o644)
	return root
}

// TestQuickstartAndClients runs quickstart (server, feeds, one agent,
// summary), then the client commands against it, a second agent process
// enrolled with a token from `admin token create`, and a graceful stop;
// the audit chain verifies against the exported checkpoint.
func TestQuickstartAndClients(t *testing.T) {
	feeds := debianAndKEV(t)
	// And the NVD sample: vulns show lists a CVE's scores.
	os.Symlink(filepath.Join(sharedtest.Dir(t, "feeds/nvd"), "nvdcve-sample.json"), filepath.Join(feeds, "nvdcve-sample.json"))
	data := t.TempDir()
	root := fixtureHost(t, "status-bookworm-web-db", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "web-db-1")
	summary, stop := startQuickstart(t, "--data-dir", data, "quickstart", "--feeds", feeds, "--listen", "127.0.0.1:0", "--root", root,
		"--no-package-manager", "--log-level", "warn", "--label", "env=prod")
	for _, want := range []string{"feeds: 5368 added", "KEV 1404", "this host: enrolled as", "fleet: 1 host; open findings", "top patches:", "self-signed; pin sha256:"} {
		if !strings.Contains(summary, want) {
			t.Errorf("quickstart output lacks %q:\n%s", want, summary)
		}
	}
	url := regexp.MustCompile(`API:\s+(https://127\.0\.0\.1:\d+)/api/v1`).FindStringSubmatch(summary)
	pin := regexp.MustCompile(`pin (sha256:[0-9a-f]{64})`).FindStringSubmatch(summary)
	admin := regexp.MustCompile(`admin token \(shown once\): (pb_\S+)`).FindStringSubmatch(summary)
	if url == nil || pin == nil || admin == nil {
		t.Fatalf("no URL, pin or admin token in:\n%s", summary)
	}
	t.Setenv("PATCHBAY_SERVER", url[1])
	t.Setenv("PATCHBAY_PIN", pin[1])
	t.Setenv("PATCHBAY_TOKEN", admin[1])

	code, stdout, stderr := run(t, data, "hosts", "list")
	if code != 0 || !strings.Contains(stdout, "web-db-1") || !strings.Contains(stdout, "Debian:12") || !strings.Contains(stdout, "env=prod") || stderr != "1 host\n" ||
		!strings.Contains(stdout, "AGENT") || !strings.Contains(stdout, " "+Version+" ") {
		t.Fatalf("hosts list (want the agent's version %s): %d\n%s\n%s", Version, code, stdout, stderr)
	}
	code, stdout, _ = run(t, data, "hosts", "list", "-o", "json")
	var hl api.HostList
	if code != 0 || json.Unmarshal([]byte(stdout), &hl) != nil || len(hl.Hosts) != 1 || hl.Hosts[0].OpenTotal() == 0 {
		t.Fatalf("hosts list -o json: %d %s", code, stdout)
	}
	h := hl.Hosts[0]
	// YAML: the JSON's document, field for field.
	code, stdout, stderr = run(t, data, "hosts", "list", "-o", "yaml")
	var fromYAML, fromJSON any
	code2, js, _ := run(t, data, "hosts", "list", "-o", "json")
	if code != 0 || code2 != 0 || yaml.Unmarshal([]byte(stdout), &fromYAML) != nil || json.Unmarshal([]byte(js), &fromJSON) != nil {
		t.Fatalf("hosts list -o yaml: %d %s %s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "hosts:\n  - id: "+h.ID+"\n") || !strings.Contains(stdout, "    hostname: web-db-1\n") {
		t.Errorf("hosts list -o yaml is not block YAML with the JSON's names:\n%s", stdout)
	}
	if a, b := fmt.Sprint(normalize(fromYAML)), fmt.Sprint(normalize(fromJSON)); a != b {
		t.Errorf("hosts list: the YAML says\n%s\nthe JSON\n%s", a, b)
	}
	code, stdout, _ = run(t, data, "hosts", "show", h.ID)
	if code != 0 || !strings.Contains(stdout, "web-db-1 ("+h.ID+")") || !strings.Contains(stdout, "VULNERABILITY") {
		t.Errorf("hosts show: %d\n%s", code, stdout)
	}
	// hosts show: 20 open findings by default, then how many more.
	if rows := strings.Count(stdout[strings.Index(stdout, "PRIORITY"):], "\n") - 2; rows != 20 || !strings.Contains(stdout, fmt.Sprintf("… and %d more; --limit 0 for all\n", h.OpenTotal()-20)) {
		t.Errorf("hosts show: %d rows of %d open findings:\n%s", rows, h.OpenTotal(), stdout)
	}
	if strings.Contains(stdout, "ago (") && strings.Contains(stdout, "UTC) ago") {
		t.Errorf("hosts show: last seen says ago twice:\n%s", stdout)
	}
	code, stdout, _ = run(t, data, "hosts", "show", h.ID, "--limit", "0")
	if rows := strings.Count(strings.SplitN(stdout[strings.Index(stdout, "PRIORITY"):], "\n\n", 2)[0], "\n") - 1; code != 0 || strings.Contains(stdout, "more; --limit 0") || rows != h.OpenTotal() {
		t.Errorf("hosts show --limit 0: %d, %d rows of %d open findings", code, rows, h.OpenTotal())
	}
	// Fitted to 100 columns: no line wider, cut cells end in an ellipsis;
	// --wide leaves them whole.
	code, stdout, _ = runWidth(t, data, 100, "findings", "list", "--limit", "5")
	for _, l := range strings.Split(strings.TrimSuffix(stdout, "\n"), "\n") {
		if table.Width(l) > 100 {
			t.Errorf("findings list at 100 columns: %d wide: %q", table.Width(l), l)
		}
	}
	if code != 0 || !strings.Contains(stdout, "…") {
		t.Errorf("findings list at 100 columns: %d\n%s", code, stdout)
	}
	// On an 80-column terminal every table fits: columns are cut, and the
	// least needed left out (--wide shows them).
	for _, args := range [][]string{{"hosts", "list"}, {"findings", "list", "--limit", "20"}, {"hosts", "show", "web-db-1"}, {"vulns", "list", "--limit", "20"},
		{"feeds", "status"}, {"admin", "token", "list"}} {
		code, out, errb := runWidth(t, data, 80, args...)
		if code != 0 {
			t.Errorf("%v at 80 columns: exit %d %s", args, code, errb)
		}
		for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
			if table.Width(l) > 80 {
				t.Errorf("%v at 80 columns: a line %d wide: %q", args, table.Width(l), l)
			}
		}
	}
	code, wide, _ := runWidth(t, data, 100, "findings", "list", "--limit", "5", "--wide")
	if code != 0 || strings.Contains(wide, "…") || table.Width(strings.Split(wide, "\n")[1]) <= 100 {
		t.Errorf("findings list --wide: %d\n%s", code, wide)
	}
	// No time that is not there written as the zero time, by the server
	// (the API) or the CLI.
	for _, p := range []string{"/hosts", "/hosts/" + h.ID, "/findings?status=all&limit=1000", "/vulns"} {
		jsontest.NoZeroTime(t, "GET "+p, rawGET(t, p))
	}
	for _, args := range [][]string{{"hosts", "show", h.ID, "-o", "json"}, {"findings", "list", "--status", "all", "-o", "json"}} {
		_, stdout, _ = run(t, data, args...)
		jsontest.NoZeroTime(t, strings.Join(args, " "), []byte(stdout))
	}
	code, stdout, stderr = run(t, data, "findings", "list", "--all", "-o", "json", "--limit", "50")
	var page fleet.FindingPage
	if code != 0 || json.Unmarshal([]byte(stdout), &page) != nil || len(page.Findings) != h.OpenTotal() {
		t.Errorf("findings list --all: %d findings, host has %d open; %s", len(page.Findings), h.OpenTotal(), stderr)
	}
	code, stdout, stderr = run(t, data, "findings", "list", "--limit", "5", "--sort", "due")
	if code != 0 || strings.Count(stdout, "\n") != 6 || !strings.Contains(stderr, "more: --cursor") {
		t.Errorf("findings list --limit 5: %d\n%s\n%s", code, stdout, stderr)
	}
	code, stdout, _ = run(t, data, "vulns", "list", "-o", "json")
	var vl api.VulnList
	if code != 0 || json.Unmarshal([]byte(stdout), &vl) != nil || len(vl.Vulnerabilities) == 0 {
		t.Fatalf("vulns list: %d %s", code, stdout)
	}
	jsontest.NoZeroTime(t, "GET /vulns/ID", rawGET(t, "/vulns/"+vl.Vulnerabilities[0].ID))
	code, stdout, _ = run(t, data, "vulns", "show", vl.Vulnerabilities[0].ID)
	if code != 0 || !strings.Contains(stdout, h.ID) {
		t.Errorf("vulns show: %d\n%s", code, stdout)
	}
	scored := ""
	for _, v := range vl.Vulnerabilities {
		if sampleCVEs(t)[v.ID] {
			scored = v.ID
			break
		}
	}
	code, stdout, _ = run(t, data, "vulns", "show", scored)
	if scored == "" || code != 0 || !strings.Contains(stdout, "  NVD: ") || !regexp.MustCompile(`(?m)^    \d\.\d\s+\d+\.\d\s+(NVD|the CNA|CISA ADP)`).MatchString(stdout) {
		t.Errorf("vulns show %s (a CVE of the NVD sample): %d\n%s", scored, code, stdout)
	}
	if code, _, stderr = run(t, data, "vulns", "show", "CVE-1999-0001"); code != ExitError || !strings.Contains(stderr, "404") {
		t.Errorf("vulns show unknown: %d %s", code, stderr)
	}
	t.Setenv("PATCHBAY_TOKEN", "pb_wrong")
	if code, _, stderr = run(t, data, "hosts", "list"); code != ExitError || !strings.Contains(stderr, "401") {
		t.Errorf("wrong token: %d %s", code, stderr)
	}
	t.Setenv("PATCHBAY_TOKEN", admin[1])

	// A second host: an enrollment token from the CLI, an agent process.
	code, tok, stderr := run(t, data, "admin", "token", "create", "--enrollment", "--uses", "1")
	if code != 0 || !strings.Contains(stderr, "server "+url[1]) {
		t.Fatalf("enrollment token: %d %s", code, stderr)
	}
	base := fixtureHost(t, "status-bookworm-minbase", "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", "base-1")
	code, stdout, stderr = run(t, data, "agent", "--once", "--root", base, "--enroll-token", strings.TrimSpace(tok), "--no-package-manager", "--label", "env=staging")
	if code != 0 || !strings.Contains(stdout, "checked in as host") {
		t.Fatalf("agent --once: %d\n%s\n%s", code, stdout, stderr)
	}
	code, stdout, _ = run(t, data, "hosts", "list", "--label", "env=staging")
	if code != 0 || !strings.Contains(stdout, "base-1") || strings.Contains(stdout, "web-db-1") {
		t.Errorf("hosts list --label env=staging: %d\n%s", code, stdout)
	}

	// Policy as code: validate, dry run, apply, round trip, diff, explain,
	// delete, history.
	example := filepath.Join("..", "docs", "policy-example")
	if code, stdout, stderr = run(t, data, "policy", "validate", "-f", example); code != 0 || stdout != "16 documents in 8 files: valid\n" {
		t.Errorf("policy validate: %d %q %s", code, stdout, stderr)
	}
	code, stdout, stderr = run(t, data, "apply", "-f", example, "--dry-run")
	if code != 0 || !strings.Contains(stdout, "Service/checkout would be created\n") || !strings.Contains(stderr, "16 would be created, 0 would change, 0 unchanged, 0 would be deleted (nothing applied)") {
		t.Fatalf("apply --dry-run: %d\n%s\n%s", code, stdout, stderr)
	}
	code, stdout, stderr = run(t, data, "apply", "-f", example)
	if code != 0 || !strings.Contains(stderr, "16 created, 0 changed, 0 unchanged, 0 deleted; findings decided again") {
		t.Fatalf("apply: %d\n%s\n%s", code, stdout, stderr)
	}
	code, yml, stderr := run(t, data, "get", "services", "-o", "yaml")
	if code != 0 || strings.Count(yml, "kind: Service") != 3 {
		t.Fatalf("get services -o yaml: %d\n%s\n%s", code, yml, stderr)
	}
	got := filepath.Join(t.TempDir(), "services.yaml")
	os.WriteFile(got, []byte(yml), 0o644)
	if code, _, stderr = run(t, data, "apply", "-f", got); code != 0 || !strings.HasPrefix(stderr, "0 created, 0 changed, 3 unchanged, 0 deleted") {
		t.Errorf("apply of get's output: %d %s", code, stderr)
	}
	os.WriteFile(got, []byte(strings.Replace(yml, "  tier: 3\n", "  tier: 2\n", 1)), 0o644)
	code, stdout, stderr = run(t, data, "diff", "-f", got)
	if code != ExitFindings || !strings.Contains(stdout, "Service/reporting would change (version 2)") || !strings.Contains(stdout, "-   tier: 3") || !strings.Contains(stdout, "+   tier: 2") {
		t.Errorf("diff: %d\n%s\n%s", code, stdout, stderr)
	}
	if code, stdout, _ = run(t, data, "get", "service", "reporting"); code != 0 || !regexp.MustCompile(`(?m)^Service\s+reporting\s+1\s`).MatchString(stdout) {
		t.Errorf("diff applied something: %s", stdout)
	}
	if code, stdout, stderr = run(t, data, "diff", "-f", example); code != ExitOK || stdout != "" || !strings.HasPrefix(stderr, "0 would be created, 0 would change, 16 unchanged") {
		t.Errorf("diff without differences: exit %d\n%s\n%s", code, stdout, stderr)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("apiVersion: patchbay/v1\nkind: Service\nmetadata:\n  name: x\nspec:\n  owner: payments\n  tier: 9\n  exposure: internet\n  team: x\n"), 0o644)
	code, _, stderr = run(t, data, "apply", "-f", example, "-f", bad)
	if code != ExitError || !strings.Contains(stderr, "1 problem(s); nothing applied:\n"+bad+":9:3: spec.team: unknown field (want one of description, owner, tier, exposure, hosts, repository, chat, links, repo, paths)") {
		t.Errorf("invalid apply: %d %s", code, stderr)
	}
	os.WriteFile(bad, []byte("apiVersion: patchbay/v1\nkind: Service\nmetadata:\n  name: x\nspec:\n  owner: nobody\n  tier: 2\n  exposure: internet\n"), 0o644)
	code, _, stderr = run(t, data, "apply", "-f", bad)
	if code != ExitError || !strings.Contains(stderr, bad+`:6:10: spec.owner: no Team named "nobody"`) {
		t.Errorf("apply with a dangling reference: %d %s", code, stderr)
	}
	code, stdout, stderr = run(t, data, "findings", "list", "--status", "not_affected", "-o", "json")
	if code != 0 || json.Unmarshal([]byte(stdout), &page) != nil || len(page.Findings) != 1 || page.Findings[0].Package != "openssl" {
		t.Fatalf("findings --status not_affected: %d %s %s", code, stdout, stderr)
	}
	jsontest.NoZeroTime(t, "GET /findings/ID", rawGET(t, fmt.Sprint("/findings/", page.Findings[0].ID)))
	code, stdout, stderr = run(t, data, "findings", "explain", fmt.Sprint(page.Findings[0].ID))
	for _, want := range []string{"CVE-2026-54872 in openssl", "asset context:", "decision (policy default, now):", "not affected per Exception/vex-", "→ P4, not_affected", "history:"} {
		if code != 0 || !strings.Contains(stdout, want) {
			t.Errorf("findings explain lacks %q: %d\n%s\n%s", want, code, stdout, stderr)
		}
	}
	// A service's code inventory, uploaded from CI.
	app := t.TempDir()
	os.WriteFile(filepath.Join(app, "requirements.txt"), []byte("requests==2.25.0\njinja2==3.1.2\n"), 0o644)
	if code, _, stderr = run(t, data, "scan", "--upload", "--service", "billing-api", "-f", "json", app); code != 0 ||
		!strings.Contains(stderr, "uploaded 2 packages of service billing-api to "+url[1]+": ") {
		t.Errorf("scan --upload: %d %s", code, stderr)
	}
	if code, _, stderr = run(t, data, "scan", "--upload", app); code != ExitError || !strings.Contains(stderr, "--upload: name the service the inventory belongs to with --service NAME") {
		t.Errorf("scan --upload without --service: %d %s", code, stderr)
	}
	if code, _, stderr = run(t, data, "scan", "--upload", "--service", "nope", app); code != ExitError || !strings.Contains(stderr, `no Service named "nope"`) {
		t.Errorf("scan --upload to an unknown service: %d %s", code, stderr)
	}
	if code, stdout, stderr = run(t, data, "delete", "exception", "reporting-postgres-upgrade"); code != 0 || stdout != "Exception/reporting-postgres-upgrade deleted\n" {
		t.Errorf("delete: %d %q %s", code, stdout, stderr)
	}
	code, stdout, stderr = run(t, data, "policy", "history", "exceptions", "reporting-postgres-upgrade")
	if code != 0 || !strings.Contains(stdout, "Exception/reporting-postgres-upgrade version 1 created by") || !strings.Contains(stdout, "version 2 deleted by") ||
		!strings.Contains(stdout, "    + kind: Exception") || !strings.Contains(stdout, "    - kind: Exception") {
		t.Errorf("policy history: %d\n%s\n%s", code, stdout, stderr)
	}

	// No plan yet: the list, in YAML too. (The plans' JSON is walked
	// for zero times in the server's rollout test, where hosts have
	// updates to plan.)
	if code, stdout, stderr = run(t, data, "plan", "list", "-o", "yaml"); code != 0 || stdout != "plans: []\n" {
		t.Errorf("plan list -o yaml: %d %q %s", code, stdout, stderr)
	}

	// The leader exports its first checkpoint once its start-up work (the
	// feed refresh and its rematch) is done: wait for it, then stop.
	cp := filepath.Join(data, "checkpoints", "audit-checkpoint.json")
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
		if _, err := os.Stat(cp); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no audit checkpoint at %s after two minutes", cp)
		}
	}

	// Graceful stop.
	stop()
	// The server is stopped: its database, verified directly.
	code, stdout, stderr = run(t, data, "audit", "verify", "--local", "--checkpoint", cp)
	if code != 0 || !strings.Contains(stdout, "audit chain intact") || !strings.Contains(stderr, "local database "+filepath.Join(data, "patchbay.db")) {
		t.Errorf("audit verify: %d %s %s", code, stdout, stderr)
	}
}

// TestQuickstartOffline: with the feeds unreachable, quickstart says so and
// goes on: this host is enrolled and checked in, and the summary printed.
func TestQuickstartOffline(t *testing.T) {
	root := fixtureHost(t, "status-bookworm-minbase", "cccccccccccccccccccccccccccccccc", "offline-1")
	code, stdout, stderr := run(t, t.TempDir(), "quickstart", "--exit", "--listen", "127.0.0.1:0", "--root", root,
		"--no-package-manager", "--log-level", "error", "--feeds-mirror", "http://127.0.0.1:1")
	if code != 0 {
		t.Fatalf("quickstart offline: %d\n%s\n%s", code, stdout, stderr)
	}
	for _, want := range []string{"feeds: offline or unreachable", "this host: enrolled as", "fleet: 1 host;", "admin token (shown once)"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
}

// normalize makes a decoded YAML or JSON document comparable: numbers as
// float64, maps keyed by string.
func normalize(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, c := range x {
			out[k] = normalize(c)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, c := range x {
			out[i] = normalize(c)
		}
		return out
	case int:
		return float64(x)
	}
	return v
}
