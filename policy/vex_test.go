package policy

import (
	"os"
	"testing"
	"time"

	"github.com/patchbay/patchbay/fleet"
)

func TestOpenVEX(t *testing.T) {
	data, err := os.ReadFile("../docs/policy-example/vex/openssl.openvex.json")
	if err != nil {
		t.Fatal(err)
	}
	docs, err := ownKinds.ParseFile("openssl.openvex.json", data)
	if err != nil {
		t.Fatal(err)
	}
	// One not_affected statement; the one under investigation says nothing.
	if len(docs) != 1 {
		t.Fatalf("%d exceptions, want 1", len(docs))
	}
	again, _ := ownKinds.ParseFile("openssl.openvex.json", data)
	if again[0].Metadata.Name != docs[0].Metadata.Name {
		t.Errorf("importing twice names the statement differently: %s, %s", docs[0].Metadata.Name, again[0].Metadata.Name)
	}
	ex := docs[0].Spec.(*ExceptionSpec)
	if ex.State != fleet.StateNotAffected || ex.Source != "https://example.com/vex/checkout-2026-11" ||
		ex.Justification != "vulnerable_code_not_in_execute_path: The affected PKCS#12 parser is never called: checkout loads keys from PEM only." {
		t.Errorf("exception: %+v", ex)
	}
	set, err := NewSet(docs)
	if err != nil {
		t.Fatal(err)
	}
	c := set.Context(Asset{ID: "h", Labels: map[string]string{}})
	now := time.Now()
	for _, tc := range []struct {
		in   Inputs
		want fleet.State
	}{
		{Inputs{Vulnerability: "CVE-2026-54872", Ecosystem: "Debian:12", Package: "openssl", Version: "3.0.17-1~deb12u2"}, fleet.StateNotAffected},
		{Inputs{Vulnerability: "CVE-2026-42767", Ecosystem: "Debian:12", Package: "openssl", Version: "3.0.17-1~deb12u2"}, fleet.StateOpen},
		{Inputs{Vulnerability: "CVE-2026-54872", Ecosystem: "PyPI", Package: "openssl", Version: "1.0"}, fleet.StateOpen},
		{Inputs{Vulnerability: "CVE-2026-54872", Ecosystem: "Debian:12", Package: "openssl-provider-legacy", Version: "1"}, fleet.StateOpen},
	} {
		d := set.Decide(tc.in, c, now)
		if d.State != tc.want {
			t.Errorf("%+v: %s, want %s", tc.in, d.State, tc.want)
		}
		if tc.want == fleet.StateNotAffected && d.Reasons[len(d.Reasons)-1] != "not affected per Exception/"+docs[0].Metadata.Name+" (https://example.com/vex/checkout-2026-11): "+ex.Justification {
			t.Errorf("reason: %q", d.Reasons[len(d.Reasons)-1])
		}
	}
}

func TestCycloneDXVEX(t *testing.T) {
	data, err := os.ReadFile("testdata/app.cdx.json")
	if err != nil {
		t.Fatal(err)
	}
	docs, err := ownKinds.ParseFile("app.cdx.json", data)
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) != 1 {
		t.Fatalf("%d exceptions, want 1 (the exploitable one is not an exception)", len(docs))
	}
	ex := docs[0].Spec.(*ExceptionSpec)
	if ex.Packages[0] != "pkg:pypi/jinja2@3.1.2" || ex.ApprovedBy != "Billing security" || ex.Justification != "code_not_reachable: Templates are never built from user input." {
		t.Errorf("exception: %+v", ex)
	}
	set, err := NewSet(docs)
	if err != nil {
		t.Fatal(err)
	}
	c := set.Context(Asset{ID: "h", Labels: map[string]string{}})
	// The statement is about version 3.1.2 only.
	if d := set.Decide(Inputs{Vulnerability: "CVE-2024-22195", Ecosystem: "PyPI", Package: "jinja2", Version: "3.1.2"}, c, time.Now()); d.State != fleet.StateNotAffected {
		t.Errorf("jinja2 3.1.2: %s", d.State)
	}
	if d := set.Decide(Inputs{Vulnerability: "CVE-2024-22195", Ecosystem: "PyPI", Package: "jinja2", Version: "3.1.1"}, c, time.Now()); d.State != fleet.StateOpen {
		t.Errorf("jinja2 3.1.1: %s", d.State)
	}
}

func TestBadVEX(t *testing.T) {
	for name, tc := range map[string]struct{ data, want string }{
		"not json":         {"{", "x.json: not a JSON VEX document: unexpected end of JSON input"},
		"neither":          {`{"a": 1}`, "x.json: not a VEX document: want OpenVEX (@context) or CycloneDX (bomFormat)"},
		"no vulnerability": {`{"@context": "https://openvex.dev/ns/v0.2.0", "statements": [{"status": "not_affected", "products": ["pkg:npm/x"]}]}`, "x.json: statements[0].vulnerability: missing"},
		"dangling ref": {`{"bomFormat": "CycloneDX", "specVersion": "1.5", "vulnerabilities": [{"id": "CVE-1", "analysis": {"state": "not_affected"}, "affects": [{"ref": "nothing"}]}]}`,
			`x.json: vulnerabilities[0].affects: "nothing" names no component with a package URL`},
	} {
		_, err := ownKinds.ParseFile("x.json", []byte(tc.data))
		if err == nil || err.Error() != tc.want {
			t.Errorf("%s: %v\nwant %s", name, err, tc.want)
		}
	}
}
