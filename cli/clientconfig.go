package cli

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/spf13/pflag"

	"github.com/patchbay/patchbay/api"
)

// The environment variables of clientConfig.
const (
	envServer = "PATCHBAY_SERVER"
	envCA     = "PATCHBAY_CA"
	envPin    = "PATCHBAY_PIN"
	envToken  = "PATCHBAY_TOKEN"
)

var (
	errNoServer = errors.New("--server: give the server's URL (or set " + envServer + ")")
	errNoToken  = errors.New("no API token: set " + envToken + " (an admin makes one with `patchbay admin token create --role viewer`; " +
		"the first admin token is printed at the server's first start, and another is made on the server's host with " +
		"`patchbay admin token create --role admin --local --data-dir DIR`)")
)

// clientConfig is how a command reaches the server: its URL and how its
// certificate is trusted (a CA file or a pinned fingerprint; the system
// roots when neither is given). The API commands (hosts, findings, vulns,
// policy, plan, scan --upload, and admin token, audit and feeds status
// when they act on the server) add the token in PATCHBAY_TOKEN; the agent
// authenticates with its enrollment token and host credential instead.
type clientConfig struct {
	server, ca, pin string
}

// clientFlags says which flags bind registers.
type clientFlags struct {
	// serverHelp is the help of --server; "" means "server URL (env
	// PATCHBAY_SERVER)".
	serverHelp string
	// trust registers --ca and --pin; without them the CA and the pin
	// come from the environment only.
	trust bool
}

// bind reads PATCHBAY_SERVER, PATCHBAY_CA and PATCHBAY_PIN into c, once,
// and registers --server (and, with trust, --ca and --pin) on f with those
// values as defaults: a flag given on the command line wins over the
// environment.
func (c *clientConfig) bind(f *pflag.FlagSet, opts clientFlags) {
	c.server, c.ca, c.pin = os.Getenv(envServer), os.Getenv(envCA), os.Getenv(envPin)
	help := opts.serverHelp
	if help == "" {
		help = "server URL (env " + envServer + ")"
	}
	f.StringVar(&c.server, "server", c.server, help)
	if opts.trust {
		f.StringVar(&c.ca, "ca", c.ca, "CA certificate (PEM) that signed the server's certificate (env "+envCA+")")
		f.StringVar(&c.pin, "pin", c.pin, "the server's certificate fingerprint to pin, sha256:… (env "+envPin+")")
	}
}

// check fails when no server is named, or when it is not a URL.
func (c *clientConfig) check() error {
	if c.server == "" {
		return errNoServer
	}
	return checkServerURL(c.server)
}

// checkServerURL refuses what is not an http(s) URL of a host, saying what
// to give instead ("patchbay.example:8443" → https://patchbay.example:8443).
func checkServerURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		guess := "https://" + strings.TrimPrefix(strings.TrimPrefix(s, "//"), "/")
		if err == nil && u.Scheme != "" && u.Scheme != "https" && u.Scheme != "http" && u.Opaque == "" && u.Host != "" {
			guess = "https://" + u.Host + u.Path
		}
		return fmt.Errorf("--server %q (or %s): not a URL of the server; give its scheme and address, e.g. %s", s, envServer, guess)
	}
	return nil
}

// explain adds what to do to the errors a client of the server meets first:
// a certificate this machine does not trust, a server that does not
// answer, a refused credential; and to -o given a path. cmd is the command
// that failed (nil when none was found).
func explain(cmd *cobra.Command, err error) error {
	var ua x509.UnknownAuthorityError
	var cv *tls.CertificateVerificationError
	var hn x509.HostnameError
	var op *outputPathError
	var ne *net.OpError
	agent := cmd != nil && cmd.Name() == "agent"
	switch {
	case errors.As(err, &op):
		if cmd != nil && cmd.Flags().Lookup("output-file") != nil {
			return fmt.Errorf("%w; did you mean --output-file %s?", err, op.value)
		}
		return fmt.Errorf("%w; to write a file, redirect: -o json > %s", err, op.value)
	case errors.As(err, &ua) || (errors.As(err, &cv) && errors.As(cv.Err, &ua)):
		return fmt.Errorf("%w\nhint: the server's certificate is not signed by a CA this machine trusts; pin it with --pin sha256:… (env %s) — `patchbay server fingerprint` prints it where the server runs, quickstart and the server print it at start — or give the CA with --ca FILE (env %s)", err, envPin, envCA)
	case errors.As(err, &hn):
		return fmt.Errorf("%w\nhint: the certificate is not for this name; use the name it was made for, or pin it with --pin (env %s)", err, envPin)
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("%w\nhint: nothing listens there: is the server running, and is --server (env %s) its address and port?", err, envServer)
	case errors.As(err, &ne) && ne.Op == "dial":
		return fmt.Errorf("%w\nhint: the server cannot be reached: check --server (env %s) and the network", err, envServer)
	case api.IsStatus(err, 400) && strings.Contains(err.Error(), "HTTP request to an HTTPS server"):
		return fmt.Errorf("%w\nhint: the server speaks HTTPS: give --server https://… (env %s)", err, envServer)
	case api.IsStatus(err, 401) && agent:
		return fmt.Errorf("%w\nhint: the server refused this agent's credential (revoked, or enrolled with another server): enroll the host again with a new token (`patchbay admin token create --enrollment`) after removing the credential from the agent's state dir", err)
	case api.IsStatus(err, 401):
		return fmt.Errorf("%w\nhint: the server refused the token in %s; make one with `patchbay admin token create --role viewer` (an admin token is printed at the server's first start)", err, envToken)
	}
	return err
}

// client returns a client of the server without a token.
func (c *clientConfig) client(userAgent string) (*api.Client, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	hc, err := api.NewHTTPClient(c.ca, c.pin)
	if err != nil {
		return nil, err
	}
	return &api.Client{Base: serverBase(c.server), HTTP: hc, UserAgent: userAgent}, nil
}

// apiClient returns a client of the server's API with the token in
// PATCHBAY_TOKEN (read now, not when the flags were bound).
func (c *clientConfig) apiClient() (*api.Client, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	token := os.Getenv(envToken)
	if token == "" {
		return nil, errNoToken
	}
	cl, err := c.client("patchbay-cli/" + Version)
	if err != nil {
		return nil, err
	}
	cl.Token = token
	return cl, nil
}

// serverBase is the server's URL without the API prefix a user may have
// copied with it (quickstart prints https://…:8443/api/v1 as the API) and
// without a trailing slash.
func serverBase(s string) string {
	s = strings.TrimRight(s, "/")
	return strings.TrimRight(strings.TrimSuffix(s, api.Prefix), "/")
}
