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

// TestServicePaths: a Service's paths must be absolute, clean, not "/",
// listed once and on a service with hosts, each refused at its field; a
// package's location on a selected host belongs to the service whose
// claimed path is the longest above it.
func TestServicePaths(t *testing.T) {
	doc := func(name, hosts, paths string) string {
		return "apiVersion: patchbay/v1\nkind: Service\nmetadata:\n  name: " + name + "\nspec:\n  owner: team\n  tier: 2\n  exposure: internal\n" + hosts + "  paths:\n" + paths
	}
	for _, c := range []struct{ hosts, paths, want string }{
		{"  hosts: role=web\n", "    - srv/shop\n", "s.yaml:11:7: spec.paths[0]: \"srv/shop\": want an absolute path"},
		{"  hosts: role=web\n", "    - /srv/shop/\n", "spec.paths[0]: \"/srv/shop/\": want a clean path (/srv/shop)"},
		{"  hosts: role=web\n", "    - /srv/shop\n    - /srv/../srv/shop\n", "spec.paths[1]: \"/srv/../srv/shop\": want a clean path"},
		{"  hosts: role=web\n", "    - /\n", "spec.paths[0]: \"/\" claims every file"},
		{"  hosts: role=web\n", "    - /srv/shop\n    - /srv/shop\n", "spec.paths[1]: \"/srv/shop\" is listed twice"},
		{"", "    - /srv/shop\n", "spec.paths[0]: \"/srv/shop\": a service without hosts"},
	} {
		_, err := ownKinds.Parse("s.yaml", []byte(doc("shop", c.hosts, c.paths)))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.paths, err, c.want)
		}
	}
	team := "apiVersion: patchbay/v1\nkind: Team\nmetadata:\n  name: team\nspec: {}\n"
	var all []*Document
	for _, y := range []string{
		team,
		doc("shop", "  hosts: role=web\n", "    - /srv/shop\n    - /opt/shop/bin/shop\n"),
		doc("shop-static", "  hosts: role=web\n", "    - /srv/shop/static\n"),
		doc("billing", "  hosts: role=db\n", "    - /srv\n"),
	} {
		ds, err := ownKinds.Parse("s.yaml", []byte(y))
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, ds...)
	}
	set, err := NewSet(all)
	if err != nil {
		t.Fatal(err)
	}
	web := map[string]string{"role": "web"}
	for _, c := range []struct {
		labels             map[string]string
		location, svc, via string
	}{
		{web, "/srv/shop/requirements.txt", "shop", "/srv/shop"},
		{web, "/srv/shop/venv/lib/python3.11/site-packages/flask-2.0.dist-info/METADATA", "shop", "/srv/shop"},
		{web, "/opt/shop/bin/shop", "shop", "/opt/shop/bin/shop"},
		{web, "/srv/shop/static/package-lock.json", "shop-static", "/srv/shop/static"},
		{web, "/srv/shopfront/requirements.txt", "", ""},
		{web, "/opt/shop/bin/shopctl", "", ""},
		{web, "/srv/shop/../other/go.sum", "", ""},
		{web, "srv/shop/go.sum", "", ""},
		{map[string]string{"role": "db"}, "/srv/shop/requirements.txt", "billing", "/srv"},
		{map[string]string{"role": "cache"}, "/srv/shop/requirements.txt", "", ""},
	} {
		svc, via, ok := set.Claim(c.labels, c.location)
		if svc != c.svc || via != c.via || ok != (c.svc != "") {
			t.Errorf("Claim(%v, %s) = %q, %q, %v; want %q, %q", c.labels, c.location, svc, via, ok, c.svc, c.via)
		}
	}
}
