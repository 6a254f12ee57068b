package rollouttest_test

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/patchbay/patchbay/internal/rollouttest"
)

// refs lists the Kind/name of each document of a YAML stream. (Whether the
// documents are valid policy is the business of the tests that apply them.)
func refs(t *testing.T, stream string) string {
	t.Helper()
	var out []string
	dec := yaml.NewDecoder(bytes.NewReader([]byte(stream)))
	for {
		var d struct {
			APIVersion string `yaml:"apiVersion"`
			Kind       string `yaml:"kind"`
			Metadata   struct {
				Name string `yaml:"name"`
			} `yaml:"metadata"`
		}
		err := dec.Decode(&d)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if d.APIVersion != "patchbay/v1" {
			t.Errorf("%s/%s: apiVersion %q", d.Kind, d.Metadata.Name, d.APIVersion)
		}
		out = append(out, d.Kind+"/"+d.Metadata.Name)
	}
	return strings.Join(out, " ")
}

func TestPolicy(t *testing.T) {
	want := "HostGroup/staging HostGroup/production MaintenanceWindow/nightly ApprovalRule/production-two-people RolloutStrategy/standard"
	if got := refs(t, rollouttest.Policy); got != want {
		t.Errorf("documents: %s, want %s", got, want)
	}
}

func TestDocuments(t *testing.T) {
	if got := refs(t, rollouttest.Documents("RolloutStrategy/standard", "HostGroup/production")); got != "RolloutStrategy/standard HostGroup/production" {
		t.Errorf("documents: %s", got)
	}
	// What follows a picked document with "---" is a document of its own.
	if got := refs(t, rollouttest.Documents("HostGroup/production")+"---\napiVersion: patchbay/v1\nkind: RolloutStrategy\nmetadata: {name: x}\n"); got != "HostGroup/production RolloutStrategy/x" {
		t.Errorf("documents: %s", got)
	}
	defer func() {
		if recover() == nil {
			t.Error("an unknown document did not panic")
		}
	}()
	rollouttest.Documents("HostGroup/nope")
}
