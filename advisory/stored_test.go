package advisory

import (
	"archive/zip"
	"encoding/json"
	"io"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/patchbay/patchbay/internal/sharedtest"
)

// sameAsEncodingJSON checks that DecodeStored and json.Unmarshal agree on
// doc: the same advisory, or both an error.
func sameAsEncodingJSON(t *testing.T, doc []byte) {
	t.Helper()
	want := &Advisory{}
	wantErr := json.Unmarshal(doc, want)
	got, err := DecodeStored(doc)
	if (err != nil) != (wantErr != nil) {
		t.Fatalf("DecodeStored(%.200q) error = %v, json.Unmarshal's = %v", doc, err, wantErr)
	}
	if err == nil && !reflect.DeepEqual(got, want) {
		t.Fatalf("DecodeStored(%.300q) =\n%+v\njson.Unmarshal gives\n%+v", doc, got, want)
	}
}

// TestDecodeStoredMatchesEncodingJSON decodes every record of the shared
// OSV feeds as the stores keep it (json.Marshal of the parsed advisory)
// both ways.
func TestDecodeStoredMatchesEncodingJSON(t *testing.T) {
	dir := sharedtest.Dir(t, "feeds/osv")
	n := 0
	for _, eco := range []string{"Go", "PyPI", "Debian", "npm", "crates.io"} {
		zr, err := zip.OpenReader(filepath.Join(dir, eco, "all.zip"))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range zr.File {
			rc, err := f.Open()
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(rc)
			rc.Close()
			if err != nil {
				t.Fatal(err)
			}
			a, err := ParseOSV(b)
			if err != nil {
				continue
			}
			doc, err := json.Marshal(a)
			if err != nil {
				t.Fatal(err)
			}
			sameAsEncodingJSON(t, doc)
			n++
		}
		zr.Close()
	}
	if n < 10000 {
		t.Fatalf("only %d records decoded", n)
	}
}

// TestDecodeStoredEdges covers what json.Marshal writes rarely or never:
// escapes, invalid UTF-8, nulls, empty lists, unknown or differently cased
// fields, numbers, trailing data and malformed documents.
func TestDecodeStoredEdges(t *testing.T) {
	for _, doc := range []string{
		`{"id":"A-1","modified":"2024-01-02T03:04:05.123456789Z","published":"0001-01-01T00:00:00Z","withdrawn":"0001-01-01T00:00:00Z","affected":null}`,
		`{"id":"A\u003c\"\\\n\u2028\ud83d\ude00","summary":"caf\u00e9 <b>","modified":"2024-01-02T03:04:05+02:00","affected":[]}`,
		"{\"id\":\"A-2\",\"summary\":\"bad \xff utf-8 \xe2\x82\",\"modified\":\"2024-01-01T00:00:00Z\",\"affected\":[]}",
		`{"id":"A-3","aliases":[],"severity":[],"affected":[{"ecosystem":"PyPI","name":"x","ranges":[],"versions":[],"severity":[]}]}`,
		`{"id":"A-4","aliases":null,"affected":[{"ecosystem":"Go","name":"m","ranges":[{"type":"SEMVER","events":null},{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"1.2.3"},{"last_affected":"2"},{"limit":"*"}]}]}]}`,
		`{"id":"A-5","affected":[{"ecosystem":"Go","name":"m","ranges":[{"type":"SEMVER","events":[null,{}]}]}]}`,
		` { "id" : "A-6" , "aliases" : [ "CVE-1" , "GHSA-x" ] , "affected" : [ ] } `,
		`{"ID":"A-7","Affected":[]}`,
		`{"id":"A-8","extra":1,"affected":[]}`,
		`{"id":"A-9","affected":[{"ecosystem":"PyPI","name":"x","versions":["1",null]}]}`,
		`{"id":"A-10","summary":null,"url":"https://x","severity_word":"HIGH","affected":[]}`,
		`{"id":"A-11","modified":null,"affected":[]}`,
		`{"id":"A-12","modified":"yesterday","affected":[]}`,
		`{"id":"A-13","id":"A-14","affected":[]}`,
		`{"id":"A-15","affected":[]} x`,
		`{"id":"A-16","affected":[}`,
		`{"id":"A-17",`,
		`{"id":"A-18` + "\x01" + `"}`,
		`null`,
		`[]`,
		``,
		`{}`,
	} {
		sameAsEncodingJSON(t, []byte(doc))
	}
}

func FuzzDecodeStored(f *testing.F) {
	for _, rel := range []string{"feeds/osv/Go/all.zip", "feeds/osv/PyPI/all.zip", "feeds/osv/Debian/all.zip"} {
		for _, s := range sharedSeeds(rel, 10) {
			if a, err := ParseOSV(s); err == nil {
				if doc, err := json.Marshal(a); err == nil {
					f.Add(doc)
				}
			}
		}
	}
	f.Add([]byte(`{"id":"A\u003c","aliases":[],"affected":[{"ecosystem":"Go","name":"m","ranges":[{"type":"SEMVER","events":[{"introduced":"0"}]}]}]}`))
	f.Fuzz(func(t *testing.T, doc []byte) { sameAsEncodingJSON(t, doc) })
}
