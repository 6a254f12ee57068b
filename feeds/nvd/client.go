package nvd

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/patchbay/patchbay/advisory"
)

// Upstream is NVD's CVE API 2.0.
const Upstream = "https://services.nvd.nist.gov/rest/json/cves/2.0"

// MaxWindow is the longest lastModStartDate..lastModEndDate range the API
// accepts.
const MaxWindow = 120 * 24 * time.Hour

// Client fetches CVE records from the API, page by page. It is not safe
// for concurrent use (it paces its own requests).
type Client struct {
	// URL is the API endpoint; empty for Upstream.
	URL  string
	HTTP *http.Client
	// APIKey, when set, is sent as the apiKey header (NVD's higher rate
	// limit).
	APIKey string
	// Delay is the pause between requests: NVD asks for 6 s without an
	// API key. Zero pauses not at all.
	Delay time.Duration
	// PageSize is resultsPerPage; zero for 2000, the API's maximum.
	PageSize int
	// Retries is how often a request refused for the moment (403, 429,
	// 5xx: NVD's answers to load) is tried again, after Delay doubled each
	// time; zero for 3.
	Retries int

	last time.Time // when the last request was sent
}

// Fetch returns every record last modified in [since, until], or, for a
// zero since, every record. Longer ranges than MaxWindow are fetched in
// windows. Records come in the API's order; a record in two windows (it
// changed during the fetch) comes twice, the later copy last.
func (c *Client) Fetch(ctx context.Context, since, until time.Time) ([]advisory.CVERecord, error) {
	if since.IsZero() {
		return c.window(ctx, url.Values{})
	}
	var out []advisory.CVERecord
	for start := since; start.Before(until); start = start.Add(MaxWindow) {
		end := start.Add(MaxWindow)
		if end.After(until) {
			end = until
		}
		q := url.Values{"lastModStartDate": {FormatTime(start)}, "lastModEndDate": {FormatTime(end)}}
		recs, err := c.window(ctx, q)
		if err != nil {
			return nil, err
		}
		out = append(out, recs...)
	}
	return out, nil
}

// window pages through one query.
func (c *Client) window(ctx context.Context, q url.Values) ([]advisory.CVERecord, error) {
	size := c.PageSize
	if size <= 0 {
		size = 2000
	}
	base := c.URL
	if base == "" {
		base = Upstream
	}
	var out []advisory.CVERecord
	for start := 0; ; {
		q.Set("startIndex", strconv.Itoa(start))
		q.Set("resultsPerPage", strconv.Itoa(size))
		u := base + "?" + q.Encode()
		p, err := c.getRetrying(ctx, u)
		if err != nil {
			return nil, err
		}
		out = append(out, p.Records...)
		start += len(p.Records)
		if start >= p.TotalResults {
			return out, nil
		}
		if len(p.Records) == 0 {
			return nil, fmt.Errorf("GET %s: no records at startIndex %d of %d", u, start, p.TotalResults)
		}
	}
}

// getRetrying gets one page, pausing Delay after the previous request,
// and tries again when NVD refuses for the moment.
func (c *Client) getRetrying(ctx context.Context, u string) (*Page, error) {
	retries := c.Retries
	if retries <= 0 {
		retries = 3
	}
	pause := c.Delay
	for attempt := 0; ; attempt++ {
		if wait := time.Until(c.last.Add(pause)); !c.last.IsZero() && wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil, ctx.Err()
			case <-t.C:
			}
		}
		c.last = time.Now()
		p, err := c.get(ctx, u)
		var busy *busyError
		if !errors.As(err, &busy) || attempt >= retries {
			return p, err
		}
		pause = 2*pause + time.Second // back off: NVD throttles without saying for how long
	}
}

// busyError is a response NVD gives under load (403, 429, 5xx).
type busyError struct{ msg string }

func (e *busyError) Error() string { return e.msg }

func (c *Client) get(ctx context.Context, u string) (*Page, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("User-Agent", "patchbay")
	if c.APIKey != "" {
		req.Header.Set("apiKey", c.APIKey)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg := resp.Header.Get("Message") // NVD explains refusals here
		if msg != "" {
			msg = ": " + msg
		}
		err := fmt.Errorf("GET %s: %s%s", u, resp.Status, msg)
		if resp.StatusCode == http.StatusForbidden || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500 {
			return nil, &busyError{msg: err.Error()}
		}
		return nil, err
	}
	p, err := Parse(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	return p, nil
}
