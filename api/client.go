package api

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

// StatusError is an error response from the server.
type StatusError struct {
	Status int
	Body   Error
}

func (e *StatusError) Error() string {
	msg := e.Body.Error
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	if e.Body.Field != "" {
		return fmt.Sprintf("server: %s (%d, field %s)", msg, e.Status, e.Body.Field)
	}
	return fmt.Sprintf("server: %s (%d)", msg, e.Status)
}

// IsStatus tells whether err is a StatusError with that status.
func IsStatus(err error, status int) bool {
	var se *StatusError
	return errors.As(err, &se) && se.Status == status
}

// CodeOf returns the error code of a StatusError, "" for other errors.
func CodeOf(err error) string {
	var se *StatusError
	if errors.As(err, &se) {
		return se.Body.Code
	}
	return ""
}

// Client calls the API.
type Client struct {
	// Base is the server's URL: https://patchbay.example:8443.
	Base  string
	Token string
	HTTP  *http.Client
	// GzipAbove compresses request bodies larger than this many bytes
	// (0: never).
	GzipAbove int
	UserAgent string
}

// NewHTTPClient returns an HTTP client for the server: TLS verified by the
// system roots, a CA file, or a pinned certificate fingerprint.
func NewHTTPClient(caFile, pin string) (*http.Client, error) {
	cfg, err := TLSConfig(caFile, pin)
	if err != nil {
		return nil, err
	}
	return &http.Client{
		Timeout: 2 * time.Minute,
		Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
			TLSClientConfig:       cfg,
			TLSHandshakeTimeout:   10 * time.Second,
			ResponseHeaderTimeout: 90 * time.Second,
			MaxIdleConnsPerHost:   64,
			IdleConnTimeout:       90 * time.Second,
		},
	}, nil
}

// Fingerprint is a certificate's pin: "sha256:" and the hex SHA-256 of
// its DER bytes.
func Fingerprint(der []byte) string {
	h := sha256.Sum256(der)
	return "sha256:" + hex.EncodeToString(h[:])
}

// TLSConfig verifies the server by a CA file (PEM) or by the pinned
// fingerprint of its certificate; with neither, by the system roots.
func TLSConfig(caFile, pin string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		b, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("--ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("--ca %s: no PEM certificate in it", caFile)
		}
		cfg.RootCAs = pool
	}
	if pin != "" {
		want := strings.ToLower(strings.TrimSpace(pin))
		if !strings.HasPrefix(want, "sha256:") {
			want = "sha256:" + want
		}
		if len(want) != len("sha256:")+64 {
			return nil, fmt.Errorf("--pin %q: want sha256: and 64 hex digits, as the server prints", pin)
		}
		// The pin replaces name and chain verification: the server's
		// certificate must be exactly the pinned one.
		cfg.InsecureSkipVerify = true
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("server sent no certificate")
			}
			if got := Fingerprint(cs.PeerCertificates[0].Raw); got != want {
				return fmt.Errorf("server certificate %s does not match the pinned %s", got, want)
			}
			return nil
		}
	}
	return cfg, nil
}

// Do sends in (JSON, unless nil) and decodes the response into out
// (unless nil). Error responses come back as *StatusError.
func (c *Client) Do(ctx context.Context, method, path string, in, out any) error {
	if in == nil {
		return c.DoRaw(ctx, method, path, nil, false, out)
	}
	b, gz, err := c.Encode(in)
	if err != nil {
		return err
	}
	return c.DoRaw(ctx, method, path, b, gz, out)
}

// Encode is the request body Do sends for in: JSON, gzip-compressed
// above GzipAbove bytes.
func (c *Client) Encode(in any) (body []byte, gz bool, err error) {
	b, err := json.Marshal(in)
	if err != nil {
		return nil, false, err
	}
	if c.GzipAbove > 0 && len(b) > c.GzipAbove {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		zw.Write(b)
		zw.Close()
		return buf.Bytes(), true, nil
	}
	return b, false, nil
}

// DoRaw is Do with a body already encoded (gz: gzip-compressed).
func (c *Client) DoRaw(ctx context.Context, method, path string, in []byte, gz bool, out any) error {
	var body io.Reader
	if in != nil {
		body = bytes.NewReader(in)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(c.Base, "/")+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if gz {
		req.Header.Set("Content-Encoding", "gzip")
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	if c.UserAgent != "" {
		req.Header.Set("User-Agent", c.UserAgent)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		se := &StatusError{Status: resp.StatusCode}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if json.Unmarshal(b, &se.Body) != nil {
			se.Body.Error = strings.TrimSpace(string(b))
		}
		return se
	}
	if out == nil {
		_, err := io.Copy(io.Discard, resp.Body)
		return err
	}
	if w, ok := out.(io.Writer); ok {
		_, err := io.Copy(w, resp.Body)
		return err
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: decode response: %w", method, path, err)
	}
	return nil
}
