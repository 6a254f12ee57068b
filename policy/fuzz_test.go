package policy

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/patchbay/patchbay/fleet"
)

// FuzzParse: any input parses or fails with errors, never panics; what
// parses renders as YAML that parses back to the same documents.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("../docs/policy-example/*.yaml")
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add(defaultYAML)
	f.Add([]byte("apiVersion: patchbay/v1\nkind: Service\nmetadata: {name: a}\nspec: {owner: b, tier: 1, exposure: internet, hosts: \"a in (b,c),!d\"}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		docs, err := ownKinds.Parse("f.yaml", data)
		if err != nil {
			if AsErrors(err) == nil {
				t.Fatalf("an error that is not Errors: %v", err)
			}
			return
		}
		var b bytes.Buffer
		if err := Encode(&b, docs); err != nil {
			t.Fatal(err)
		}
		again, err := ownKinds.Parse("again.yaml", b.Bytes())
		if err != nil {
			t.Fatalf("rendered documents do not parse: %v\n%s", err, b.String())
		}
		if len(again) != len(docs) {
			t.Fatalf("%d documents, then %d", len(docs), len(again))
		}
		for i := range docs {
			x, _ := Canonical(docs[i])
			y, _ := Canonical(again[i])
			if !bytes.Equal(x, y) {
				t.Fatalf("round trip changed %s:\n%s\n%s", docs[i].Ref(), x, y)
			}
		}
	})
}

// FuzzSelector: a selector that parses renders to a canonical form that
// parses to itself.
func FuzzSelector(f *testing.F) {
	for _, s := range []string{"env=prod", "role in (web,api),env!=dev", "!legacy,backup", "a notin (b)"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sel, err := ParseSelector(s)
		if err != nil {
			return
		}
		again, err := ParseSelector(sel.String())
		if err != nil || again.String() != sel.String() {
			t.Fatalf("%q → %q → %q (%v)", s, sel.String(), again.String(), err)
		}
	})
}

// FuzzParseVEX: VEX input never panics.
func FuzzParseVEX(f *testing.F) {
	for _, p := range []string{"../docs/policy-example/vex/openssl.openvex.json", "testdata/app.cdx.json"} {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		docs, err := ParseVEX("x.json", data)
		if err == nil {
			for _, d := range docs {
				if d.Spec.(*ExceptionSpec).State != fleet.StateNotAffected {
					t.Fatalf("a VEX statement imported as %q", d.Spec.(*ExceptionSpec).State)
				}
			}
		}
	})
}
