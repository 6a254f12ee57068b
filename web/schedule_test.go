package web_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/patchbay/patchbay/api/policyapi"
	"github.com/patchbay/patchbay/internal/rollouttest"
)

// TestSchedulePages: the list and the detail with its preview; pausing
// takes a reason and the CSRF token, as the other actions do; a viewer
// sees no control and may not pause.
func TestSchedulePages(t *testing.T) {
	f := newFixture(t, nil)
	f.apiDo("POST", "/policy/apply", policyapi.ApplyRequest{Files: []policyapi.PolicyFile{{Name: "s.yaml", Content: rollouttest.Documents("MaintenanceWindow/nightly") + `---
apiVersion: patchbay/v1
kind: PatchSchedule
metadata: {name: nightly-fast}
spec:
  description: every security patch, nightly
  selector: {types: [security]}
  strategy: fast
  windows: [nightly]
  minAge: {bugfix: 7d}
  emergency: true
`}}}, nil)
	alice := f.person("alice")
	alice.login(password)
	code, _, body := alice.get("/schedules")
	if code != 200 || !strings.Contains(body, `<a href="/schedules/nightly-fast">nightly-fast</a>`) || !strings.Contains(body, "emergency lane") {
		t.Fatalf("list: %d\n%s", code, body)
	}
	code, _, body = alice.get("/schedules/nightly-fast")
	if code != 200 || strings.Count(body, "<th scope=\"row\">nightly") != 5 || !strings.Contains(body, `id="pause"`) || !strings.Contains(body, "bugfix 7d") {
		t.Fatalf("detail: %d\n%s", code, body)
	}
	// Every host has security updates, the agents are active: the
	// opening would patch them.
	if !strings.Contains(body, `<td class="n">3</td>`) {
		t.Errorf("the preview patches no host:\n%s", body)
	}
	if code, _, _ := alice.post("/schedules/nightly-fast/pause", url.Values{"csrf": {"forged"}, "reason": {"x"}}); code != http.StatusForbidden {
		t.Errorf("pause with a forged CSRF token: %d", code)
	}
	csrf := csrfOf(t, body)
	if code, _, body := alice.post("/schedules/nightly-fast/pause", url.Values{"csrf": {csrf}, "reason": {""}}); code != http.StatusBadRequest || !strings.Contains(body, "reason: missing") {
		t.Errorf("pause without a reason: %d %s", code, body)
	}
	if code, loc, body := alice.post("/schedules/nightly-fast/pause", url.Values{"csrf": {csrf}, "reason": {"change freeze"}}); code != http.StatusSeeOther || loc != "/schedules/nightly-fast" {
		t.Fatalf("pause: %d %s %s", code, loc, body)
	}
	_, _, body = alice.get("/schedules/nightly-fast")
	if !strings.Contains(body, "paused</span> by <strong>user:alice</strong>") || !strings.Contains(body, "“change freeze”") || !strings.Contains(body, `id="resume"`) {
		t.Errorf("paused page:\n%s", body)
	}
	vera := f.person("vera")
	vera.login(password)
	_, _, vbody := vera.get("/schedules/nightly-fast")
	if strings.Contains(vbody, `id="resume"`) || !strings.Contains(vbody, "paused") {
		t.Errorf("a viewer sees the controls:\n%s", vbody)
	}
	if code, _, _ := vera.post("/schedules/nightly-fast/resume", url.Values{"csrf": {csrfOf(t, vbody)}}); code != http.StatusForbidden {
		t.Errorf("resume by a viewer: %d", code)
	}
	if code, _, body := alice.post("/schedules/nightly-fast/resume", url.Values{"csrf": {csrfOf(t, body)}, "reason": {"over"}}); code != http.StatusSeeOther {
		t.Errorf("resume: %d %s", code, body)
	}
	if code, _, body := alice.get("/schedules/nope"); code != http.StatusNotFound || !strings.Contains(body, "no such PatchSchedule: nope") {
		t.Errorf("unknown schedule: %d", code)
	}
}
