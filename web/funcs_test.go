package web

import (
	"io/fs"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/patchbay/patchbay/api/rolloutapi"
	"github.com/patchbay/patchbay/job"
)

func TestSafeNext(t *testing.T) {
	for in, want := range map[string]string{
		"/findings?priority=P1": "/findings?priority=P1",
		"/":                     "/",
		"":                      "/",
		"//evil.example/":       "/",
		"/\\evil.example":       "/",
		"https://evil.example/": "/",
		"javascript:alert(1)":   "/",
	} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestLinkURL(t *testing.T) {
	q := url.Values{"status": {"open"}, "cursor": {"abc"}, "page": {"3"}, "priority": {"P1"}}
	for _, c := range []struct {
		kv   []string
		want string
	}{
		{nil, "/findings?priority=P1&status=open"},
		{[]string{"sort", "due"}, "/findings?priority=P1&sort=due&status=open"},
		{[]string{"priority", ""}, "/findings?status=open"},
		{[]string{"cursor", "next"}, "/findings?cursor=next&priority=P1&status=open"},
	} {
		if got := linkURL("/findings", q, c.kv...); got != c.want {
			t.Errorf("linkURL(%v) = %q, want %q", c.kv, got, c.want)
		}
	}
	if got := linkURL("/hosts", url.Values{}); got != "/hosts" {
		t.Errorf("no query: %q", got)
	}
}

func TestLineDiff(t *testing.T) {
	got := lineDiff("a\nb\nc", "a\nB\nc\nd")
	var ops []string
	for _, l := range got {
		ops = append(ops, l.Op+l.Text)
	}
	if want := " a,+B,-b, c,+d"; strings.Join(ops, ",") != want {
		// The order of a replaced line's - and + is the diff's choice;
		// what matters is the set and the context.
		if alt := " a,-b,+B, c,+d"; strings.Join(ops, ",") != alt {
			t.Errorf("diff %v, want %q", ops, want)
		}
	}
	if lineDiff("", "x") != nil {
		t.Error("a first version has no diff")
	}
}

func TestSameOrigin(t *testing.T) {
	for _, c := range []struct {
		hdr  map[string]string
		want bool
	}{
		{nil, true},
		{map[string]string{"Sec-Fetch-Site": "same-origin"}, true},
		{map[string]string{"Sec-Fetch-Site": "cross-site"}, false},
		{map[string]string{"Sec-Fetch-Site": "same-site"}, false},
		{map[string]string{"Origin": "https://patchbay.example"}, true},
		{map[string]string{"Origin": "https://evil.example"}, false},
		{map[string]string{"Origin": "null"}, false},
	} {
		r := httptest.NewRequest("POST", "https://patchbay.example/plans/x/approve", nil)
		for k, v := range c.hdr {
			r.Header.Set(k, v)
		}
		if got := sameOrigin(r); got != c.want {
			t.Errorf("%v: %v, want %v", c.hdr, got, c.want)
		}
	}
}

func TestRingBar(t *testing.T) {
	svg := string(ringBar(rolloutapi.RingStatus{Name: "prod", Hosts: 10, Pending: 4, InFlight: 2, Outcomes: map[job.Outcome]int{job.Succeeded: 3, job.Failed: 1}}))
	for _, want := range []string{`aria-label="prod: 4 of 10 done, 1 failed, 2 in flight, 4 pending"`, `width="90" height="14" class="ok"`, `x="90" y="0" width="30" height="14" class="fail"`,
		`x="120" y="0" width="60" height="14" class="flight"`, `x="180" y="0" width="120" height="14" class="pending"`} {
		if !strings.Contains(svg, want) {
			t.Errorf("ring bar lacks %q:\n%s", want, svg)
		}
	}
}

func TestBarChartEscapes(t *testing.T) {
	svg := string(barChart(`<script>`, []Bar{{Label: `P1 "x"`, Value: 3, Href: `/findings?a=1&b=<2>`, Class: "p1"}, {Label: "P2", Value: 0, Href: "/f", Class: "p2"}}))
	if strings.Contains(svg, "<script>") || strings.Contains(svg, `b=<2>`) || !strings.Contains(svg, `href="/findings?a=1&amp;b=&lt;2&gt;"`) {
		t.Errorf("chart not escaped:\n%s", svg)
	}
	if !strings.Contains(svg, `width="320" height="20" class="bar p1"`) || !strings.Contains(svg, `width="0" height="20" class="bar p2"`) {
		t.Errorf("bar widths:\n%s", svg)
	}
}

// TestPagesParse: every page template parses with the layout, and each
// page has a content block.
func TestPagesParse(t *testing.T) {
	p, err := parsePages()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"login", "error", "overview", "findings", "finding", "hosts", "host", "vulns", "vuln", "patches", "plans", "plan", "policy", "audit", "feeds"} {
		if p.byName[name] == nil || p.byName[name].Lookup("content") == nil {
			t.Errorf("page %s: no content template", name)
		}
	}
}

// TestNothingFromOutside: no template or asset loads anything from
// another site (the UI works air-gapped), and pages forbid it by CSP.
func TestNothingFromOutside(t *testing.T) {
	for _, fsys := range []struct {
		name string
		read func(string) ([]byte, error)
		glob string
	}{{"templates", templateFS.ReadFile, "templates/*.html"}, {"static", staticFS.ReadFile, "static/*"}} {
		files, err := fsGlob(fsys.name, fsys.glob)
		if err != nil || len(files) == 0 {
			t.Fatalf("%s: %v", fsys.glob, err)
		}
		for _, f := range files {
			b, err := fsys.read(f)
			if err != nil {
				t.Fatal(err)
			}
			s := string(b)
			s = strings.ReplaceAll(s, `xmlns="http://www.w3.org/2000/svg"`, "") // a namespace, not a load
			for _, bad := range []string{"http://", "https://", "//cdn", "@import", "<script>"} {
				if strings.Contains(s, bad) {
					t.Errorf("%s contains %q", f, bad)
				}
			}
		}
	}
	w := httptest.NewRecorder()
	securityHeaders(w)
	if csp := w.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") || !strings.Contains(csp, "script-src 'self'") ||
		!strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "unsafe-inline") {
		t.Errorf("CSP %q", csp)
	}
}

func fsGlob(name, pattern string) ([]string, error) {
	if name == "templates" {
		return fs.Glob(templateFS, pattern)
	}
	return fs.Glob(staticFS, pattern)
}
