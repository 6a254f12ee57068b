package feeds

import (
	"archive/zip"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"strings"
	"time"

	"github.com/patchbay/patchbay/feeds/nvd"
)

// Upstream locations. A mirror serves the same files under one base URL:
// <mirror>/osv/<Ecosystem>/all.zip, <mirror>/kev/known_exploited_vulnerabilities.json
// and <mirror>/epss/epss_scores-current.csv.gz.
const (
	UpstreamOSV  = "https://osv-vulnerabilities.storage.googleapis.com"
	UpstreamKEV  = "https://www.cisa.gov/sites/default/files/feeds/known_exploited_vulnerabilities.json"
	UpstreamEPSS = "https://epss.empiricalsecurity.com/epss_scores-current.csv.gz"
)

// DefaultEcosystems are synced when none is named and none was imported.
var DefaultEcosystems = []string{"Go", "PyPI", "npm", "Maven", "crates.io", "RubyGems", "Packagist", "NuGet"}

// SyncOptions says what to download and from where.
type SyncOptions struct {
	// Ecosystems are the OSV ecosystems to fetch ("Go", "Debian", …).
	Ecosystems []string
	// KEV and EPSS select the exploitation feeds.
	KEV, EPSS bool
	// Mirror is the base URL of a mirror with the upstream layout; empty
	// for upstream.
	Mirror string
	// TempDir receives downloads before they are applied.
	TempDir string
	// Client is the HTTP client; nil for a default with sane timeouts.
	Client *http.Client
	// NVD fetches the NVD CVE records changed since the newest stored one
	// (every record on a first sync) from the paged CVE API at NVDURL
	// (empty: nvd.Upstream), with NVDAPIKey when set and NVDDelay between
	// requests (NVD asks for 6 s without a key).
	NVD       bool
	NVDURL    string
	NVDAPIKey string
	NVDDelay  time.Duration
	// Progress, when set, is told of download progress (for a bar).
	Progress func(source string, done, total int64)
}

// SyncOutcome is what happened to one source.
type SyncOutcome struct {
	Source  string  `json:"source"`
	URL     string  `json:"url"`
	Status  string  `json:"status"` // "updated", "not modified", "failed"
	Summary Summary `json:"summary"`
	Err     string  `json:"error,omitempty"`
}

// Sync downloads the selected feeds and applies each atomically. A source
// that fails does not stop the others; the returned error says how many
// failed.
func (im *Importer) Sync(ctx context.Context, opts SyncOptions) ([]SyncOutcome, error) {
	client := opts.Client
	if client == nil {
		client = &http.Client{Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 15 * time.Second}).DialContext,
			TLSHandshakeTimeout:   15 * time.Second,
			ResponseHeaderTimeout: 60 * time.Second,
		}}
	}
	states := map[string]SourceState{}
	srcs, err := im.Store.Sources(ctx)
	if err != nil {
		return nil, err
	}
	for _, s := range srcs {
		states[s.Source] = s
	}
	type job struct{ source, url string }
	var jobs []job
	for _, eco := range opts.Ecosystems {
		u := UpstreamOSV + "/" + url.PathEscape(eco) + "/all.zip"
		if opts.Mirror != "" {
			u = strings.TrimSuffix(opts.Mirror, "/") + "/osv/" + url.PathEscape(eco) + "/all.zip"
		}
		jobs = append(jobs, job{SourceOSVPrefix + eco, u})
	}
	if opts.KEV {
		u := UpstreamKEV
		if opts.Mirror != "" {
			u = strings.TrimSuffix(opts.Mirror, "/") + "/kev/known_exploited_vulnerabilities.json"
		}
		jobs = append(jobs, job{SourceKEV, u})
	}
	if opts.EPSS {
		u := UpstreamEPSS
		if opts.Mirror != "" {
			u = strings.TrimSuffix(opts.Mirror, "/") + "/epss/epss_scores-current.csv.gz"
		}
		jobs = append(jobs, job{SourceEPSS, u})
	}
	var out []SyncOutcome
	failed := 0
	for _, j := range jobs {
		o := SyncOutcome{Source: j.source, URL: j.url}
		sum, changed, err := im.syncOne(ctx, client, j.source, j.url, states[j.source], opts)
		switch {
		case err != nil:
			o.Status, o.Err = "failed", err.Error()
			failed++
			if ctx.Err() != nil {
				return append(out, o), ctx.Err()
			}
		case changed:
			o.Status, o.Summary = "updated", sum
		default:
			o.Status = "not modified"
		}
		out = append(out, o)
	}
	total := len(jobs)
	if opts.NVD {
		total++
		c := &nvd.Client{URL: opts.NVDURL, HTTP: client, APIKey: opts.NVDAPIKey, Delay: opts.NVDDelay}
		o := SyncOutcome{Source: SourceNVD, URL: c.URL}
		if o.URL == "" {
			o.URL = nvd.Upstream
		}
		sum, changed, err := im.syncNVD(ctx, c, states[SourceNVD])
		switch {
		case err != nil:
			o.Status, o.Err = "failed", err.Error()
			failed++
		case changed:
			o.Status, o.Summary = "updated", sum
		default:
			o.Status = "not modified"
		}
		out = append(out, o)
		if ctx.Err() != nil {
			return out, ctx.Err()
		}
	}
	if failed > 0 {
		return out, fmt.Errorf("feeds sync: %d of %d sources failed", failed, total)
	}
	return out, nil
}

