package cli

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/patchbay/patchbay/auth"
)

// TestClientErrorsSayWhatToDo runs the client commands against a real
// server with its self-signed certificate: without a pin the TLS error
// says how to get and give one; `server fingerprint` prints the pin the
// server uses; a URL without a scheme, an expired and an unknown token
// each get their own message.
func TestClientErrorsSayWhatToDo(t *testing.T) {
	dir := t.TempDir()
	r, _ := startInDir(t, dir)
	t.Setenv(envServer, r.url)
	t.Setenv(envToken, r.adminToken)
	t.Setenv(envPin, "")

	code, _, errb := run(t, t.TempDir(), "hosts", "list")
	if code != ExitError || !strings.Contains(errb, "x509") || !strings.Contains(errb, "hint: the server's certificate is not signed by a CA this machine trusts") ||
		!strings.Contains(errb, "patchbay server fingerprint") {
		t.Errorf("no pin: exit %d, %s", code, errb)
	}
	code, out, errb := run(t, dir, "server", "fingerprint")
	if code != ExitOK || strings.TrimSpace(out) != r.fingerprint {
		t.Fatalf("server fingerprint: exit %d, %q %s; want %s", code, out, errb, r.fingerprint)
	}
	t.Setenv(envPin, strings.TrimSpace(out))
	if code, _, errb := run(t, t.TempDir(), "hosts", "list"); code != ExitOK {
		t.Fatalf("pinned: exit %d, %s", code, errb)
	}
	empty := t.TempDir()
	if code, _, errb := run(t, empty, "server", "fingerprint"); code != ExitError || !strings.Contains(errb, "no server certificate in "+empty) {
		t.Errorf("fingerprint of a data dir without a server: exit %d, %s", code, errb)
	}

	addr := strings.TrimPrefix(r.url, "https://")
	code, _, errb = run(t, t.TempDir(), "hosts", "list", "--server", addr)
	if code != ExitError || !strings.Contains(errb, "not a URL of the server") || !strings.Contains(errb, "https://"+addr) {
		t.Errorf("URL without a scheme: exit %d, %s", code, errb)
	}

	secret, id, hash, err := auth.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	if err := r.db.Tokens.Create(context.Background(), auth.Token{ID: id, Kind: auth.KindAPI, Role: auth.Viewer, Created: now.Add(-2 * time.Hour),
		Expires: now.Add(-time.Hour), UsesLeft: -1}, hash); err != nil {
		t.Fatal(err)
	}
	t.Setenv(envToken, secret)
	code, _, errb = run(t, t.TempDir(), "hosts", "list")
	if code != ExitError || !strings.Contains(errb, "credential expired at") || !strings.Contains(errb, id) || !strings.Contains(errb, "hint: the server refused the token in PATCHBAY_TOKEN") {
		t.Errorf("expired token: exit %d, %s", code, errb)
	}
	t.Setenv(envToken, "pb_not-a-token")
	code, _, errb = run(t, t.TempDir(), "hosts", "list")
	if code != ExitError || !strings.Contains(errb, "unknown credential") || strings.Contains(errb, "expired") {
		t.Errorf("unknown token: exit %d, %s", code, errb)
	}
}
