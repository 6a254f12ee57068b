// Package promtest runs the real monitoring for tests: Debian's
// prometheus and prometheus-alertmanager binaries on loopback with a
// test configuration (1 s scrape and evaluation intervals), and small
// per-host exporters whose error ratio the test sets. Tests skip (or fail
// with PATCHBAY_REQUIRE_SYSTEM=1) when the binaries are not installed.
package promtest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/patchbay/patchbay/internal/sharedtest"
)

// The loopback ports the monitoring of tests listens on.
const (
	FirstPort = 18400
	LastPort  = 18499
)

var portMu sync.Mutex
var nextPort = FirstPort

// Port returns a free loopback port of the range, not given before by
// this process.
func Port(tb testing.TB) int {
	tb.Helper()
	portMu.Lock()
	defer portMu.Unlock()
	for ; nextPort <= LastPort; nextPort++ {
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", nextPort))
		if err != nil {
			continue
		}
		l.Close()
		nextPort++
		return nextPort - 1
	}
	tb.Fatalf("promtest: no free port left in 127.0.0.1:%d–%d", FirstPort, LastPort)
	return 0
}

// Binary returns the path of a system binary, or skips (fails under
// PATCHBAY_REQUIRE_SYSTEM=1) when it is missing.
func Binary(tb testing.TB, name, pkg string) string {
	tb.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		sharedtest.System(tb, fmt.Sprintf("%s not installed (apt-get install %s)", name, pkg))
	}
	return p
}

// Exporter is one host's metrics endpoint: app_error_ratio, the share of
// its requests that fail, set by the test.
type Exporter struct {
	Host  string
	Addr  string // host:port
	ratio prometheus.Gauge
}

// NewExporter serves host's metrics on loopback until the test ends.
func NewExporter(tb testing.TB, host string, ratio float64) *Exporter {
	reg := prometheus.NewRegistry()
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "app_error_ratio", Help: "Share of the requests that failed."})
	reg.MustRegister(g)
	g.Set(ratio)
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	tb.Cleanup(srv.Close)
	return &Exporter{Host: host, Addr: strings.TrimPrefix(srv.URL, "http://"), ratio: g}
}

// Set changes the error ratio the exporter reports.
func (e *Exporter) Set(ratio float64) { e.ratio.Set(ratio) }

// Proc is a running prometheus or alertmanager.
type Proc struct {
	URL  string
	cmd  *exec.Cmd
	out  *bytes.Buffer
	done chan struct{}
}

// Stop ends the process (idempotent).
func (p *Proc) Stop() {
	if p.cmd.ProcessState == nil {
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

func start(tb testing.TB, bin string, args []string, url string) *Proc {
	tb.Helper()
	out := &bytes.Buffer{}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		tb.Fatalf("%s: %v", bin, err)
	}
	p := &Proc{URL: url, cmd: cmd, out: out, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	tb.Cleanup(p.Stop)
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(url + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p
			}
		}
		select {
		case <-p.done:
			tb.Fatalf("%s exited: %s", bin, out)
		default:
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s not ready after 30s: %s", bin, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Prometheus starts Prometheus scraping the exporters every second, each
// target labelled host=<its host>, with the rule files given.
func Prometheus(tb testing.TB, exporters []*Exporter, rules ...string) *Proc {
	tb.Helper()
	bin := Binary(tb, "prometheus", "prometheus")
	dir := tb.TempDir()
	var b strings.Builder
	b.WriteString("global: {scrape_interval: 1s, evaluation_interval: 1s}\n")
	if len(rules) > 0 {
		b.WriteString("rule_files:\n")
		for _, r := range rules {
			fmt.Fprintf(&b, "  - %q\n", r)
		}
	}
	b.WriteString("scrape_configs:\n  - job_name: app\n    static_configs:\n")
	for _, e := range exporters {
		fmt.Fprintf(&b, "      - targets: [%q]\n        labels: {host: %q}\n", e.Addr, e.Host)
	}
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte(b.String()), 0o600); err != nil {
		tb.Fatal(err)
	}
	port := Port(tb)
	return start(tb, bin, []string{"--config.file=" + cfg, "--storage.tsdb.path=" + filepath.Join(dir, "data"),
		fmt.Sprintf("--web.listen-address=127.0.0.1:%d", port), "--log.level=warn"}, fmt.Sprintf("http://127.0.0.1:%d", port))
}

// Alertmanager starts Alertmanager (no cluster) on port (0: a free one of
// the range) routing every alert to a webhook receiver at webhookURL ("":
// no receiver) with a bearer token, grouped by alertname and host, sent
// at once.
func Alertmanager(tb testing.TB, port int, webhookURL, bearer string) *Proc {
	tb.Helper()
	bin := Binary(tb, "prometheus-alertmanager", "prometheus-alertmanager")
	dir := tb.TempDir()
	cfg := "route: {receiver: patchbay, group_by: [alertname, host], group_wait: 0s, group_interval: 1s, repeat_interval: 1h}\nreceivers:\n  - name: patchbay\n"
	if webhookURL != "" {
		cfg += fmt.Sprintf("    webhook_configs:\n      - url: %q\n        send_resolved: true\n        http_config: {authorization: {type: Bearer, credentials: %q}}\n", webhookURL, bearer)
	}
	path := filepath.Join(dir, "alertmanager.yml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		tb.Fatal(err)
	}
	if port == 0 {
		port = Port(tb)
	}
	return start(tb, bin, []string{"--config.file=" + path, "--storage.path=" + filepath.Join(dir, "data"),
		fmt.Sprintf("--web.listen-address=127.0.0.1:%d", port), "--cluster.listen-address=", "--log.level=warn"}, fmt.Sprintf("http://127.0.0.1:%d", port))
}

// Fire posts an alert to Alertmanager's API v2, starting at startsAt and
// ending at endsAt (zero: in an hour).
func (p *Proc) Fire(ctx context.Context, labels map[string]string, startsAt, endsAt time.Time) error {
	if endsAt.IsZero() {
		endsAt = time.Now().Add(time.Hour)
	}
	var b strings.Builder
	b.WriteString(`[{"labels":{`)
	i := 0
	for k, v := range labels {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, "%q:%q", k, v)
		i++
	}
	fmt.Fprintf(&b, `},"startsAt":%q,"endsAt":%q}]`, startsAt.UTC().Format(time.RFC3339Nano), endsAt.UTC().Format(time.RFC3339Nano))
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.URL+"/api/v2/alerts", strings.NewReader(b.String()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		msg, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("alertmanager: POST /api/v2/alerts %s: %s: %s", b.String(), resp.Status, msg)
	}
	return nil
}