// syncOne fetches one source with a conditional request and applies it.
func (im *Importer) syncOne(ctx context.Context, client *http.Client, source, u string, prev SourceState, opts SyncOptions) (Summary, bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return Summary{}, false, fmt.Errorf("%s: %w", source, err)
	}
	if prev.Origin == u {
		if prev.ETag != "" {
			req.Header.Set("If-None-Match", prev.ETag)
		}
		if prev.LastModified != "" {
			req.Header.Set("If-Modified-Since", prev.LastModified)
		}
	}
	req.Header.Set("User-Agent", "patchbay")
	resp, err := client.Do(req)
	if err != nil {
		return Summary{}, false, netError(u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotModified {
		return Summary{}, false, nil
	}
	if resp.StatusCode != http.StatusOK {
		return Summary{}, false, fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	st := SourceState{Origin: u, ETag: resp.Header.Get("ETag"), LastModified: resp.Header.Get("Last-Modified")}
	if err := os.MkdirAll(opts.TempDir, 0o750); err != nil {
		return Summary{}, false, err
	}
	tmp, err := os.CreateTemp(opts.TempDir, "download-*")
	if err != nil {
		return Summary{}, false, err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	var body io.Reader = resp.Body
	if opts.Progress != nil {
		body = &progressReader{r: resp.Body, total: resp.ContentLength, fn: func(done, total int64) { opts.Progress(source, done, total) }}
	}
	n, err := io.Copy(tmp, body)
	if err != nil {
		return Summary{}, false, fmt.Errorf("download %s: %w", u, netError(u, err))
	}
	if resp.ContentLength >= 0 && n != resp.ContentLength {
		return Summary{}, false, fmt.Errorf("download %s: got %d of %d bytes", u, n, resp.ContentLength)
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return Summary{}, false, err
	}
	switch {
	case strings.HasPrefix(source, SourceOSVPrefix):
		zr, err := zip.NewReader(tmp, n)
		if err != nil {
			return Summary{}, false, fmt.Errorf("%s: %s is not a zip archive: %w", source, u, err)
		}
		p, err := im.begin(ctx)
		if err != nil {
			return Summary{}, false, err
		}
		if err := im.addZip(p, zr, path.Base(path.Dir(req.URL.Path))+"/all.zip", source, st); err != nil {
			return Summary{}, false, err
		}
		p.sources[len(p.sources)-1].Origin = u
		if p.sum.Added+p.sum.Updated+p.sum.Removed == 0 && p.sum.Malformed == 0 && prev.Origin != "" {
			// Same content under new validators: remember them only.
			st.Source = source
			return p.sum, false, im.Store.UpdateValidators(ctx, st)
		}
		err = im.commit(ctx, p) // before reading p.sum: commit records what changed
		return p.sum, true, err
	case source == SourceKEV:
		s, err := im.ImportKEV(ctx, tmp, st)
		return s, err == nil, err
	case source == SourceEPSS:
		s, err := im.ImportEPSS(ctx, tmp, st)
		return s, err == nil, err
	}
	return Summary{}, false, fmt.Errorf("unknown source %s", source)
}

// netError turns transport failures into one clear line.
func netError(u string, err error) error {
	host := u
	if pu, perr := url.Parse(u); perr == nil {
		host = pu.Host
	}
	var dnsErr *net.DNSError
	var opErr *net.OpError
	switch {
	case errors.As(err, &dnsErr):
		return fmt.Errorf("cannot reach %s (offline?): cannot resolve %s", host, dnsErr.Name)
	case errors.As(err, &opErr):
		return fmt.Errorf("cannot reach %s (offline?): %v", host, opErr.Err)
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("cannot reach %s: timed out", host)
	}
	return fmt.Errorf("GET %s: %w", u, err)
}

type progressReader struct {
	r           io.Reader
	done, total int64
	last        time.Time
	fn          func(done, total int64)
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.done += int64(n)
	if time.Since(p.last) > 100*time.Millisecond || err == io.EOF {
		p.last = time.Now()
		p.fn(p.done, p.total)
	}
	return n, err
}
