package server_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"strings"
	"testing"

	"github.com/patchbay/patchbay/api"
	"github.com/patchbay/patchbay/api/templateapi"
	"github.com/patchbay/patchbay/auth"
)

// TestTemplatesGenerate: the templates are listed with their parameters;
// generating one answers a .tar.gz of the repository with the values in
// it; a refused value is a 400 naming the parameter.
func TestTemplatesGenerate(t *testing.T) {
	f := newFixture(t, "sqlite", nil)
	viewer := f.api(auth.Viewer)
	code, body := f.do("GET", api.Prefix+"/templates", viewer, nil)
	var tl templateapi.TemplateList
	json.Unmarshal(body, &tl)
	if code != 200 || len(tl.Templates) < 3 || len(tl.Templates[0].Parameters) == 0 {
		t.Fatalf("GET templates: %d %s", code, body)
	}
	code, body = f.do("POST", api.Prefix+"/templates/web-fleet/generate", viewer, templateapi.GenerateRequest{Values: map[string]string{"teams": "web,ops", "timeZone": "Europe/Paris"}})
	if code != 200 {
		t.Fatalf("generate: %d %s", code, body)
	}
	gz, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	files := map[string]string{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		files[h.Name] = string(b)
	}
	if !strings.Contains(files["web-fleet/teams.yaml"], "name: ops\n") || !strings.Contains(files["web-fleet/windows.yaml"], "timeZone: Europe/Paris\n") ||
		files["web-fleet/.gitlab-ci.yml"] == "" || !strings.Contains(files["web-fleet/schedules.yaml"], "kind: PatchSchedule\n") ||
		!strings.Contains(files["web-fleet/scorecards.yaml"], "kind: Initiative\n") || files["web-fleet/.github/workflows/patchbay-policy.yml"] == "" {
		t.Errorf("archive: %d files %v", len(files), files["web-fleet/teams.yaml"])
	}
	code, body = f.do("POST", api.Prefix+"/templates/web-fleet/generate", viewer, templateapi.GenerateRequest{Values: map[string]string{"tier": "9"}})
	var e api.Error
	json.Unmarshal(body, &e)
	if code != 400 || e.Field != "values.tier" || e.Error != "values.tier=9: 9: want at most 4" {
		t.Errorf("bad value: %d %s", code, body)
	}
	code, body = f.do("POST", api.Prefix+"/templates/web-fleet/generate", viewer, templateapi.GenerateRequest{Values: map[string]string{"initiativeStart": "2027-13-01"}})
	e = api.Error{}
	json.Unmarshal(body, &e)
	if code != 400 || e.Field != "values.initiativeStart" || !strings.Contains(e.Error, "want a date YYYY-MM-DD") {
		t.Errorf("bad date: %d %s", code, body)
	}
	if code, body = f.do("POST", api.Prefix+"/templates/nope/generate", viewer, templateapi.GenerateRequest{}); code != 404 {
		t.Errorf("unknown template: %d %s", code, body)
	}
}
