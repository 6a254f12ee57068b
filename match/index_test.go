package match

import (
	"testing"

	"github.com/patchbay/patchbay/advisory"
	"github.com/patchbay/patchbay/inventory"
)

func rng(typ string, events ...advisory.Event) advisory.Range {
	return advisory.Range{Type: typ, Events: events}
}

func intro(v string) advisory.Event { return advisory.Event{Introduced: v} }
func fixed(v string) advisory.Event { return advisory.Event{Fixed: v} }
func last(v string) advisory.Event  { return advisory.Event{LastAffected: v} }
func limit(v string) advisory.Event { return advisory.Event{Limit: v} }

func adv(id, eco, name string, ranges []advisory.Range, versions ...string) *advisory.Advisory {
	return &advisory.Advisory{ID: id, Affected: []advisory.Affected{{Ecosystem: eco, Name: name, Ranges: ranges, Versions: versions}}}
}

func TestMatchEdges(t *testing.T) {
	eco := advisory.RangeEcosystem
	sem := advisory.RangeSemver
	cases := []struct {
		name      string
		adv       *advisory.Advisory
		pkg       inventory.Package
		wantHit   bool
		wantFixed string
	}{
		{"epoch: 1:9.2p1-2 below 1:9.2p1-2+deb12u3",
			adv("A", "Debian:12", "openssh", []advisory.Range{rng(eco, intro("0"), fixed("1:9.2p1-2+deb12u3"))}),
			inventory.Package{Ecosystem: "Debian:12", Name: "openssh-client", Version: "1:9.2p1-2+deb12u2", SourceName: "openssh", SourceVersion: "1:9.2p1-2+deb12u2"},
			true, "1:9.2p1-2+deb12u3"},
		{"epoch: epoch 1 beats any epoch-0 fix",
			adv("A", "Debian:12", "openssh", []advisory.Range{rng(eco, intro("0"), fixed("9.9p1-1"))}),
			inventory.Package{Ecosystem: "Debian:12", Name: "openssh-client", Version: "1:9.2p1-2", SourceName: "openssh", SourceVersion: "1:9.2p1-2"},
			false, ""},
		{"tilde: ~deb12u1 sorts before the release",
			adv("A", "Debian:12", "openssl", []advisory.Range{rng(eco, intro("0"), fixed("3.0.11-1"))}),
			inventory.Package{Ecosystem: "Debian:12", Name: "libssl3", Version: "3.0.11-1~deb12u2", SourceName: "openssl", SourceVersion: "3.0.11-1~deb12u2"},
			true, "3.0.11-1"},
		{"+debNuM: deb12u2 fixes deb12u1",
			adv("A", "Debian:12", "curl", []advisory.Range{rng(eco, intro("0"), fixed("7.88.1-10+deb12u2"))}),
			inventory.Package{Ecosystem: "Debian:12", Name: "curl", Version: "7.88.1-10+deb12u2", SourceName: "curl", SourceVersion: "7.88.1-10+deb12u2"},
			false, ""},
		{"+debNuM: deb12u10 is above deb12u9 (numeric, not text)",
			adv("A", "Debian:12", "curl", []advisory.Range{rng(eco, intro("0"), fixed("7.88.1-10+deb12u9"))}),
			inventory.Package{Ecosystem: "Debian:12", Name: "curl", Version: "7.88.1-10+deb12u10", SourceName: "curl", SourceVersion: "7.88.1-10+deb12u10"},
			false, ""},
		{"binNMU: +b1 binary matched on its source version",
			adv("A", "Debian:12", "zlib", []advisory.Range{rng(eco, intro("0"), last("1:1.2.13.dfsg-1"))}),
			inventory.Package{Ecosystem: "Debian:12", Name: "zlib1g", Version: "1:1.2.13.dfsg-1+b1", SourceName: "zlib", SourceVersion: "1:1.2.13.dfsg-1"},
			true, ""},
		{"source name and version differ from the binary's",
			adv("A", "Debian:12", "gcc-defaults", []advisory.Range{rng(eco, intro("0"), fixed("1.204"))}),
			inventory.Package{Ecosystem: "Debian:12", Name: "cpp", Version: "4:12.2.0-3", SourceName: "gcc-defaults", SourceVersion: "1.203"},
			true, "1.204"},
		{"last_affected is inclusive",
			adv("A", "PyPI", "jinja2", []advisory.Range{rng(eco, intro("2.0"), last("3.1.2"))}),
			inventory.Package{Ecosystem: "PyPI", Name: "Jinja2", Version: "3.1.2"}, true, ""},
		{"last_affected: above it is not affected",
			adv("A", "PyPI", "jinja2", []advisory.Range{rng(eco, intro("2.0"), last("3.1.2"))}),
			inventory.Package{Ecosystem: "PyPI", Name: "Jinja2", Version: "3.1.3"}, false, ""},
		{"several ranges: in the second",
			adv("A", "PyPI", "django", []advisory.Range{rng(eco, intro("0"), fixed("3.2.20")), rng(eco, intro("4.0"), fixed("4.1.10"))}),
			inventory.Package{Ecosystem: "PyPI", Name: "Django", Version: "4.1.2"}, true, "4.1.10"},
		{"several ranges: between them",
			adv("A", "PyPI", "django", []advisory.Range{rng(eco, intro("0"), fixed("3.2.20")), rng(eco, intro("4.0"), fixed("4.1.10"))}),
			inventory.Package{Ecosystem: "PyPI", Name: "Django", Version: "3.2.25"}, false, ""},
		{"several events in one range, smallest fix above installed",
			adv("A", "PyPI", "django", []advisory.Range{rng(eco, intro("0"), fixed("3.2.20"), intro("4.0"), fixed("4.1.10"))}),
			inventory.Package{Ecosystem: "PyPI", Name: "django", Version: "3.2.1"}, true, "3.2.20"},
		{"explicit versions without ranges",
			adv("A", "PyPI", "trac", nil, "0.8.4", "0.9"),
			inventory.Package{Ecosystem: "PyPI", Name: "Trac", Version: "0.9"}, true, ""},
		{"explicit versions written differently (PEP 440 1.0 == 1.0.0)",
			adv("A", "PyPI", "trac", nil, "1.0"),
			inventory.Package{Ecosystem: "PyPI", Name: "trac", Version: "1.0.0"}, true, ""},
		{"explicit versions: not listed",
			adv("A", "PyPI", "trac", nil, "0.8.4", "0.9"),
			inventory.Package{Ecosystem: "PyPI", Name: "trac", Version: "0.10"}, false, ""},
		{"limit ends the range",
			adv("A", "Go", "example.com/m", []advisory.Range{rng(sem, intro("1.0.0"), limit("1.5.0"))}),
			inventory.Package{Ecosystem: "Go", Name: "example.com/m", Version: "1.5.0"}, false, ""},
		{"PyPI PEP 503 name normalisation",
			adv("A", "PyPI", "python_dateutil", []advisory.Range{rng(eco, intro("0"), fixed("2.8.1"))}),
			inventory.Package{Ecosystem: "PyPI", Name: "Python.DateUtil", Version: "2.7.0"}, true, "2.8.1"},
		{"PyPI pre-release below the release",
			adv("A", "PyPI", "pillow", []advisory.Range{rng(eco, intro("0"), fixed("10.0.0"))}),
			inventory.Package{Ecosystem: "PyPI", Name: "Pillow", Version: "10.0.0rc1"}, true, "10.0.0"},
		{"Go pseudo-version below the fix",
			adv("A", "Go", "github.com/azure/go-ntlmssp", []advisory.Range{rng(sem, intro("0"), fixed("0.0.0-20221128193559-754e69321358"))}),
			inventory.Package{Ecosystem: "Go", Name: "github.com/azure/go-ntlmssp", Version: "0.0.0-20200615164410-66371956d46c"}, true, "0.0.0-20221128193559-754e69321358"},
		{"Go module paths are case-sensitive",
			adv("A", "Go", "github.com/Azure/go-ntlmssp", []advisory.Range{rng(sem, intro("0"))}),
			inventory.Package{Ecosystem: "Go", Name: "github.com/azure/go-ntlmssp", Version: "1.0.0"}, false, ""},
		{"Go +incompatible compares as its release",
			adv("A", "Go", "github.com/docker/docker", []advisory.Range{rng(sem, intro("0"), fixed("20.10.11+incompatible"))}),
			inventory.Package{Ecosystem: "Go", Name: "github.com/docker/docker", Version: "20.10.7+incompatible"}, true, "20.10.11+incompatible"},
		{"Go stdlib from the toolchain",
			adv("A", "Go", "stdlib", []advisory.Range{rng(sem, intro("0"), fixed("1.19.8"), intro("1.20.0-0"), fixed("1.20.3"))}),
			inventory.Package{Ecosystem: "Go", Name: "stdlib", Version: "1.20.1"}, true, "1.20.3"},
		{"different ecosystem release is not matched",
			adv("A", "Debian:11", "curl", []advisory.Range{rng(eco, intro("0"), fixed("9"))}),
			inventory.Package{Ecosystem: "Debian:12", Name: "curl", Version: "7.88.1-10", SourceName: "curl", SourceVersion: "7.88.1-10"}, false, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ix := NewIndex()
			ix.Add(c.adv)
			if len(ix.Problems) > 0 {
				t.Fatalf("problems compiling: %v", ix.Problems)
			}
			hits := ix.Match(c.pkg)
			if got := len(hits) > 0; got != c.wantHit {
				t.Fatalf("hit = %v, want %v", got, c.wantHit)
			}
			if c.wantHit && hits[0].Fixed != c.wantFixed {
				t.Errorf("fixed = %q, want %q", hits[0].Fixed, c.wantFixed)
			}
		})
	}
}

