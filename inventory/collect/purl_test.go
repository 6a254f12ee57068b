package collect

import (
	"context"
	"testing"

	"github.com/google/osv-scalibr/purl"

	"github.com/patchbay/patchbay/internal/sharedtest"
)

// TestPURLStringMatchesPackageURL checks that purlString renders what
// packageurl-go renders, on awkward inputs and on every package of the
// shared lockfile corpus.
func TestPURLStringMatchesPackageURL(t *testing.T) {
	cases := []purl.PackageURL{
		{Type: "pypi", Name: "requests", Version: "2.31.0"},
		{Type: "golang", Namespace: "github.com/foo", Name: "bar", Version: "v1.2.3+incompatible"},
		{Type: "golang", Namespace: "//github.com//foo/", Name: "bar baz", Version: "v0.0.0-2020 x"},
		{Type: "npm", Namespace: "@scope", Name: "pkg", Version: "1.0.0-rc.1"},
		{Type: "deb", Namespace: "debian", Name: "libssl3", Version: "1:3.0.11-1~deb12u2",
			Qualifiers: purl.Qualifiers{{Key: "distro", Value: "debian 12"}, {Key: "arch", Value: "amd64"}, {Key: "source", Value: "openssl:3+x"}}},
		{Type: "maven", Namespace: "org.apache", Name: "commons", Version: "1.0", Subpath: "/a b//c:d/"},
		{Type: "generic", Name: "ünïcode/ name?#&=%", Version: "1.0#2?3&4"},
		{Type: "pypi", Name: "x"},
	}
	for _, c := range cases {
		c := c
		want := c.String()
		if got := purlString(&c); got != want {
			t.Errorf("purlString(%+v) = %q, packageurl-go says %q", c, got, want)
		}
	}
	inv, err := Collect(context.Background(), Options{Paths: []string{sharedtest.Dir(t, "corpus/lockfiles")}})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, p := range inv.Packages {
		u, err := purl.FromString(p.PURL)
		if err != nil {
			continue
		}
		n++
		if got, want := purlString(&u), u.String(); got != want {
			t.Errorf("%s %s: purlString = %q, packageurl-go says %q", p.Name, p.Version, got, want)
		}
	}
	if n < 3000 {
		t.Errorf("only %d corpus packages have a purl", n)
	}
}
