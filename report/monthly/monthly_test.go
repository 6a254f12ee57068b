package monthly

import (
	"bytes"
	"context"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/patchbay/patchbay/internal/sharedtest"
	"github.com/patchbay/patchbay/kpi"
)

var month = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)

func sample() Data {
	end := month.AddDate(0, 1, 0)
	fig := func(group string, open, overdue int, sla float64, due int) kpi.Figures {
		return kpi.Figures{Group: group, Open: kpi.OpenExposure{Count: open, Overdue: overdue, Assets: 3, Age: kpi.Durations{N: open, Mean: 12, Median: 9, P90: 30}},
			MTTP: kpi.Durations{N: 14, Mean: 6.5, Median: 5, P90: 13.25}, MTTPSeen: kpi.Durations{N: 14, Mean: 4, Median: 3, P90: 9},
			SLA: kpi.SLA{Due: due, OnTime: int(sla * float64(due)), Rate: sla}, Within: kpi.Ratio{Num: 9, Den: 12, Rate: 0.75}}
	}
	total := fig(kpi.All, 42, 7, 0.8, 20)
	total.Jobs = &kpi.Jobs{Completed: 50, Succeeded: 46, Failed: 3, RolledBack: 1, Success: 0.92}
	total.Uptime = &kpi.Uptime{Hosts: 10, Window: 7200, Down: 60, PatchDown: 14, Availability: 1 - 60.0/7200}
	total.Coverage = &kpi.Cover{Hosts: 10, Reporting: 9, Rate: 0.9}
	var open, mttp, success kpi.Series
	for w := 0; w < 52; w++ {
		s := end.AddDate(0, 0, -7*(52-w))
		open.Points = append(open.Points, kpi.Point{Start: s, End: s.AddDate(0, 0, 7), Values: map[string]float64{"P1": float64(w % 5), "P2": float64(10 + w%7), "P3": 30 - float64(w)/3}})
	}
	for m := 0; m < 12; m++ {
		s := month.AddDate(0, m-11, 0)
		mttp.Points = append(mttp.Points, kpi.Point{Start: s, End: s.AddDate(0, 1, 0), Values: map[string]float64{kpi.All: 20 - float64(m)}})
		success.Points = append(success.Points, kpi.Point{Start: s, End: s.AddDate(0, 1, 0), Values: map[string]float64{kpi.All: 0.8 + float64(m)/100}})
	}
	due := end.AddDate(0, 0, -20)
	ex := func(host, pkg, fixed, vuln, prio string) kpi.Exposure {
		return kpi.Exposure{Interval: kpi.Interval{Asset: host, Ecosystem: "Debian:12", Package: pkg, Fixed: fixed, Vulnerability: vuln, Priority: prio, Due: due}, Hostname: host, Overdue: true}
	}
	return Data{Month: month, Generated: end, Report: kpi.Report{From: month, AsOf: end, By: "team", WithinDays: 14, Total: total,
		Groups: []kpi.Figures{fig("blue", 20, 3, 0.9, 10), fig("red", 22, 4, 0.7, 10)}},
		ByPriority: kpi.Report{From: month, AsOf: end, By: "priority", Total: total, Groups: []kpi.Figures{fig("P1", 2, 1, 1, 2), fig("P2", 40, 6, 0.75, 18)}},
		Open:       open, MTTP: mttp, Success: success,
		Overdue: []kpi.Exposure{
			ex("h1", "openssl", "3.0.15-1~deb12u1", "CVE-2024-0001", "P2"), ex("h2", "openssl", "3.0.15-1~deb12u1", "CVE-2024-0001", "P2"),
			ex("h1", "openssl", "3.0.15-1~deb12u1", "CVE-2024-0002", "P3"), ex("h3", "curl", "7.88.1-10+deb12u8", "CVE-2024-0003", "P1"),
			{Interval: kpi.Interval{Asset: "h4", Package: "zlib", Vulnerability: "CVE-2024-0004", Priority: "P1", Due: end.AddDate(0, 0, 5)}, Overdue: false},
		}}
}

func TestTopPatches(t *testing.T) {
	got := TopPatches(sample().Overdue, 0)
	if len(got) != 2 {
		t.Fatalf("%d patches, want 2 (zlib is not overdue): %+v", len(got), got)
	}
	if got[0].Package != "curl" || got[0].Priority != "P1" || got[0].Findings != 1 {
		t.Errorf("first patch %+v, want curl (P1)", got[0])
	}
	if p := got[1]; p.Package != "openssl" || p.Findings != 3 || p.Hosts != 2 || p.Vulns != 2 || p.Priority != "P2" {
		t.Errorf("openssl patch %+v, want 3 findings on 2 hosts, 2 vulnerabilities, P2", p)
	}
}