func TestIndexReportsBadVersions(t *testing.T) {
	ix := NewIndex()
	ix.Add(adv("BAD-1", "Debian:12", "x", []advisory.Range{rng(advisory.RangeEcosystem, intro("0"), fixed("a:1"))}))
	if len(ix.Problems) != 1 {
		t.Fatalf("problems = %v, want one", ix.Problems)
	}
	// The unparsable fix is ignored; the range is open and still matches.
	if hits := ix.Match(inventory.Package{Ecosystem: "Debian:12", Name: "x", Version: "1.0"}); len(hits) != 1 || hits[0].Fixed != "" {
		t.Fatalf("hits = %+v", hits)
	}
}

func TestNormalizeName(t *testing.T) {
	cases := []struct{ eco, in, want string }{
		{"PyPI", "Django", "django"},
		{"PyPI", "python_dateutil", "python-dateutil"},
		{"PyPI", "zope.interface", "zope-interface"},
		{"PyPI", "a__b--c..d", "a-b-c-d"},
		{"npm", "@Types/Node", "@types/node"},
		{"Go", "github.com/Azure/go-autorest/", "github.com/Azure/go-autorest"},
		{"Debian:12", "libSomething", "libSomething"},
	}
	for _, c := range cases {
		if got := NormalizeName(c.eco, c.in); got != c.want {
			t.Errorf("NormalizeName(%s, %q) = %q, want %q", c.eco, c.in, got, c.want)
		}
	}
}

