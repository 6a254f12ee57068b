package web_test

import (
	"context"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/patchbay/patchbay/internal/sharedtest"
	"github.com/patchbay/patchbay/kpi"
	"github.com/patchbay/patchbay/rollout"
)

// screenshotDir is where the browser test saves its screenshots:
// $PATCHBAY_ARTIFACTS/web-screenshots, else a directory in the system's
// temporary directory (named in the log).
func screenshotDir(t *testing.T) string {
	base := os.Getenv("PATCHBAY_ARTIFACTS")
	if base == "" {
		base = os.TempDir()
	}
	dir := filepath.Join(base, "patchbay-web-screenshots")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// browser starts Debian's chromium headless, closed to the network; it
// skips (fails with PATCHBAY_REQUIRE_SYSTEM=1) when chromium is absent.
func browser(t *testing.T) context.Context {
	t.Helper()
	var path string
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		sharedtest.System(t, "no chromium to run the browser test (apt-get install chromium)")
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.IgnoreCertErrors, // the test server's own certificate
		chromedp.WindowSize(1366, 900),
	}
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	ctx, cancel2 := chromedp.NewContext(actx)
	t.Cleanup(cancel2)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// tab is a person's own browser context (cookies apart), bounded in time.
func tab(t *testing.T, b context.Context) context.Context {
	ctx, cancel := chromedp.NewContext(b, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	ctx, cancel2 := context.WithTimeout(ctx, 2*time.Minute)
	t.Cleanup(cancel2)
	return ctx
}

func run(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func shot(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	p := filepath.Join(dir, name+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot %s", p)
}

func browserLogin(t *testing.T, ctx context.Context, base, name, path string) {
	t.Helper()
	run(t, ctx, name+" logs in",
		chromedp.Navigate(base+path),
		chromedp.WaitVisible(chromedp.CSS(`#name`)),
		chromedp.SendKeys(chromedp.CSS(`#name`), name),
		chromedp.SendKeys(chromedp.CSS(`#password`), password),
		chromedp.Click(chromedp.CSS(`#login`)),
		chromedp.WaitVisible(chromedp.CSS(`#logout`)),
	)
}

// TestBrowser drives the UI in chromium as its people would: log in,
// follow an overview number to its list, filter findings, two people
// approve a plan (a viewer and a forged form are refused), watch the
// rollout the test drives progress to its end without a reload, log out.
func TestBrowser(t *testing.T) {
	b := browser(t)
	f := newFixture(t, nil)
	dir := screenshotDir(t)
	base := f.ts.URL
	alice := tab(t, b)
	// before is a time after the fixture's hosts came, before the rollout.
	before := f.clock.now().Add(time.Second).UTC().Format(time.RFC3339)

	t.Run("login and overview", func(t *testing.T) {
		browserLogin(t, alice, base, "alice", "/")
		var who string
		run(t, alice, "overview", chromedp.WaitVisible(chromedp.CSS(`#prio-h`)), text(`.who .user`, &who))
		if who != "alice" {
			t.Errorf("logged in as %q", who)
		}
		shot(t, alice, dir, "overview")
		// A figure, not an assertion (speed targets are benchmarks').
		var fcp float64
		run(t, alice, "paint", eval(`(performance.getEntriesByName("first-contentful-paint")[0] || {startTime: -1}).startTime`, &fcp))
		t.Logf("overview: first contentful paint %.0f ms after navigation", fcp)
	})

	t.Run("an overview number leads to its list", func(t *testing.T) {
		var total, url string
		run(t, alice, "open tile", chromedp.Navigate(base+"/"), text(`#tile-open .num`, &total),
			chromedp.Click(chromedp.CSS(`#tile-open`)), chromedp.WaitVisible(chromedp.CSS(`#findings`)), into(&url, chromedp.Location()))
		if !strings.HasSuffix(url, "/findings?status=open") {
			t.Errorf("the open tile led to %s", url)
		}
		// The P1..P4 numbers: each leads to its list with that many rows
		// (the first page holds 50).
		for _, prio := range []string{"P1", "P2", "P3", "P4"} {
			var n string
			run(t, alice, prio+" number", chromedp.Navigate(base+"/"), text("#open-"+prio, &n),
				chromedp.Click(chromedp.CSS("#open-"+prio)), chromedp.WaitVisible(chromedp.CSS(`#findings`)), into(&url, chromedp.Location()))
			var rows, prioRows int
			run(t, alice, "count", eval(`document.querySelectorAll("#findings tbody tr .prio").length`, &rows),
				eval(`document.querySelectorAll("#findings tbody .prio.`+strings.ToLower(prio)+`").length`, &prioRows))
			want, _ := strconv.Atoi(n)
			if !strings.Contains(url, "priority="+prio) || rows != prioRows || prioRows != min(want, 50) {
				t.Errorf("%s (%s) led to %s with %d rows, %d of them %s", prio, n, url, rows, prioRows, prio)
			}
		}
		run(t, alice, "P3 list", chromedp.Navigate(base+"/"), chromedp.Click(chromedp.CSS("#open-P3")), chromedp.WaitVisible(chromedp.CSS(`#findings`)))
		shot(t, alice, dir, "findings")
	})

	t.Run("filter findings", func(t *testing.T) {
		var url string
		run(t, alice, "filter",
			chromedp.Navigate(base+"/findings"),
			chromedp.SetValue(chromedp.CSS(`#f-priority`), "P3"),
			chromedp.SendKeys(chromedp.CSS(`#f-package`), "openssl"),
			chromedp.Click(chromedp.CSS(`#f-apply`)),
		)
		// The list page is there before and after: wait for the new one.
		url = waitURL(t, alice, "package=openssl")
		run(t, alice, "filtered", chromedp.WaitVisible(chromedp.CSS(`#findings`)))
		if !strings.Contains(url, "priority=P3") || !strings.Contains(url, "package=openssl") {
			t.Errorf("the filter is not in the URL: %s", url)
		}
		var rows []string
		run(t, alice, "rows", eval(`[...document.querySelectorAll("#findings tbody tr")].map(r => r.cells[0].innerText.trim() + " " + r.cells[2].innerText.trim())`, &rows))
		if len(rows) == 0 {
			t.Fatal("no P3 openssl finding")
		}
		for _, r := range rows {
			if r != "P3 openssl" {
				t.Errorf("filtered row %q", r)
			}
		}
	})

	t.Run("pages", func(t *testing.T) {
		for _, pg := range []struct{ path, wait, name string }{
			{"/hosts", "#hosts", "hosts"},
			{"/hosts/" + f.hosts[2].id, "#hf-h", "host"},
			{"/vulns", "#vulns", "vulns"},
			{"/patches", "#patches", "patches"},
			{"/policy", "#policy", "policy"},
			{"/feeds", "#feeds", "feeds"},
			{"/policy?kind=RolloutStrategy&name=fast", "#history", "policy-history"},
		} {
			run(t, alice, pg.name, chromedp.Navigate(base+pg.path), chromedp.WaitVisible(chromedp.CSS(pg.wait)))
			shot(t, alice, dir, pg.name)
		}
	})

	t.Run("a finding explains itself", func(t *testing.T) {
		var h2 string
		run(t, alice, "finding", chromedp.Navigate(base+"/findings?package=openssl"), chromedp.WaitVisible(chromedp.CSS(`#findings`)),
			chromedp.Click(chromedp.CSS(`#findings a.plain`)), chromedp.WaitVisible(chromedp.CSS(`dl.facts`)), text(`main h2`, &h2))
		if h2 != "Why this priority" {
			t.Errorf("finding page's first heading %q", h2)
		}
		shot(t, alice, dir, "finding")
	})

	p := f.createPlan("Security patches, week 48")
	planURL := base + "/plans/" + p.ID

	t.Run("a forged form is refused", func(t *testing.T) {
		var msg string
		run(t, alice, "forged CSRF",
			chromedp.Navigate(planURL),
			chromedp.WaitVisible(chromedp.CSS(`#approve`)),
			chromedp.SetValue(chromedp.CSS(`form.decide input[name=csrf]`), "forged-token"),
			chromedp.Click(chromedp.CSS(`#approve`)),
			chromedp.WaitVisible(chromedp.CSS(`#error-message`)),
			text(`#error-message`, &msg))
		if !strings.Contains(msg, "CSRF") {
			t.Errorf("forged form: %q", msg)
		}
		if st := f.planStatus(p.ID); len(st.Plan.Approvals) != 0 {
			t.Fatal("the forged form approved")
		}
	})

	t.Run("a viewer is refused", func(t *testing.T) {
		vera := tab(t, b)
		browserLogin(t, vera, base, "vera", "/plans/"+p.ID)
		var buttons int
		run(t, vera, "plan page", chromedp.WaitVisible(chromedp.CSS(`#rings-h`)), eval(`document.querySelectorAll("#approve").length`, &buttons))
		if buttons != 0 {
			t.Error("a viewer is offered the approve button")
		}
		// She sends the approval anyway, with her own session's token.
		var msg string
		run(t, vera, "viewer approves",
			chromedp.Evaluate[chromedp.Void](`(() => { const f = document.createElement("form"); f.method = "post"; f.action = location.pathname + "/approve";
				const c = document.createElement("input"); c.name = "csrf"; c.value = document.querySelector(".who input[name=csrf]").value; f.appendChild(c);
				document.body.appendChild(f); f.submit(); return true })()`),
			chromedp.WaitVisible(chromedp.CSS(`#error-message`)),
			text(`#error-message`, &msg))
		if !strings.Contains(msg, "role viewer may not") {
			t.Errorf("viewer's approval: %q", msg)
		}
	})

	t.Run("two people approve", func(t *testing.T) {
		var approvals string
		run(t, alice, "alice approves",
			chromedp.Navigate(planURL),
			chromedp.WaitVisible(chromedp.CSS(`#comment`)),
			chromedp.SendKeys(chromedp.CSS(`#comment`), "staging first, fine by me"),
			chromedp.Click(chromedp.CSS(`#approve`)),
			chromedp.WaitNotPresent(chromedp.CSS(`#approve`)),
			text(`#approvals`, &approvals))
		if approvals != "1" {
			t.Errorf("approvals after alice: %q", approvals)
		}
		shot(t, alice, dir, "plan")
		bob := tab(t, b)
		browserLogin(t, bob, base, "bob", "/plans/"+p.ID)
		var state string
		run(t, bob, "bob approves and starts",
			chromedp.WaitVisible(chromedp.CSS(`#approve`)),
			chromedp.Click(chromedp.CSS(`#approve`)),
			chromedp.WaitVisible(chromedp.CSS(`#start`)),
			text(`#plan-state`, &state))
		if state != "approved" {
			t.Errorf("plan after bob: %q", state)
		}
		st := f.planStatus(p.ID)
		if len(st.Plan.Approvals) != 2 || st.Plan.Approvals[0].By != "user:alice" || st.Plan.Approvals[1].By != "user:bob" {
			t.Fatalf("approvals: %+v", st.Plan.Approvals)
		}
		run(t, alice, "alice starts", chromedp.Navigate(planURL), chromedp.Click(chromedp.CSS(`#start`)), chromedp.WaitVisible(chromedp.CSS(`#rollout[data-progress]`)))
		// The overview with work on it: the rollout in flight, a plan
		// awaiting bob.
		next := f.createPlan("Security patches, week 49")
		var awaiting, flight string
		run(t, bob, "bob's overview", chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS(`#flight-h`)),
			text(`#awaiting-count`, &awaiting), text(`#flight-h .count`, &flight))
		if awaiting != "1" || flight != "1" {
			t.Errorf("bob's overview: %s awaiting him, %s in flight; want 1 and 1", awaiting, flight)
		}
		shot(t, bob, dir, "overview-busy")
		run(t, bob, "follow the awaiting plan", chromedp.Click(chromedp.CSS(`#await-h + table a`)), chromedp.WaitVisible(chromedp.CSS(`#approve`)))
		var loc string
		run(t, bob, "where", into(&loc, chromedp.Location()))
		if !strings.HasSuffix(loc, "/plans/"+next.ID) {
			t.Errorf("the awaiting plan's link led to %s", loc)
		}
	})

	t.Run("the rollout progresses without a reload", func(t *testing.T) {
		// A mark a reload would erase.
		run(t, alice, "mark", chromedp.Evaluate[chromedp.Void](`window.notReloaded = true`))
		ctx := context.Background()
		seen := map[string]bool{}
		for i := 0; i < 30; i++ {
			f.step(ctx)
			var state string
			time.Sleep(1500 * time.Millisecond) // the page's stream reads every second
			run(t, alice, "state", text(`#rollout-state`, &state))
			seen[state] = true
			if i == 0 {
				shot(t, alice, dir, "rollout-running")
			}
			if st := f.planStatus(p.ID); st.Rollout != nil && st.Rollout.State == rollout.Completed && state == "completed" {
				break
			}
		}
		var notReloaded bool
		var outcomes []string
		run(t, alice, "after", eval(`window.notReloaded === true`, &notReloaded),
			eval(`[...document.querySelectorAll("td[data-host]")].map(c => c.innerText)`, &outcomes))
		if !seen["completed"] || !notReloaded {
			t.Fatalf("states seen %v; not reloaded %v", seen, notReloaded)
		}
		for _, o := range outcomes {
			if o != "succeeded" {
				t.Errorf("host outcome on the page: %q", o)
			}
		}
		shot(t, alice, dir, "rollout-done")
	})

	t.Run("the KPI panel and the fleet as of a date", func(t *testing.T) {
		// As of a fixed time after the rollout, so the figures cannot move
		// between the page and the API.
		f.clock.advance(time.Minute)
		after := f.clock.now().UTC().Format(time.RFC3339)
		f.clock.advance(time.Minute)
		var rep kpi.Report
		f.apiDo("GET", "/kpi?since=90d&by=priority&as_of="+url.QueryEscape(after), nil, &rep)
		var open, overdue, sla, mttpLabel string
		waitKPI(t, alice, base+"/?as_of="+url.QueryEscape(after))
		run(t, alice, "panel", chromedp.WaitVisible(chromedp.CSS(`#kpi-open`)),
			text(`#kpi-open .num`, &open), text(`#kpi-overdue .num`, &overdue), text(`#kpi-sla .num`, &sla), text(`#kpi-mttp .lbl`, &mttpLabel))
		wantSLA := "—"
		if d := rep.Total.SLA.Due - rep.Total.SLA.Excluded; d > 0 {
			wantSLA = strconv.FormatFloat(rep.Total.SLA.Rate*100, 'f', 1, 64) + " %"
		}
		if open != strconv.Itoa(rep.Total.Open.Count) || overdue != strconv.Itoa(rep.Total.Open.Overdue) || sla != wantSLA ||
			!strings.Contains(mttpLabel, "("+strconv.Itoa(rep.Total.MTTP.N)+" patched") {
			t.Errorf("panel: open %s, overdue %s, SLA %s, MTTP %q; the API's: %d, %d, %s, %d patched",
				open, overdue, sla, mttpLabel, rep.Total.Open.Count, rep.Total.Open.Overdue, wantSLA, rep.Total.MTTP.N)
		}
		shot(t, alice, dir, "overview-kpi")
		// The fleet before the rollout: the overview's numbers are the
		// ledger's then, and P3's leads to that many findings open then.
		var then kpi.Report
		f.apiDo("GET", "/kpi?since=90d&by=priority&as_of="+url.QueryEscape(before), nil, &then)
		var total, p3, listed, note string
		waitKPI(t, alice, base+"/?as_of="+url.QueryEscape(before))
		run(t, alice, "as of before", chromedp.WaitVisible(chromedp.CSS(`#asof-note`)),
			text(`#tile-open .num`, &total), text(`#open-P3`, &p3),
			chromedp.Click(chromedp.CSS(`#open-P3`)), chromedp.WaitVisible(chromedp.CSS(`#findings-asof`)),
			text(`#asof-total`, &listed), text(`#asof-note`, &note))
		wantP3 := 0
		for _, g := range then.Groups {
			if g.Group == "P3" {
				wantP3 = g.Open.Count
			}
		}
		if total != strconv.Itoa(then.Total.Open.Count) || p3 != strconv.Itoa(wantP3) || listed != p3 {
			t.Errorf("as of %s: %s open, %s P3, its list %s; the API's %d and %d", before, total, p3, listed, then.Total.Open.Count, wantP3)
		}
		if then.Total.Open.Count <= rep.Total.Open.Count && rep.Total.MTTP.N > 0 {
			t.Errorf("open before the rollout %d, after %d with %d patched", then.Total.Open.Count, rep.Total.Open.Count, rep.Total.MTTP.N)
		}
		shot(t, alice, dir, "findings-asof")
		waitKPI(t, alice, base+"/kpi?by=priority&as_of="+url.QueryEscape(after))
		run(t, alice, "kpi page", chromedp.WaitVisible(chromedp.CSS(`#kpi-table`)))
		shot(t, alice, dir, "kpi")
	})

	t.Run("audit", func(t *testing.T) {
		ada := tab(t, b)
		browserLogin(t, ada, base, "ada", "/audit")
		var msg string
		run(t, ada, "verify", chromedp.Click(chromedp.CSS(`#verify`)), chromedp.WaitVisible(chromedp.CSS(`#verify-result`)), text(`#verify-result`, &msg))
		if !strings.Contains(msg, "verifies") {
			t.Errorf("verify: %q", msg)
		}
		shot(t, ada, dir, "audit")
	})

	t.Run("logout", func(t *testing.T) {
		var note, url string
		run(t, alice, "logout", chromedp.Navigate(base+"/"), chromedp.Click(chromedp.CSS(`#logout`)), chromedp.WaitVisible(chromedp.CSS(`#login`)),
			text(`.login .note`, &note),
			chromedp.Navigate(base+"/hosts"), chromedp.WaitVisible(chromedp.CSS(`#login`)), into(&url, chromedp.Location()))
		if note != "You are logged out." || !strings.Contains(url, "/login?next=") {
			t.Errorf("after logout: %q, %s", note, url)
		}
		shot(t, alice, dir, "login")
	})
}

// waitKPI opens a page with KPI figures, reloading it while they are
// being computed (in the background).
func waitKPI(t *testing.T, ctx context.Context, page string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var pending bool
		run(t, ctx, "open "+page, chromedp.Navigate(page), chromedp.WaitVisible(chromedp.CSS(`#main`)),
			eval(`document.querySelector("#kpi-pending") !== null`, &pending))
		if !pending {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: the KPIs still being computed after 2 minutes", page)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// into runs a, keeping its value in dst.
func into[T any](dst *T, a chromedp.Action[T]) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		v, err := a(ctx, tg)
		*dst = v
		return err
	})
}

// text is the text of the element sel selects (CSS).
func text(sel string, dst *string) chromedp.Action[chromedp.Void] {
	return into(dst, chromedp.Text(chromedp.CSS(sel)))
}

// eval evaluates a JavaScript expression into dst.
func eval[T any](expr string, dst *T) chromedp.Action[chromedp.Void] {
	return into(dst, chromedp.Evaluate[T](expr))
}

// waitURL waits for the tab to show a loaded page whose URL contains
// part, and returns the URL.
func waitURL(t *testing.T, ctx context.Context, part string) string {
	t.Helper()
	var last string
	for i := 0; i < 200; i++ {
		loc, err := chromedp.Run(ctx, chromedp.Location())
		if err == nil {
			last = loc
			if strings.Contains(loc, part) {
				if ready, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.readyState`)); err == nil && ready == "complete" {
					return loc
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("the page did not reach a URL with %q (last %s)", part, last)
	return ""
}