// TestRenderInChromium opens the report as a person would, in headless
// Chromium with the network off, takes a screenshot and reads the DOM.
func TestRenderInChromium(t *testing.T) {
	bin := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			bin = p
			break
		}
	}
	if bin == "" {
		sharedtest.System(t, "chromium is not installed (apt-get install -y chromium): the report is not rendered")
	}
	var b bytes.Buffer
	if err := Render(&b, sample()); err != nil {
		t.Fatal(err)
	}
	html := b.String()
	for _, banned := range []string{"<script", "http://", "https://", "<link", "@import", "url("} {
		if strings.Contains(strings.ReplaceAll(html, `xmlns="http://www.w3.org/2000/svg"`, ""), banned) {
			t.Errorf("the report is not self-contained: it has %q", banned)
		}
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "report.html")
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(bin), chromedp.Flag("headless", true), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true), chromedp.NoFirstRun,
		chromedp.UserDataDir(filepath.Join(dir, "profile")), chromedp.WindowSize(1100, 900))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancel = context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	var requests []string
	chromedp.Listen(ctx, func(ev any) {
		if r, ok := ev.(*network.EventRequestWillBeSent); ok && !strings.HasPrefix(r.Request.URL, "file://") && !strings.HasPrefix(r.Request.URL, "data:") {
			requests = append(requests, r.Request.URL)
		}
	})
	if err := chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Call(ctx, network.Enable, network.EnableParams{})
		return err
	}), chromedp.Navigate("file://"+path), chromedp.WaitVisible(chromedp.ID("overdue"))); err != nil {
		t.Fatal(err)
	}
	text := func(sel string) string {
		v, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("%s: %v", sel, err)
		}
		return v
	}
	count := func(sel string) int {
		n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll(`+strconv.Quote(sel)+`).length`))
		if err != nil {
			t.Fatalf("%s: %v", sel, err)
		}
		return n
	}
	title, openCard := text("#title"), text("#card-open .v")
	charts, series := count("svg.chart"), count("svg.chart polyline.series")
	patchRows, prioRows := count("#overdue tr.patch"), count("#priorities tbody tr")
	slaBars, err := chromedp.Run(ctx, chromedp.Evaluate[string](`Array.from(document.querySelectorAll("svg.bar rect.bar")).map(r => r.dataset.name + "=" + Math.round(r.getBBox().width)).join(",")`))
	if err != nil {
		t.Fatal(err)
	}
	chartWidth, err := chromedp.Run(ctx, chromedp.Evaluate[float64](`document.querySelector("svg.line").getBoundingClientRect().width`))
	if err != nil {
		t.Fatal(err)
	}
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	if title != "Patching report, June 2026" {
		t.Errorf("title %q", title)
	}
	if openCard != "42" {
		t.Errorf("open card %q, want 42", openCard)
	}
	// Four charts: open exposure (3 priorities), MTTP (1), SLA bars,
	// success (1).
	if charts != 4 || series != 5 {
		t.Errorf("%d charts with %d lines, want 4 charts and 5 lines", charts, series)
	}
	// The bars are in proportion: 90% and 70% of the same scale.
	if slaBars != "blue=378,red=294" {
		t.Errorf("SLA bars %q, want blue=378,red=294", slaBars)
	}
	if patchRows != 2 || prioRows != 2 {
		t.Errorf("%d overdue patches and %d priority rows, want 2 and 2", patchRows, prioRows)
	}
	if chartWidth < 600 {
		t.Errorf("line chart %.0f px wide: not laid out", chartWidth)
	}
	if len(requests) > 0 {
		t.Errorf("opening the report asked the network for %v", requests)
	}
	img, err := png.Decode(bytes.NewReader(shot))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if b := img.Bounds(); b.Dx() < 1000 || b.Dy() < 1500 {
		t.Errorf("screenshot %dx%d: the page did not lay out", b.Dx(), b.Dy())
	}
	if out := os.Getenv("PATCHBAY_REPORT_PNG"); out != "" {
		os.WriteFile(out, shot, 0o644) // to look at it
	}
}
