package web_test

import (
	"context"
	"strings"
	"testing"

	"github.com/patchbay/patchbay/api/policyapi"
)

// TestHostPageScores: a host's page shows its levels on the host
// scorecards, as the API keeps them.
func TestHostPageScores(t *testing.T) {
	f := newFixture(t, nil)
	card := `apiVersion: patchbay/v1
kind: Scorecard
metadata: {name: host-hygiene}
spec:
  entity: host
  levels: [{name: bronze}, {name: silver}]
  rules:
    - {name: named, level: bronze, expr: 'hostname != ""', message: name it}
    - {name: never, level: silver, expr: 'hostname == "nobody"', message: Rename the host to nobody.}
`
	f.apiDo("POST", "/policy/apply", policyapi.ApplyRequest{Files: []policyapi.PolicyFile{{Name: "hosts.yaml", Content: card}}}, nil)
	if _, err := f.srv.ScoreNow(context.Background()); err != nil {
		t.Fatal(err)
	}
	vera := f.person("vera")
	vera.login(password)
	code, _, page := vera.get("/hosts/" + f.hosts[0].id)
	if code != 200 {
		t.Fatalf("host page: %d\n%s", code, page)
	}
	// One rule of two passes: bronze, 50.0.
	for _, w := range []string{`id="host-scores"`, `<a href="/scorecards/host-hygiene">host-hygiene</a>`, `<span class="tag">bronze</span>`, "50.0", "Rename the host to nobody."} {
		if !strings.Contains(page, w) {
			t.Errorf("no %q in the host page", w)
		}
	}
	// The scorecard's page lists the host by its key, unlinked.
	_, _, cpage := vera.get("/scorecards/host-hygiene")
	if want := "<td>host/" + f.hosts[0].name + "</td>"; !strings.Contains(cpage, want) {
		t.Errorf("no %q in the scorecard page:\n%s", want, cpage)
	}
}
