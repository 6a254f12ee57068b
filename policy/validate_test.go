package policy

import (
	"strings"
	"testing"
)

const head = "apiVersion: patchbay/v1\nkind: %s\nmetadata:\n  name: x\nspec:\n"

// TestValidationErrors pins the message of every validation rule, with
// the file, line and column and field path it names. Each case is one
// file; unless it says otherwise, nothing of it parses into documents.
func TestValidationErrors(t *testing.T) {
	doc := func(kind, spec string) string { return strings.Replace(head, "%s", kind, 1) + spec }
	for _, tc := range []struct {
		name, yaml string
		want       []string
	}{
		// The envelope.
		{"syntax", "apiVersion: patchbay/v1\nkind: Team\n  metadata: [", []string{
			"f.yaml:3:1: invalid YAML: mapping values are not allowed in this context"}},
		{"api version", "apiVersion: v2\nkind: Team\nmetadata:\n  name: x\nspec: {}\n", []string{
			`f.yaml:1:13: apiVersion: want patchbay/v1, got "v2"`}},
		{"unknown kind", "apiVersion: patchbay/v1\nkind: Teams\nmetadata:\n  name: x\nspec: {}\n", []string{
			`f.yaml:2:7: kind: unknown kind "Teams" (want one of Exception, HostGroup, Policy, Service, Team)`}},
		{"bad name", "apiVersion: patchbay/v1\nkind: Team\nmetadata:\n  name: Web_Team\nspec: {}\n", []string{
			`f.yaml:4:9: metadata.name: "Web_Team": want lower-case letters, digits, '-' and '.', starting and ending with a letter or digit, up to 63 characters`}},
		{"missing spec", "apiVersion: patchbay/v1\nkind: Team\nmetadata:\n  name: x\n", []string{
			"f.yaml:1:1: spec: missing"}},
		{"unknown top-level field", "apiVersion: patchbay/v1\nkind: Team\nmetadata:\n  name: x\nspec: {}\nstatus: {}\n", []string{
			"f.yaml:6:1: status: unknown field (want one of apiVersion, kind, metadata, spec)"}},
		// Team.
		{"team unknown field", doc("Team", "  members:\n    - name: a\n      mail: a@example.com\n"), []string{
			"f.yaml:8:7: spec.members[0].mail: unknown field (want one of name, email, chat)"}},
		{"team email and webhook", doc("Team", "  members:\n    - name: a\n      email: not-an-address\n  webhook: ftp://x\n"), []string{
			`f.yaml:8:14: spec.members[0].email: "not-an-address" is not an email address`,
			`f.yaml:9:12: spec.webhook: "ftp://x": want an http or https URL`}},
		{"team member without name", doc("Team", "  members:\n    - email: a@example.com\n"), []string{
			"f.yaml:7:7: spec.members[0].name: missing"}},
		// Service.
		{"service types", doc("Service", "  owner: web\n  tier: high\n  exposure: public\n"), []string{
			`f.yaml:7:9: spec.tier: want an integer, got the string "high"`}},
		{"service ranges", doc("Service", "  owner: web\n  tier: 5\n  exposure: public\n  hosts: env=prod,\n"), []string{
			`f.yaml:9:10: spec.hosts: selector "env=prod,": ends with a comma`}},
		{"service values", doc("Service", "  owner: web\n  tier: 5\n  exposure: public\n"), []string{
			"f.yaml:7:9: spec.tier: 5: want 1 (most critical) to 4",
			`f.yaml:8:13: spec.exposure: "public": want isolated, internal or internet`}},
		{"service missing", doc("Service", "  tier: 1\n"), []string{
			"f.yaml:6:3: spec.owner: missing",
			"f.yaml:6:3: spec.exposure: missing"}},
		// HostGroup.
		{"host group empty", doc("HostGroup", "  selector: \"\"\n"), []string{
			"f.yaml:6:13: spec.selector: empty: a host group names at least one label requirement"}},
		{"host group list", doc("HostGroup", "  selector: [env=prod]\n"), []string{
			"f.yaml:6:13: spec.selector: want a string, got a list"}},
		// Policy.
		{"policy incomplete table", doc("Policy", "  priorities:\n    base:\n      - {exploitation: active, automatable: true, impact: total, priority: P1}\n"+slas), []string{
			"f.yaml:8:7: spec.priorities.base: 11 of the 12 rows missing (one per exploitation/automatable/impact): none/false/partial, none/false/total, none/true/partial, none/true/total, likely/false/partial, likely/false/total, likely/true/partial, likely/true/total, active/false/partial, active/false/total, active/true/partial"}},
		{"policy bad row", doc("Policy", "  priorities:\n    base:\n      - {exploitation: known, automatable: yes, impact: total, priority: P0}\n"+slas), []string{
			`f.yaml:8:44: spec.priorities.base[0].automatable: want true or false, got the string "yes"`,
			`f.yaml:8:74: spec.priorities.base[0].priority: priority "P0": want P1, P2, P3 or P4`}},
		{"policy not monotone", doc("Policy", strings.Replace(fullTable, "impact: total, priority: P2}", "impact: total, priority: P4}", 1)+slas), []string{
			"f.yaml:14:77: spec.priorities.base[6].priority: P4 is less urgent than base[10]'s P3, which has less evidence: more exploitation, automatable or total impact never lowers a priority",
			"f.yaml:14:77: spec.priorities.base[6].priority: P4 is less urgent than base[7]'s P3, which has less evidence: more exploitation, automatable or total impact never lowers a priority"}},
		{"policy shifts", doc("Policy", fullTable+"    tier: {\"1\": 1, \"4\": -1}\n    exposure: {internet: 5, moon: 0}\n"+slas), []string{
			"f.yaml:20:11: spec.priorities.tier.3: +0 is less urgent than 4's -1: a more critical asset never lowers a priority",
			"f.yaml:20:17: spec.priorities.tier.1: +1 is less urgent than 2's +0: a more critical asset never lowers a priority",
			"f.yaml:21:26: spec.priorities.exposure.internet: 5: want a shift from -3 to 3",
			"f.yaml:21:35: spec.priorities.exposure.moon: unknown exposure (want isolated, internal or internet)"}},
		{"policy slas", doc("Policy", fullTable+"  slas:\n    system: {P1: 7d, P2: 3d, P3: soon, P4: 180d}\n    application: {P1: 7d, P2: 30d, P3: 90d}\n"), []string{
			`f.yaml:21:34: spec.slas.system.P3: duration "soon": want a number of days (7d), weeks (2w) or hours (36h)`,
			"f.yaml:22:18: spec.slas.application.P4: missing"}},
		{"policy sla order", doc("Policy", fullTable+"  slas:\n    system: {P1: 7d, P2: 3d, P3: 90d, P4: 180d}\n    application: {P1: 7d, P2: 30d, P3: 90d, P4: 90d}\n"), []string{
			"f.yaml:21:26: spec.slas.system.P2: 3d is shorter than P1's 7d: a lower priority never gets less time"}},
		{"policy emergency and classification", doc("Policy", fullTable+slas+"  emergency:\n    - name: a\n      when: {exploitation: high, tier: 0}\n      priority: P1\n    - name: a\n      when: {}\n      priority: P1\n  classification:\n    - type: cosmetic\n      packages: [\"[\"]\n"), []string{
			`f.yaml:25:28: spec.emergency[0].when.exploitation: "high": want none, likely or active`,
			"f.yaml:27:13: spec.emergency[1].name: \"a\": given twice",
			"f.yaml:28:13: spec.emergency[1].when: empty: an emergency rule names at least one condition",
			`f.yaml:31:13: spec.classification[0].type: "cosmetic": want one of security, bugfix, feature, compatibility, performance, regulatory, localization`,
			`f.yaml:32:18: spec.classification[0].packages[0]: "[": not a glob pattern`}},
		// Exception.
		{"exception empty", doc("Exception", "  justification: \" \"\n"), []string{
			"f.yaml:6:3: spec: name at least one vulnerability or package: an exception never covers every finding",
			"f.yaml:6:3: spec.approvedBy: missing: an accepted risk names who approved it",
			"f.yaml:6:3: spec.expires: missing: an accepted risk expires (YYYY-MM-DD)",
			"f.yaml:6:18: spec.justification: empty: say why the risk is acceptable"}},
		{"exception values", doc("Exception", "  vulnerabilities: [\"CVE-1, CVE-2\"]\n  packages: [\"pkg:nope\", \"open ssl\"]\n  state: waived\n  justification: x\n  expires: 2030-01-01\n"), []string{
			`f.yaml:6:21: spec.vulnerabilities[0]: "CVE-1, CVE-2": want one vulnerability id`,
			`f.yaml:7:14: spec.packages[0]: "pkg:nope": not a package URL: purl is missing type or name`,
			`f.yaml:7:26: spec.packages[1]: "open ssl": want a package name or a package URL (pkg:deb/debian/openssl)`,
			`f.yaml:8:10: spec.state: "waived": want accepted or not_affected`}},
		{"exception date", doc("Exception", "  vulnerabilities: [CVE-1]\n  justification: x\n  approvedBy: a\n  expires: next year\n"), []string{
			`f.yaml:9:12: spec.expires: date "next year": want YYYY-MM-DD or an RFC 3339 time`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			docs, err := ownKinds.Parse("f.yaml", []byte(tc.yaml))
			if err == nil {
				t.Fatalf("no error; parsed %d documents", len(docs))
			}
			if docs != nil {
				t.Errorf("documents returned with errors: %d", len(docs))
			}
			var got []string
			for _, e := range AsErrors(err) {
				got = append(got, e.Error())
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("got\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(tc.want, "\n  "))
			}
		})
	}
}

// TestCrossDocumentErrors: references between documents are checked on
// the whole set, and point at the referring field.
func TestCrossDocumentErrors(t *testing.T) {
	files := map[string]string{
		"a.yaml": "apiVersion: patchbay/v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  owner: nobody\n  tier: 1\n  exposure: internet\n",
		"b.yaml": "apiVersion: patchbay/v1\nkind: Exception\nmetadata:\n  name: x\nspec:\n  vulnerabilities: [CVE-1]\n  services: [web, api]\n  justification: j\n  approvedBy: a\n  expires: 2030-01-01\n" +
			"---\napiVersion: patchbay/v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  owner: nobody\n  tier: 1\n  exposure: internet\n" +
			"---\napiVersion: patchbay/v1\nkind: Policy\nmetadata:\n  name: p2\nspec:\n" + fullTable + slas,
	}
	var docs []*Document
	for _, name := range []string{"a.yaml", "b.yaml"} {
		ds, err := ownKinds.Parse(name, []byte(files[name]))
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, ds...)
	}
	docs = append(docs, DefaultPolicy)
	_, _, err := Diff(nil, docs, []string{"Team/ghost"})
	want := []string{
		"Team/ghost: not found",
		"b.yaml:15:9: metadata.name: Service/web is also defined at a.yaml:1:1",
	}
	var got []string
	for _, e := range AsErrors(err) {
		got = append(got, e.Error())
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	_, _, err = Diff(nil, docs[:2], nil)
	want = []string{
		`a.yaml:6:10: spec.owner: no Team named "nobody"`,
		`b.yaml:7:19: spec.services[1]: no Service named "api"`,
	}
	got = nil
	for _, e := range AsErrors(err) {
		got = append(got, e.Error())
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	_, _, err = Diff(nil, []*Document{docs[len(docs)-2], DefaultPolicy}, nil)
	if es := AsErrors(err); len(es) != 1 || es[0].Error() != "b.yaml:26:3: spec.hosts: missing: Policy/default already governs every other host; give this one a host selector" {
		t.Errorf("two policies without a host selector: %v", err)
	}
}

// TestDeleteReferencedTeam: deleting a Team an applied Service names
// fails, naming the Service.
func TestDeleteReferencedTeam(t *testing.T) {
	docs := exampleDocs(t)
	changes, _, err := Diff(nil, docs, nil)
	if err != nil {
		t.Fatal(err)
	}
	var applied []Applied
	for _, c := range changes {
		d, err := ownKinds.FromCanonical([]byte(c.Canonical))
		if err != nil {
			t.Fatal(err)
		}
		applied = append(applied, Applied{Doc: d, Version: 1})
	}
	_, _, err = Diff(applied, nil, []string{"Team/payments"})
	want := "Service/billing-api (applied): spec.owner: no Team named \"payments\"\nService/checkout (applied): spec.owner: no Team named \"payments\""
	if err == nil || err.Error() != want {
		t.Errorf("delete a referenced team: %v\nwant %s", err, want)
	}
	if _, _, err := Diff(applied, nil, []string{"Exception/reporting-postgres-upgrade"}); err != nil {
		t.Errorf("delete an exception: %v", err)
	}
}

const fullTable = `  priorities:
    base:
      - {exploitation: active, automatable: true, impact: total, priority: P1}
      - {exploitation: active, automatable: true, impact: partial, priority: P1}
      - {exploitation: active, automatable: false, impact: total, priority: P1}
      - {exploitation: active, automatable: false, impact: partial, priority: P2}
      - {exploitation: likely, automatable: true, impact: total, priority: P1}
      - {exploitation: likely, automatable: true, impact: partial, priority: P2}
      - {exploitation: likely, automatable: false, impact: total, priority: P2}
      - {exploitation: likely, automatable: false, impact: partial, priority: P3}
      - {exploitation: none, automatable: true, impact: total, priority: P2}
      - {exploitation: none, automatable: true, impact: partial, priority: P3}
      - {exploitation: none, automatable: false, impact: total, priority: P3}
      - {exploitation: none, automatable: false, impact: partial, priority: P4}
`

const slas = `  slas:
    system: {P1: 7d, P2: 30d, P3: 90d, P4: 180d}
    application: {P1: 14d, P2: 45d, P3: 120d, P4: 365d}
`
