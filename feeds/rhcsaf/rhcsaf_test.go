package rhcsaf

import (
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/patchbay/patchbay/advisory"
)

// testdata/cve-2024-1086.json is a handmade document in the shape of Red
// Hat's CSAF 2.0 VEX files (its document.notes say so), not Red Hat's data.
func TestParseFixture(t *testing.T) {
	f, err := os.Open("testdata/cve-2024-1086.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := Parse(f)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(doc.CVEs, []string{"CVE-2024-1086"}) {
		t.Errorf("CVEs %v", doc.CVEs)
	}
	got := doc.Ratings
	r := func(pkg, w string) advisory.VendorRating {
		return advisory.VendorRating{CVE: "CVE-2024-1086", Vendor: "Red Hat", Ecosystem: "Red Hat", Package: pkg, Rating: w}
	}
	// rhcos is a container image (pkg:oci), not an RPM: no rating.
	want := []advisory.VendorRating{r("kernel", "important"), r("kernel-core", "important"), r("kernel-rt", "moderate")}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ratings:\n got %+v\nwant %+v", got, want)
	}
}

func TestParseAggregateWhenThreatsNameNoPackage(t *testing.T) {
	doc := `{"document":{"category":"csaf_vex","csaf_version":"2.0","aggregate_severity":{"text":"Low"}},
	"product_tree":{"branches":[{"category":"product_version","name":"curl","product":{"name":"curl","product_id":"curl",
	"product_identification_helper":{"purl":"pkg:rpm/redhat/curl?arch=src"}}}]},
	"vulnerabilities":[{"cve":"CVE-2024-2398","product_status":{"known_affected":["curl"]}}]}`
	d, err := Parse(strings.NewReader(doc))
	if err != nil {
		t.Fatal(err)
	}
	got := d.Ratings
	want := []advisory.VendorRating{{CVE: "CVE-2024-2398", Vendor: "Red Hat", Ecosystem: "Red Hat", Rating: "low"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestParseErrorsNameTheField(t *testing.T) {
	fixture, err := os.ReadFile("testdata/cve-2024-1086.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ from, to, field string }{
		{`"details": "Moderate"`, `"details": "Severe"`, "vulnerabilities[0].threats[1].details"},
		{`"cve": "CVE-2024-1086"`, `"cve": "RHSA-2024:1607"`, "vulnerabilities[0].cve"},
		{`"text": "Important"`, `"text": "Urgent"`, "document.aggregate_severity.text"},
		{`"category": "csaf_vex"`, `"category": "csaf_security_advisory"`, "document.category"},
		{`"product_reference": "rhcos"`, `"product_reference": "rhcos-9"`, "product_tree.relationships[3].product_reference"},
		{`"purl": "pkg:rpm/redhat/kernel-rt?arch=src"`, `"purl": "rpm/kernel-rt"`, "product_tree.branches[0].branches[1].branches[2].product.product_identification_helper.purl"},
		{"\"Moderate\",\n          \"product_ids\": [\n            \"red_hat_enterprise_linux_8:kernel-rt\"",
			"\"Moderate\",\n          \"product_ids\": [\n            \"red_hat_enterprise_linux_8:kernel-rt-x\"", "vulnerabilities[0].threats[1].product_ids[0]"},
	} {
		doc := strings.Replace(string(fixture), c.from, c.to, 1)
		if doc == string(fixture) {
			t.Fatalf("%s: the fixture has no %s", c.field, c.from)
		}
		_, err := Parse(strings.NewReader(doc))
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != c.field {
			t.Errorf("%s: got %v", c.field, err)
		}
	}
	if _, err := Parse(strings.NewReader(`{"id":"GHSA-x"}`)); !errors.Is(err, ErrNotCSAF) {
		t.Errorf("an OSV record: %v", err)
	}
}
