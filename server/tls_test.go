package server_test

import (
	"crypto/tls"
	"testing"

	"github.com/patchbay/patchbay/server"
)

// TestTLS12OnlyAEAD: a TLS 1.2 client offering only CBC suites gets no
// handshake; one offering an ECDHE AEAD suite does.
func TestTLS12OnlyAEAD(t *testing.T) {
	cert, _, err := server.SelfSigned(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", server.TLSConfig(cert))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				c.(*tls.Conn).Handshake()
				c.Close()
			}()
		}
	}()
	dial := func(suites ...uint16) (uint16, error) {
		c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12, CipherSuites: suites})
		if err != nil {
			return 0, err
		}
		defer c.Close()
		return c.ConnectionState().CipherSuite, nil
	}
	if s, err := dial(tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA,
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256); err == nil {
		t.Errorf("a TLS 1.2 CBC-only client got %s", tls.CipherSuiteName(s))
	}
	for _, want := range []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256} {
		s, err := dial(want)
		if err != nil {
			t.Errorf("%s: %v", tls.CipherSuiteName(want), err)
		} else if s != want {
			t.Errorf("offered %s, got %s", tls.CipherSuiteName(want), tls.CipherSuiteName(s))
		}
	}
	for _, s := range server.TLS12Suites() {
		for _, bad := range tls.InsecureCipherSuites() {
			if s == bad.ID {
				t.Errorf("%s is insecure", bad.Name)
			}
		}
	}
}
