package agent_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/patchbay/patchbay/agent"
	"github.com/patchbay/patchbay/job"
	"github.com/patchbay/patchbay/pkgmgr"
)

// logLines parses a JSON log, one object a line.
func logLines(t *testing.T, b []byte) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("not a JSON log line: %q: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

// TestJobLogIDsAndRevert: every line the executor logs about a job
// (started, finished, refused, delivered again) carries job_id, plan_id,
// rollout_id and host, as the JSON log shows; and a revert job (the
// rollout halted) is reported rolled_back with its reason.
func TestJobLogIDsAndRevert(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	runner := &pkgmgr.Runner{Root: "/", Exec: func(context.Context, []string) (string, int, error) { return "", 0, nil }}
	pub, key, _ := ed25519.GenerateKey(nil)
	_, other, _ := ed25519.GenerateKey(nil)
	journal, _ := job.OpenJournal(filepath.Join(t.TempDir(), "journal.json"))
	drv := &fakeDriver{inst: map[string]string{"openssl": "3.0.17-1"}}
	now := time.Date(2026, 12, 1, 22, 30, 0, 0, time.UTC)
	x := &agent.Executor{HostID: "h-1", Key: pub, Driver: drv, Runner: runner, Reboot: &fakeReboot{}, Journal: journal, ResultDir: t.TempDir(),
		Now: func() time.Time { return now }, Log: log}
	sign := func(k ed25519.PrivateKey, attempt int, revert string) job.Signed {
		s, err := job.Sign(job.Manifest{JobID: "plan-7/h-1", Attempt: attempt, HostID: "h-1", Rollout: "plan-7", Ring: "canary", Reboot: job.RebootNever,
			Install: []job.Package{{Name: "openssl", Version: "3.0.15-1"}}, Timeout: time.Minute, IssuedAt: now, NotAfter: now.Add(time.Hour), Revert: revert}, k)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	ctx := context.Background()
	x.Run(ctx, sign(other, 1, ""))                               // refused: another key
	res, _ := x.Run(ctx, sign(key, 2, "gate error-rate failed")) // a revert
	if res.Outcome != job.RolledBack || !strings.Contains(res.Reason, "reverted to the previous versions: gate error-rate failed") || drv.inst["openssl"] != "3.0.15-1" {
		t.Errorf("revert: %+v, openssl %s", res, drv.inst["openssl"])
	}
	x.Run(ctx, sign(key, 2, "gate error-rate failed")) // delivered again: the kept result
	lines := logLines(t, buf.Bytes())
	msgs := map[string]bool{}
	for _, l := range lines {
		msgs[l["msg"].(string)] = true
		for k, want := range map[string]string{"job_id": "plan-7/h-1", "plan_id": "plan-7", "rollout_id": "plan-7", "host": "h-1"} {
			if l[k] != want {
				t.Errorf("%q: %s = %v, want %s", l["msg"], k, l[k], want)
			}
		}
	}
	for _, m := range []string{"job refused", "job started", "job finished"} {
		if !msgs[m] {
			t.Errorf("no %q line in %s", m, buf.Bytes())
		}
	}
}
