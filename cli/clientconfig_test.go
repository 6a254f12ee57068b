package cli

import (
	"errors"
	"testing"

	"github.com/spf13/pflag"
)

// TestClientConfigBind: the environment gives the defaults, read when the
// flags are bound; a flag on the command line wins; without trust flags the
// CA and the pin still come from the environment.
func TestClientConfigBind(t *testing.T) {
	t.Setenv(envServer, "https://env.example:8443")
	t.Setenv(envCA, "/etc/patchbay/ca.pem")
	t.Setenv(envPin, "sha256:env")

	var c clientConfig
	f := pflag.NewFlagSet("hosts", pflag.ContinueOnError)
	c.bind(f, clientFlags{trust: true})
	t.Setenv(envServer, "https://later.example") // bound already: no effect
	if err := f.Parse([]string{"--pin", "sha256:flag"}); err != nil {
		t.Fatal(err)
	}
	if want := (clientConfig{server: "https://env.example:8443", ca: "/etc/patchbay/ca.pem", pin: "sha256:flag"}); c != want {
		t.Errorf("bound %+v, want %+v", c, want)
	}
	if fl := f.Lookup("server"); fl == nil || fl.Usage != "server URL (env PATCHBAY_SERVER)" {
		t.Errorf("--server flag %+v", fl)
	}

	var s clientConfig
	sf := pflag.NewFlagSet("scan", pflag.ContinueOnError)
	s.bind(sf, clientFlags{serverHelp: "with --upload: server URL"})
	if sf.Lookup("ca") != nil || sf.Lookup("pin") != nil {
		t.Error("scan got --ca or --pin")
	}
	if err := sf.Parse([]string{"--server", "https://flag.example"}); err != nil {
		t.Fatal(err)
	}
	if want := (clientConfig{server: "https://flag.example", ca: "/etc/patchbay/ca.pem", pin: "sha256:env"}); s != want {
		t.Errorf("scan bound %+v, want %+v", s, want)
	}
	if u := sf.Lookup("server").Usage; u != "with --upload: server URL" {
		t.Errorf("scan --server usage %q", u)
	}
}

// TestClientConfigAPIClient: the server is checked first, then the token
// (read when the client is made), then the trust settings.
func TestClientConfigAPIClient(t *testing.T) {
	t.Setenv(envToken, "")
	if _, err := (&clientConfig{}).apiClient(); !errors.Is(err, errNoServer) {
		t.Errorf("no server: %v", err)
	}
	c := &clientConfig{server: "https://s.example", pin: "not-a-fingerprint"}
	if _, err := c.apiClient(); !errors.Is(err, errNoToken) {
		t.Errorf("no token: %v", err)
	}
	t.Setenv(envToken, "pb_token")
	if _, err := c.apiClient(); err == nil {
		t.Error("a malformed pin was accepted")
	}
	c.pin = ""
	cl, err := c.apiClient()
	if err != nil {
		t.Fatal(err)
	}
	if cl.Base != "https://s.example" || cl.Token != "pb_token" || cl.UserAgent != "patchbay-cli/"+Version {
		t.Errorf("client %+v", cl)
	}
	ag, err := c.client("patchbay-agent/" + Version)
	if err != nil {
		t.Fatal(err)
	}
	if ag.Token != "" || ag.UserAgent != "patchbay-agent/"+Version {
		t.Errorf("agent client %+v", ag)
	}
}
