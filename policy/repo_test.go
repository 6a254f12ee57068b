package policy

import (
	"strings"
	"testing"
)

// TestServiceRepo: a Service's repo for fixes parses, defaults its base
// branch, and refuses credentials in the URL, an unknown forge and a
// forge without its project, each at its field.
func TestServiceRepo(t *testing.T) {
	doc := func(repo string) string {
		return "apiVersion: patchbay/v1\nkind: Service\nmetadata:\n  name: shop\nspec:\n  owner: team\n  tier: 2\n  exposure: internal\n  repo:\n" + repo
	}
	docs, err := ownKinds.Parse("s.yaml", []byte(doc("    url: https://github.com/acme/shop.git\n    forge: github\n    project: acme/shop\n")))
	if err != nil {
		t.Fatal(err)
	}
	r := docs[0].Spec.(*ServiceSpec).Repo
	if r == nil || r.URL != "https://github.com/acme/shop.git" || r.BaseBranch() != "main" || r.Project != "acme/shop" {
		t.Fatalf("repo %+v", r)
	}
	for _, c := range []struct{ repo, want string }{
		{"    url: https://bot:ghp_secret@github.com/acme/shop.git\n", "s.yaml:10:10: spec.repo.url: \"https://bot:xxxxx@github.com/acme/shop.git\" holds credentials"},
		{"    url: https://github.com/acme/shop.git\n    forge: gitea\n", "spec.repo.forge: \"gitea\": want github, gitlab or none"},
		{"    url: https://gitlab.com/acme/shop.git\n    forge: gitlab\n", "spec.repo.project: required with forge gitlab"},
		{"    base: main\n", "spec.repo.url"},
	} {
		_, err := ownKinds.Parse("s.yaml", []byte(doc(c.repo)))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.repo, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "ghp_secret") {
			t.Errorf("the error repeats the secret: %v", err)
		}
	}
}
