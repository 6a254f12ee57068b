package cli

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/patchbay/patchbay/api"
	"github.com/patchbay/patchbay/api/rolloutapi"
	"github.com/patchbay/patchbay/auth"
	"github.com/patchbay/patchbay/fleet"
)

// TestEventsCommand: `patchbay events --host` prints the host's timeline
// (its check-in, an alert Alertmanager sent) as lines and as JSON; a
// timeline of nothing is refused.
func TestEventsCommand(t *testing.T) {
	r, _ := startInDir(t, t.TempDir())
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} // a test's self-signed server
	post := func(path, token string, body, out any) {
		t.Helper()
		b, _ := json.Marshal(body)
		req, _ := http.NewRequest("POST", r.url+api.Prefix+path, bytes.NewReader(b))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			t.Fatalf("POST %s: %s", path, resp.Status)
		}
		if out != nil {
			if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
				t.Fatal(err)
			}
		}
	}
	var tok api.TokenResponse
	post("/tokens", r.adminToken, api.TokenRequest{Kind: auth.KindEnrollment, Name: "t", Uses: 1}, &tok)
	var e api.EnrollResponse
	post("/agent/enroll", tok.Secret, api.EnrollRequest{Facts: fleet.Facts{Hostname: "web-9", MachineID: "m-web-9", OSID: "debian", OSVersion: "12", Ecosystem: "Debian:12"}}, &e)
	post("/agent/checkin", e.Credential, api.Report{CollectedAt: time.Now().UTC(), Facts: fleet.Facts{Hostname: "web-9", MachineID: "m-web-9", OSID: "debian", OSVersion: "12", Ecosystem: "Debian:12"}}, nil)
	post("/alerts", r.adminToken, rolloutapi.AlertmanagerPayload{Version: "4", Status: "firing", Alerts: []rolloutapi.AlertmanagerAlert{
		{Status: "firing", Labels: map[string]string{"alertname": "DiskFull", "instance": "web-9:9100"}, StartsAt: time.Now().UTC(), Fingerprint: "d1"}}}, nil)

	t.Setenv(envServer, r.url)
	t.Setenv(envPin, r.fingerprint)
	t.Setenv(envToken, r.adminToken)
	code, out, errb := run(t, t.TempDir(), "events", "--host", "web-9")
	if code != ExitOK || !strings.Contains(out, "checkin") || !strings.Contains(out, "web-9") || !strings.Contains(out, "alert DiskFull firing") {
		t.Errorf("events --host: %d %q %s", code, out, errb)
	}
	code, out, _ = run(t, t.TempDir(), "events", "--host", "web-9", "-o", "json")
	var evs rolloutapi.Events
	if err := json.Unmarshal([]byte(out), &evs); code != ExitOK || err != nil || len(evs.Events) != 2 || evs.Events[1].Kind != "alert" && evs.Events[0].Kind != "alert" {
		t.Errorf("events -o json: %d %v %s", code, err, out)
	}
	if code, _, errb := run(t, t.TempDir(), "events"); code != ExitError || !strings.Contains(errb, "name a host (--host) or a rollout (--rollout)") {
		t.Errorf("events without a subject: %d %s", code, errb)
	}
}
