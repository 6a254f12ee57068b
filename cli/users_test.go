package cli

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
)

// withStdin runs fn with os.Stdin reading s.
func withStdin(t *testing.T, s string, fn func()) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	go func() { w.WriteString(s); w.Close() }()
	old := os.Stdin
	os.Stdin = r
	defer func() { os.Stdin = old; r.Close() }()
	fn()
}

// TestUsersCommands adds, lists and removes web UI users in the local
// database, as docs/ui.md shows.
func TestUsersCommands(t *testing.T) {
	dir := t.TempDir()
	var code int
	var stderr string
	withStdin(t, "correct horse battery\n", func() {
		code, _, stderr = run(t, dir, "users", "add", "alice", "--role", "operator", "--password-stdin")
	})
	if code != 0 || !strings.Contains(stderr, "added user alice (role operator)") {
		t.Fatalf("users add: %d %s", code, stderr)
	}
	for _, c := range []struct {
		args     []string
		stdin    string
		wantCode int
		want     string
	}{
		{[]string{"users", "add", "alice", "--role", "viewer", "--password-stdin"}, "another long password\n", 2, "user exists already"},
		{[]string{"users", "add", "bob", "--password-stdin"}, "short\n", 2, "password: 5 characters, want at least 12"},
		{[]string{"users", "add", "bob", "--role", "agent", "--password-stdin"}, "a long enough password\n", 2, `--role: role "agent": want admin, operator or viewer`},
		{[]string{"users", "add", "bob smith", "--password-stdin"}, "a long enough password\n", 2, `user name "bob smith": ' ' not allowed`},
		{[]string{"users", "add", "bob", "--password-stdin"}, "", 2, "--password-stdin: stdin is empty"},
		{[]string{"users", "add", "bob"}, "", 2, "no terminal to ask the password on"},
		{[]string{"users", "remove", "carol"}, "", 2, "remove user carol: no such user"},
	} {
		var code int
		var stderr string
		withStdin(t, c.stdin, func() { code, _, stderr = run(t, dir, c.args...) })
		if code != c.wantCode || !strings.Contains(stderr, c.want) {
			t.Errorf("%s: %d %q, want %d %q", strings.Join(c.args, " "), code, stderr, c.wantCode, c.want)
		}
	}
	code, out, stderr := run(t, dir, "users", "list", "-o", "json")
	var l struct {
		Users []struct{ Name, Role, Source string }
	}
	if err := json.Unmarshal([]byte(out), &l); code != 0 || err != nil || len(l.Users) != 1 || l.Users[0].Name != "alice" || l.Users[0].Role != "operator" || l.Users[0].Source != "local" {
		t.Fatalf("users list: %d %s %s", code, out, stderr)
	}
	if code, out, _ := run(t, dir, "users", "list"); code != 0 || !strings.Contains(out, "alice") || !strings.Contains(out, "NAME") {
		t.Errorf("users list table: %d %s", code, out)
	}
	if code, _, stderr := run(t, dir, "users", "remove", "alice"); code != 0 || !strings.Contains(stderr, "removed user alice") {
		t.Errorf("users remove: %d %s", code, stderr)
	}
	if code, out, _ := run(t, dir, "users", "list", "-o", "json"); code != 0 || !strings.Contains(out, `"users": []`) {
		t.Errorf("users list after remove: %d %s", code, out)
	}
}
