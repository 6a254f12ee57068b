package cli

import (
	"bytes"
	"crypto/tls"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	agelib "filippo.io/age"
)

// TestBackupCreateVerifyRestore: an encrypted backup of a running server
// taken while it writes (no write fails meanwhile), verified, restored
// into a new data dir that serves the same certificate and credentials;
// a restore onto a data dir that holds data, and of a damaged archive,
// are refused without writing anything.
func TestBackupCreateVerifyRestore(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	r, _ := startInDir(t, dir)
	id, err := agelib.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	idFile := filepath.Join(work, "key.txt")
	if err := os.WriteFile(idFile, []byte(id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Writes go on while the backups run: tokens made through the API.
	cl := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} // loopback, self-signed
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var writes, failed atomic.Int32
	var slowest atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			req, _ := http.NewRequest("POST", r.url+"/api/v1/tokens", strings.NewReader(`{"name":"w","role":"viewer"}`))
			req.Header.Set("Authorization", "Bearer "+r.adminToken)
			req.Header.Set("Content-Type", "application/json")
			start := time.Now()
			resp, err := cl.Do(req)
			if d := int64(time.Since(start)); d > slowest.Load() {
				slowest.Store(d)
			}
			if err != nil || resp.StatusCode != 201 && resp.StatusCode != 200 {
				failed.Add(1)
			}
			if resp != nil {
				resp.Body.Close()
			}
			writes.Add(1)
		}
	}()
	enc := filepath.Join(work, "enc.pbk")
	plain := filepath.Join(work, "plain.pbk")
	code, out, errOut := run(t, dir, "backup", "create", enc, "--recipient", id.Recipient().String())
	if code != 0 || !strings.Contains(out, "wrote "+enc) {
		t.Fatalf("create: %d %s %s", code, out, errOut)
	}
	code, _, errOut = run(t, dir, "backup", "create", plain)
	close(stop)
	wg.Wait()
	if code != 0 || !strings.Contains(errOut, "keys left out of the unencrypted archive: audit-signing.key, job-signing.key, tls-key.pem") {
		t.Fatalf("plain create: %d %s", code, errOut)
	}
	if failed.Load() != 0 || writes.Load() == 0 {
		t.Fatalf("%d of %d writes failed during the backups", failed.Load(), writes.Load())
	}
	t.Logf("%d writes during two backups, the slowest %s", writes.Load(), time.Duration(slowest.Load()))

	code, out, errOut = run(t, dir, "backup", "verify", enc, "--identity", idFile)
	if code != 0 || !strings.Contains(out, "verified: sqlite database") {
		t.Fatalf("verify: %d %s %s", code, out, errOut)
	}
	if code, _, errOut = run(t, dir, "backup", "verify", enc); code == 0 || !strings.Contains(errOut, "encryption: the archive is encrypted") {
		t.Fatalf("verify without the key: %d %s", code, errOut)
	}

	// A damaged archive: refused naming the part; nothing written.
	b, _ := os.ReadFile(enc)
	damaged := filepath.Join(work, "damaged.pbk")
	b[len(b)/2] ^= 1
	os.WriteFile(damaged, b, 0o600)
	target := filepath.Join(work, "restored")
	if code, _, errOut = run(t, target, "backup", "restore", damaged, "--identity", idFile); code == 0 || !strings.Contains(errOut, "backup archive: ") {
		t.Fatalf("damaged restore: %d %s", code, errOut)
	}
	if _, err := os.Stat(target); !os.IsNotExist(err) {
		t.Fatalf("a refused restore wrote %s", target)
	}
	if ents, _ := os.ReadDir(work); len(ents) != 4 {
		t.Fatalf("a refused restore left files behind: %v", ents)
	}

	code, out, errOut = run(t, target, "backup", "restore", enc, "--identity", idFile)
	if code != 0 || !strings.Contains(out, "restored the backup of") {
		t.Fatalf("restore: %d %s %s", code, out, errOut)
	}
	if code, _, errOut = run(t, target, "backup", "restore", enc, "--identity", idFile); code == 0 || !strings.Contains(errOut, "not empty") {
		t.Fatalf("restore over a data dir: %d %s", code, errOut)
	}
	// --force over the data dir of the running server is refused.
	if code, _, errOut = run(t, dir, "backup", "restore", enc, "--identity", idFile, "--force"); code == 0 || !strings.Contains(errOut, "stop the server first") {
		t.Fatalf("restore over a served data dir: %d %s", code, errOut)
	}
	// --force over a data dir that is not served replaces it.
	if code, _, errOut = run(t, target, "backup", "restore", plain, "--force"); code != 0 || !strings.Contains(errOut, "the archive holds no keys") {
		t.Fatalf("forced restore: %d %s", code, errOut)
	}
	if code, _, errOut = run(t, target, "backup", "restore", enc, "--identity", idFile, "--force"); code != 0 {
		t.Fatalf("forced restore: %d %s", code, errOut)
	}
	for _, f := range []string{"tls-cert.pem", "tls-key.pem", "job-signing.key", "audit-signing.key"} {
		a, _ := os.ReadFile(filepath.Join(dir, f))
		c, _ := os.ReadFile(filepath.Join(target, f))
		if len(a) == 0 || !bytes.Equal(a, c) {
			t.Errorf("%s not restored", f)
		}
	}
	// The restored data dir serves: the first admin's token still works
	// (no new one is made), and the audit chain verifies.
	r2, _ := startInDir(t, target)
	if r2.fingerprint != r.fingerprint {
		t.Errorf("the restored server's TLS fingerprint %s, want %s (agents pin it)", r2.fingerprint, r.fingerprint)
	}
	if r2.adminToken != "" {
		t.Error("the restored server made a new admin token: the old ones were lost")
	}
	req, _ := http.NewRequest("GET", r2.url+"/api/v1/audit", nil)
	req.Header.Set("Authorization", "Bearer "+r.adminToken)
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("the audit log of the restored server with the old admin token: %d", resp.StatusCode)
	}
	if code, out, errOut := run(t, target, "audit", "verify", "--local"); code != 0 {
		t.Fatalf("audit verify: %d %s %s", code, out, errOut)
	}
}
