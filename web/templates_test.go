package web_test

import (
	"archive/tar"
	"compress/gzip"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestTemplatesPage: the page lists the templates and a template's
// parameters with their defaults; the form downloads the repository with
// the values given; a refused value shows the form again, the parameter
// marked, the values kept.
func TestTemplatesPage(t *testing.T) {
	f := newFixture(t, nil)
	vera := f.person("vera")
	vera.login(password)
	code, _, page := vera.get("/templates?name=small-team")
	for _, want := range []string{`<a href="/templates?name=web-fleet#generate">web-fleet</a>`, `<a href="/templates?name=regulated#generate">regulated</a>`,
		`<input id="p-autoApproveAfter" name="p.autoApproveAfter" value="3d"`, `<pre id="init-command">patchbay init small-team/ --template small-team</pre>`,
		`<input type="date" id="p-initiativeStart" name="p.initiativeStart" value="2027-01-01"`, `<option selected>silver</option>`} {
		if code != 200 || !strings.Contains(page, want) {
			t.Errorf("/templates?name=small-team: %d, no %q\n%s", code, want, page)
		}
	}
	csrf := csrfOf(t, page)
	form := url.Values{"csrf": {csrf}, "p.teams": {"sre"}, "p.window": {"0 5 * * SAT"}, "p.slaProfile": {"relaxed"}, "p.initiativeStart": {"2028-04-01"}, "p.autoApproveAfter": {"5d"}}
	resp := postRaw(t, vera, "/templates/small-team", form)
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/gzip" || !strings.Contains(resp.Header.Get("Content-Disposition"), `filename="small-team.tar.gz"`) {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("download: %d %v\n%s", resp.StatusCode, resp.Header, b)
	}
	gz, err := gzip.NewReader(resp.Body)
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
	if !strings.Contains(files["small-team/teams.yaml"], "name: sre\n") || !strings.Contains(files["small-team/windows.yaml"], `schedule: "0 5 * * SAT"`) ||
		!strings.Contains(files["small-team/policy.yaml"], "P2: 45d") {
		t.Errorf("the archive does not hold the values: %v", files["small-team/windows.yaml"])
	}
	if !strings.Contains(files["small-team/schedules.yaml"], "kind: PatchSchedule\n") || !strings.Contains(files["small-team/schedules.yaml"], "minAge: {security: 5d}") ||
		!strings.Contains(files["small-team/scorecards.yaml"], "start: 2028-04-01\n  target: 2028-06-30\n") {
		t.Errorf("the archive's schedule and initiative do not hold the values:\n%s\n%s", files["small-team/schedules.yaml"], files["small-team/scorecards.yaml"])
	}

	form.Set("p.tier", "7")
	code, _, page = vera.post("/templates/small-team", form)
	if code != http.StatusBadRequest || !strings.Contains(page, `id="gen-error">tier=7: 7: want at most 4</p>`) ||
		!strings.Contains(page, `name="p.tier" value="7" aria-invalid="true"`) || !strings.Contains(page, `name="p.teams" value="sre"`) ||
		!strings.Contains(page, `--set &#39;window=0 5 * * SAT&#39;`) {
		t.Errorf("refused value: %d\n%s", code, page)
	}
}

func postRaw(t *testing.T, p *person, path string, form url.Values) *http.Response {
	t.Helper()
	req, _ := http.NewRequest("POST", p.f.ts.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := p.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}
