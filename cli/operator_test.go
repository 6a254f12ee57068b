package cli

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/patchbay/patchbay/auth"
)

// TestOperatorEdges holds what a first hour with the CLI ran into: each
// case is a command as an operator types it and what they must get.
func TestOperatorEdges(t *testing.T) {
	for _, v := range []string{envServer, envPin, envToken} {
		t.Setenv(v, "")
	}
	t.Run("--local before the subcommand", func(t *testing.T) {
		dir := emptyDB(t)
		var out, errb strings.Builder
		code := Run(t.Context(), []string{"--local", "--data-dir", dir, "admin", "token", "list"}, &out, &errb)
		if code != ExitOK || !strings.Contains(errb.String(), "local database "+filepath.Join(dir, "patchbay.db")) {
			t.Errorf("exit %d: %s %s", code, out.String(), errb.String())
		}
	})
	t.Run("durations in days; tokens as JSON; contradictory flags", func(t *testing.T) {
		dir := emptyDB(t)
		code, out, errb := run(t, dir, "admin", "token", "create", "--local", "--ttl", "7d", "-o", "json")
		var got struct {
			Secret string     `json:"secret"`
			Token  auth.Token `json:"token"`
		}
		if err := json.Unmarshal([]byte(out), &got); code != ExitOK || err != nil || !strings.HasPrefix(got.Secret, "pb_") {
			t.Fatalf("create -o json: %d %v %q %s", code, err, out, errb)
		}
		if d := time.Until(got.Token.Expires); d < 7*24*time.Hour-time.Minute || d > 7*24*time.Hour {
			t.Errorf("--ttl 7d: expires in %s", d)
		}
		if code, _, errb := run(t, dir, "admin", "token", "create", "--local", "--enrollment", "--role", "admin"); code != ExitError || !strings.Contains(errb, "--enrollment and --role admin") {
			t.Errorf("--enrollment --role admin: %d %s", code, errb)
		}
		if code, _, errb := run(t, dir, "admin", "token", "create", "--local", "--ttl", "-1h"); code != ExitError || !strings.Contains(errb, `duration "-1h": want a number of days (7d)`) {
			t.Errorf("--ttl -1h: %d %s", code, errb)
		}
		if code, _, errb := run(t, dir, "hosts", "list", "--stale", "1d", "--server", "https://127.0.0.1:1"); strings.Contains(errb, "unknown unit") {
			t.Errorf("--stale 1d: %d %s", code, errb)
		}
	})
	t.Run("a missing argument shows the usage", func(t *testing.T) {
		code, _, errb := run(t, t.TempDir(), "hosts", "show")
		if code != ExitError || !strings.Contains(errb, "accepts 1 arg(s), received 0\nusage: patchbay hosts show HOST [flags]") {
			t.Errorf("%d %s", code, errb)
		}
	})
	t.Run("a server that does not answer", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		t.Setenv(envToken, "pb_x")
		code, _, errb := run(t, t.TempDir(), "hosts", "list", "--server", "https://"+addr)
		if code != ExitError || !strings.Contains(errb, "connection refused") || !strings.Contains(errb, "hint: nothing listens there") {
			t.Errorf("%d %s", code, errb)
		}
	})
	t.Run("the API URL as --server; plan flags named", func(t *testing.T) {
		r, _ := startInDir(t, t.TempDir())
		t.Setenv(envPin, r.fingerprint)
		t.Setenv(envToken, r.adminToken)
		if code, _, errb := run(t, t.TempDir(), "hosts", "list", "--server", r.url+"/api/v1/"); code != ExitOK {
			t.Errorf("--server …/api/v1/: %d %s", code, errb)
		}
		t.Setenv(envServer, r.url)
		code, _, errb := run(t, t.TempDir(), "plan", "create", "--strategy", "standard", "--type", "secrity")
		if code != ExitError || !strings.Contains(errb, `--type: "secrity": want one of security`) {
			t.Errorf("plan create --type secrity: %d %s", code, errb)
		}
	})
	t.Run("quickstart checks its flags before it makes anything", func(t *testing.T) {
		data := filepath.Join(t.TempDir(), "data")
		code, _, errb := run(t, data, "quickstart", "--feeds", "/nonexistent", "--listen", "127.0.0.1:0", "--exit")
		if code != ExitError || !strings.Contains(errb, "--feeds: stat /nonexistent") {
			t.Errorf("%d %s", code, errb)
		}
		if _, err := os.Stat(data); err == nil {
			t.Errorf("quickstart made %s before failing", data)
		}
	})
	t.Run("one server per data dir on SQLite", func(t *testing.T) {
		dir := t.TempDir()
		startInDir(t, dir)
		code, _, errb := run(t, dir, "quickstart", "--listen", "127.0.0.1:0", "--exit", "--no-package-manager")
		if code != ExitError || !strings.Contains(errb, "database in use by another patchbay server") {
			t.Errorf("a second server on %s: %d %s", dir, code, errb)
		}
		if code, _, errb := run(t, dir, "admin", "token", "list", "--local"); code != ExitOK {
			t.Errorf("a local command beside the server: %d %s", code, errb)
		}
	})
	t.Run("scan --output-file: whole or not at all, and said", func(t *testing.T) {
		dir := t.TempDir()
		out := filepath.Join(dir, "report.sarif")
		code, _, errb := run(t, t.TempDir(), "scan", "-o", "sarif", "--output-file", out, "testdata/app")
		if code != ExitOK || !strings.Contains(errb, "wrote the sarif report to "+out+": ") {
			t.Fatalf("%d %s", code, errb)
		}
		if es, _ := os.ReadDir(dir); len(es) != 1 {
			t.Errorf("files left beside the report: %v", es)
		}
		// A scan that fails (a path that does not exist) leaves the report
		// and nothing beside it (TestOutputFileWholeOrNothing aborts part way).
		before, _ := os.ReadFile(out)
		if code, _, _ := run(t, t.TempDir(), "scan", "-o", "json", "--output-file", out, "testdata/app", "/nonexistent"); code != ExitError {
			t.Errorf("a failing scan exited %d", code)
		}
		if after, _ := os.ReadFile(out); string(after) != string(before) {
			t.Errorf("a failing scan replaced the report")
		}
		if es, _ := os.ReadDir(dir); len(es) != 1 {
			t.Errorf("files left after a failing scan: %v", es)
		}
	})
}
