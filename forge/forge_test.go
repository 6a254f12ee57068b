package forge_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/patchbay/patchbay/forge"
	"github.com/patchbay/patchbay/remedy"
	"github.com/patchbay/patchbay/risk"
	"github.com/patchbay/patchbay/scan"
)

// recording is a forge API conversation: each request patchbay must send
// (method, escaped path, query, the headers and body fields given) and the
// response the forge gives.
type recording struct {
	Exchanges []struct {
		Request struct {
			Method  string            `json:"method"`
			Path    string            `json:"path"`
			Query   map[string]string `json:"query"`
			Headers map[string]string `json:"headers"`
			Body    map[string]any    `json:"body"`
		} `json:"request"`
		Response struct {
			Status int             `json:"status"`
			Body   json.RawMessage `json:"body"`
		} `json:"response"`
	} `json:"exchanges"`
}

// replay serves a recording in order on loopback and fails the test on
// any request that differs from the recorded one.
func replay(t *testing.T, file string) (*httptest.Server, func()) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	var rec recording
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	next := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if next >= len(rec.Exchanges) {
			t.Errorf("unrecorded request %s %s", r.Method, r.URL)
			http.Error(w, "unrecorded", 599)
			return
		}
		ex := rec.Exchanges[next]
		next++
		want := ex.Request
		bad := func(format string, args ...any) {
			t.Errorf("exchange %d (%s %s): "+format, append([]any{next, want.Method, want.Path}, args...)...)
		}
		if r.Method != want.Method || r.URL.EscapedPath() != want.Path {
			bad("got %s %s", r.Method, r.URL.EscapedPath())
		}
		q := map[string]string{}
		for k, v := range r.URL.Query() {
			q[k] = v[0]
		}
		if len(want.Query) > 0 && !reflect.DeepEqual(q, want.Query) {
			bad("query %v", q)
		}
		for k, v := range want.Headers {
			if got := r.Header.Get(k); got != v {
				bad("header %s: %q", k, got)
			}
		}
		if len(want.Body) > 0 {
			var got map[string]any
			data, _ := io.ReadAll(r.Body)
			if err := json.Unmarshal(data, &got); err != nil {
				bad("body %q: %v", data, err)
			}
			for k, v := range want.Body {
				if !reflect.DeepEqual(got[k], v) {
					bad("body field %s: %v, want %v", k, got[k], v)
				}
			}
			if body, _ := got["body"].(string); got["body"] != nil && !strings.Contains(body, "### P1") {
				bad("body has no P1 section:\n%s", body)
			}
			if d, _ := got["description"].(string); got["description"] != nil && !strings.Contains(d, "### P1") {
				bad("description has no P1 section:\n%s", d)
			}
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(ex.Response.Status)
		w.Write(ex.Response.Body)
	}))
	t.Cleanup(srv.Close)
	return srv, func() {
		t.Helper()
		mu.Lock()
		defer mu.Unlock()
		if next != len(rec.Exchanges) {
			t.Errorf("%d of %d recorded exchanges were sent", next, len(rec.Exchanges))
		}
	}
}

func upgrades() (one, two []remedy.Upgrade) {
	due := time.Date(2026, 12, 8, 0, 0, 0, 0, time.UTC)
	u1 := remedy.Upgrade{Ecosystem: "Go", Package: "golang.org/x/text", From: "0.3.7", To: "0.39.0", Closes: []scan.Finding{
		{Package: "golang.org/x/text", Version: "0.3.7", Vulnerability: "CVE-2022-32149", Priority: risk.P1, Due: due},
		{Package: "golang.org/x/text", Version: "0.3.7", Vulnerability: "CVE-2026-56852", Priority: risk.P3, Due: due.AddDate(0, 3, 0)},
	}}
	u2 := remedy.Upgrade{Ecosystem: "PyPI", Package: "idna", From: "3.4", To: "3.7", Closes: []scan.Finding{
		{Package: "idna", Version: "3.4", Vulnerability: "CVE-2024-3651", Priority: risk.P2, Due: due.AddDate(0, 0, 23)},
	}}
	return []remedy.Upgrade{u1}, []remedy.Upgrade{u1, u2}
}

// TestForgeContracts replays recorded GitHub and GitLab conversations: a
// fix opens one merge request, a newer fix updates it (no second one),
// the merged state is read, and a refusal names the call and the forge's
// message.
func TestForgeContracts(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		file, url string
		newForge  func(api string) forge.Forge
	}{
		{"github.json", "https://github.com/acme/shop/pull/1347", func(api string) forge.Forge {
			return &forge.GitHub{API: api, Repo: "acme/shop", Token: "ghp_test"}
		}},
		{"gitlab.json", "https://gitlab.example.com/acme/shop/-/merge_requests/12", func(api string) forge.Forge {
			return &forge.GitLab{API: api, Project: "acme/shop", Token: "glpat-test"}
		}},
	} {
		t.Run(c.file, func(t *testing.T) {
			t.Parallel()
			srv, done := replay(t, c.file)
			f := c.newForge(srv.URL)
			ctx := context.Background()
			one, two := upgrades()
			head := forge.BranchName("shop", "weekly")
			mr, created, err := f.Upsert(ctx, forge.Request{Head: head, Base: "main", Title: forge.Title("shop", one), Body: forge.Body("shop", one, nil)})
			if err != nil || !created || mr.URL != c.url || mr.State != "open" {
				t.Fatalf("first fix: %+v created %v, %v", mr, created, err)
			}
			again, created, err := f.Upsert(ctx, forge.Request{Head: head, Base: "main", Title: forge.Title("shop", two), Body: forge.Body("shop", two, nil)})
			if err != nil || created || again.Number != mr.Number {
				t.Fatalf("newer fix: %+v created %v, %v", again, created, err)
			}
			merged, err := f.Get(ctx, mr.Number)
			if err != nil || merged.State != "merged" {
				t.Fatalf("after merge: %+v, %v", merged, err)
			}
			_, err = f.Get(ctx, mr.Number+1)
			if err == nil || !strings.Contains(err.Error(), "404") {
				t.Fatalf("missing merge request: %v", err)
			}
			done()
		})
	}
}

func TestBody(t *testing.T) {
	_, two := upgrades()
	b := forge.Body("shop", two, []remedy.Unfixed{{Finding: scan.Finding{Package: "lodash", Version: "3.10.1", Vulnerability: "CVE-2018-16487", Priority: risk.P4}, Reason: "the fix (4.17.11) needs a major upgrade"}})
	p1, p2, p3 := strings.Index(b, "### P1: 1 finding closed"), strings.Index(b, "### P2: 1 finding closed"), strings.Index(b, "### P3: 1 finding closed")
	if p1 < 0 || p2 < p1 || p3 < p2 {
		t.Fatalf("priorities out of order:\n%s", b)
	}
	for _, want := range []string{"- CVE-2022-32149 in `golang.org/x/text` 0.3.7 (due 2026-12-08)", "- CVE-2024-3651 in `idna` 3.4 (due 2026-12-31)", "| `idna` (PyPI) | 3.4 | 3.7 | 1 |", "- P4 CVE-2018-16487 in `lodash` 3.10.1: the fix (4.17.11) needs a major upgrade"} {
		if !strings.Contains(b, want) {
			t.Errorf("no %q in\n%s", want, b)
		}
	}
	if got := forge.BranchName("Shop API", "lodash@4.17.11"); got != "patchbay/fix/Shop-API/lodash-4.17.11" {
		t.Errorf("branch %q", got)
	}
}