// TestQueryMatchesLikeMatch looks one prepared package up repeatedly, in
// indexes with ECOSYSTEM and SEMVER ranges and under both Debian keys
// ("Debian:12" and "Debian"): every look-up finds what Match finds.
func TestQueryMatchesLikeMatch(t *testing.T) {
	eco, sem := advisory.RangeEcosystem, advisory.RangeSemver
	deb := inventory.Package{Ecosystem: "Debian:12", Name: "libssl3", Version: "3.0.11-1~deb12u2", SourceName: "openssl", SourceVersion: "3.0.11-1~deb12u2"}
	py := inventory.Package{Ecosystem: "PyPI", Name: "Django", Version: "4.1.2"}
	a := NewIndex()
	a.Add(adv("D-1", "Debian:12", "openssl", []advisory.Range{rng(eco, intro("0"), fixed("3.0.13-1~deb12u1"))}))
	a.Add(adv("D-2", "Debian", "openssl", []advisory.Range{rng(eco, intro("3.0.0"), fixed("3.0.11-1~deb12u3"))}))
	a.Add(adv("D-3", "Debian:12", "openssl", []advisory.Range{rng(eco, intro("0"), fixed("3.0.11-1~deb12u1"))}))
	a.Add(adv("P-1", "PyPI", "django", []advisory.Range{rng(eco, intro("4.0"), fixed("4.1.10"))}))
	b := NewIndex()
	b.Add(adv("P-2", "PyPI", "django", []advisory.Range{rng(sem, intro("4.1.0"), fixed("4.1.3"))}, "4.1.2"))
	b.Add(adv("D-4", "Debian", "openssl", nil, "3.0.11-1~deb12u2"))
	for _, p := range []inventory.Package{deb, py} {
		q := NewQuery(p)
		for round := 0; round < 3; round++ {
			for _, ix := range []*Index{a, b} {
				want := ix.Match(p)
				got := ix.AppendQuery(nil, &q)
				if len(got) != len(want) || len(want) == 0 {
					t.Fatalf("%s round %d: AppendQuery = %+v, Match = %+v", p.Name, round, got, want)
				}
				for i := range want {
					if got[i].Advisory != want[i].Advisory || got[i].Fixed != want[i].Fixed {
						t.Errorf("%s round %d hit %d: AppendQuery = %+v, Match = %+v", p.Name, round, i, got[i], want[i])
					}
				}
			}
		}
	}
}
