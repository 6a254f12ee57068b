package cli

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/patchbay/patchbay/api"
	"github.com/patchbay/patchbay/auth"
	"github.com/patchbay/patchbay/fleet"
)

// TestCompletion: cobra's dynamic completion (what `patchbay completion
// bash` scripts call) offers kinds, and the hosts of the server the
// command talks to by hostname and id.
func TestCompletion(t *testing.T) {
	code, out, _ := run(t, t.TempDir(), "__complete", "get", "")
	if code != ExitOK || !strings.Contains(out, "services\n") || !strings.Contains(out, "policies\n") || !strings.Contains(out, "rolloutstrategies\n") {
		t.Errorf("kinds: %d %q", code, out)
	}
	for args, want := range map[string]string{
		"findings list --priority": "P1\nP2\nP3\nP4\n:4\n",
		"scan -o":                  "table\njson\nsarif\ncyclonedx\n:4\n",
		"hosts list -o":            "table\njson\nyaml\n:4\n",
		"plan create --cycle":      "system\napplication\n:4\n",
	} {
		if code, out, _ := run(t, t.TempDir(), append(append([]string{"__complete"}, strings.Fields(args)...), "")...); code != ExitOK || out != want {
			t.Errorf("%s: %d %q, want %q", args, code, out, want)
		}
	}
	r, _ := startInDir(t, t.TempDir())
	enrolled, _ := enrollHost(t, r, fleet.Facts{Hostname: "web-7", MachineID: "m-7", OSID: "debian", OSVersion: "12", Ecosystem: "Debian:12"})
	t.Setenv(envServer, r.url)
	t.Setenv(envPin, r.fingerprint)
	t.Setenv(envToken, r.adminToken)
	code, out, _ = run(t, t.TempDir(), "__complete", "hosts", "show", "")
	if code != ExitOK || !strings.Contains(out, "web-7\t"+enrolled.HostID+"\n") || !strings.Contains(out, enrolled.HostID+"\tweb-7\n") {
		t.Errorf("hosts show: %d %q", code, out)
	}
	code, out, _ = run(t, t.TempDir(), "__complete", "findings", "list", "--host", "")
	if code != ExitOK || !strings.Contains(out, "web-7\t") {
		t.Errorf("findings list --host: %d %q", code, out)
	}
	// Unreachable: nothing, and no error.
	code, out, _ = run(t, t.TempDir(), "__complete", "hosts", "show", "--server", "https://127.0.0.1:1", "")
	if code != ExitOK || strings.Contains(out, "web-7") {
		t.Errorf("unreachable server: %d %q", code, out)
	}
}

// enrollHost enrolls a host on the running server through the API, as an
// agent does, and returns its enrollment and a client holding its
// credential.
func enrollHost(t *testing.T, r *running, facts fleet.Facts) (api.EnrollResponse, *api.Client) {
	t.Helper()
	ctx := context.Background()
	secret, id, hash, err := auth.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.db.Tokens.Create(ctx, auth.Token{ID: id, Kind: auth.KindEnrollment, Role: auth.Agent, Created: time.Now(), UsesLeft: 1}, hash); err != nil {
		t.Fatal(err)
	}
	hc, err := api.NewHTTPClient("", r.fingerprint)
	if err != nil {
		t.Fatal(err)
	}
	var enrolled api.EnrollResponse
	c := &api.Client{Base: r.url, HTTP: hc, Token: secret}
	if err := c.Do(ctx, "POST", api.Prefix+"/agent/enroll", api.EnrollRequest{Facts: facts}, &enrolled); err != nil {
		t.Fatal(err)
	}
	c.Token = enrolled.Credential
	return enrolled, c
}
