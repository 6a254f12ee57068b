package cli

import (
	"context"
	"net"
	"os"
	"path/filepath"
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

// TestScanUnreadableInputExits2: an input that cannot be read at all (a
// socket named like a lockfile: open fails with ENXIO, for root too) is
// named with its directory and exits 2 after the report of the rest; a
// requirement pip refuses (requests=2.0) is a warning with file:line.
func TestScanUnreadableInputExits2(t *testing.T) {
	dir := t.TempDir()
	sockDir := filepath.Join(dir, "svc")
	os.Mkdir(sockDir, 0o755)
	sock := filepath.Join(sockDir, "requirements.txt")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Skipf("unix socket: %v", err)
	}
	defer l.Close()
	reqs := filepath.Join(dir, "requirements.txt")
	os.WriteFile(reqs, []byte("flask==2.0.1\n# pinned by hand\nrequests=2.0\nidna===2.5\n"), 0o644)
	code, out, errb := run(t, t.TempDir(), "scan", sock, reqs)
	if code != ExitError || !strings.Contains(errb, "1 input could not be read (first: "+sock+": cannot read: no such device or address)") {
		t.Errorf("unreadable input: exit %d\n%s\n%s", code, out, errb)
	}
	if !strings.Contains(out, "packages scanned in 1 file") {
		t.Errorf("no report of the readable input:\n%s", out)
	}
	if !strings.Contains(errb, reqs+`:3: "requests=2.0" is not a requirement pip accepts (did you mean requests==2.0?)`) || strings.Contains(errb, ":4:") {
		t.Errorf("requirement warnings:\n%s", errb)
	}
	// Read but not understood is a skip: exit 0, 2 with --strict.
	bad := filepath.Join(dir, "package-lock.json")
	os.WriteFile(bad, []byte("{"), 0o644)
	if code, _, errb := run(t, t.TempDir(), "scan", bad); code != ExitOK {
		t.Errorf("malformed input: exit %d %s", code, errb)
	}
	if code, _, errb := run(t, t.TempDir(), "scan", "--strict", bad); code != ExitError || !strings.Contains(errb, "--strict: 1 input skipped") {
		t.Errorf("malformed input, --strict: exit %d %s", code, errb)
	}
}
