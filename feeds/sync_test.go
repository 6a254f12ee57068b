package feeds_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/patchbay/patchbay/feeds"
	"github.com/patchbay/patchbay/internal/sharedtest"
)

// mirror serves ../shared/feeds in the upstream layout, plus a gzipped EPSS
// sample, and counts full (200) responses per path.
type mirror struct {
	*httptest.Server
	mu      sync.Mutex
	full    map[string]int
	corrupt map[string]bool
}

func newMirror(t *testing.T) *mirror {
	t.Helper()
	root := sharedtest.Dir(t, "feeds")
	csv, err := os.ReadFile("testdata/epss_scores-sample.csv")
	if err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(csv)
	zw.Close()
	m := &mirror{full: map[string]int{}, corrupt: map[string]bool{}}
	files := http.FileServer(http.Dir(root))
	m.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w}
		m.mu.Lock()
		corrupt := m.corrupt[r.URL.Path]
		m.mu.Unlock()
		switch {
		case corrupt:
			rec.WriteHeader(http.StatusOK)
			rec.Write([]byte("this is not a zip archive"))
		case r.URL.Path == "/epss/epss_scores-current.csv.gz":
			w.Header().Set("ETag", `"epss-1"`)
			if r.Header.Get("If-None-Match") == `"epss-1"` {
				rec.WriteHeader(http.StatusNotModified)
				break
			}
			rec.WriteHeader(http.StatusOK)
			rec.Write(gz.Bytes())
		default:
			files.ServeHTTP(rec, r)
		}
		if rec.status == http.StatusOK {
			m.mu.Lock()
			m.full[r.URL.Path]++
			m.mu.Unlock()
		}
	}))
	t.Cleanup(m.Close)
	return m
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func outcome(t *testing.T, outs []feeds.SyncOutcome, source string) feeds.SyncOutcome {
	t.Helper()
	for _, o := range outs {
		if o.Source == source {
			return o
		}
	}
	t.Fatalf("no outcome for %s in %+v", source, outs)
	return feeds.SyncOutcome{}
}

func TestSyncFromMirror(t *testing.T) {
	ctx := context.Background()
	m := newMirror(t)
	db := newDB(t)
	im := &feeds.Importer{Store: db}
	opts := feeds.SyncOptions{Ecosystems: []string{"Go", "PyPI"}, KEV: true, EPSS: true, Mirror: m.URL, TempDir: t.TempDir()}
	var progressCalls int
	opts.Progress = func(string, int64, int64) { progressCalls++ }

	outs, err := im.Sync(ctx, opts)
	if err != nil {
		t.Fatalf("sync: %v (%+v)", err, outs)
	}
	for _, s := range []string{"osv/Go", "osv/PyPI", "kev", "epss"} {
		if o := outcome(t, outs, s); o.Status != "updated" {
			t.Errorf("%s: %+v", s, o)
		}
	}
	if o := outcome(t, outs, "osv/Go"); o.Summary.Added < 4000 {
		t.Errorf("osv/Go added %d records", o.Summary.Added)
	}
	if o := outcome(t, outs, "epss"); o.Summary.EPSS != 5 {
		t.Errorf("epss: %+v", o.Summary)
	}
	if progressCalls == 0 {
		t.Error("no progress reported")
	}

	// Second sync: conditional requests, nothing downloaded in full again.
	before := map[string]int{}
	m.mu.Lock()
	for k, v := range m.full {
		before[k] = v
	}
	m.mu.Unlock()
	outs, err = im.Sync(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range outs {
		if o.Status != "not modified" {
			t.Errorf("second sync %s: %s", o.Source, o.Status)
		}
	}
	m.mu.Lock()
	for k, v := range m.full {
		if v != before[k] {
			t.Errorf("%s downloaded again (%d → %d full responses)", k, before[k], v)
		}
	}
	m.mu.Unlock()
}

func TestSyncCorruptDownloadChangesNothing(t *testing.T) {
	ctx := context.Background()
	m := newMirror(t)
	db := newDB(t)
	im := &feeds.Importer{Store: db}
	opts := feeds.SyncOptions{Ecosystems: []string{"Go"}, Mirror: m.URL, TempDir: t.TempDir()}
	if _, err := im.Sync(ctx, opts); err != nil {
		t.Fatal(err)
	}
	counts, _ := db.EcosystemCounts(ctx)
	m.mu.Lock()
	m.corrupt["/osv/Go/all.zip"] = true
	m.mu.Unlock()
	opts.Ecosystems = []string{"Go", "PyPI"} // the corrupt path answers 200 whatever the validators
	outs, err := im.Sync(ctx, opts)
	if err == nil || !strings.Contains(err.Error(), "1 of 2 sources failed") {
		t.Fatalf("err = %v", err)
	}
	if o := outcome(t, outs, "osv/Go"); o.Status != "failed" || !strings.Contains(o.Err, "not a zip archive") {
		t.Errorf("osv/Go: %+v", o)
	}
	if o := outcome(t, outs, "osv/PyPI"); o.Status != "updated" {
		t.Errorf("osv/PyPI: %+v", o)
	}
	after, _ := db.EcosystemCounts(ctx)
	if after["Go"] != counts["Go"] {
		t.Errorf("Go advisories %d → %d after a failed download", counts["Go"], after["Go"])
	}
}

func TestSyncOfflineSaysSoInOneLine(t *testing.T) {
	db := newDB(t)
	im := &feeds.Importer{Store: db}
	// A port nothing listens on: connection refused, as when offline.
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	outs, err := im.Sync(context.Background(), feeds.SyncOptions{Ecosystems: []string{"Go"}, Mirror: url, TempDir: filepath.Join(t.TempDir(), "tmp")})
	if err == nil {
		t.Fatal("sync against a closed port succeeded")
	}
	o := outcome(t, outs, "osv/Go")
	host := strings.TrimPrefix(url, "http://")
	if o.Status != "failed" || !strings.HasPrefix(o.Err, "cannot reach "+host+" (offline?)") || strings.Contains(o.Err, "\n") {
		t.Errorf("outcome %+v", o)
	}
}
