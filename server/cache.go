package server

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/patchbay/patchbay/advisory"
	"github.com/patchbay/patchbay/feeds"
	"github.com/patchbay/patchbay/match"
	"github.com/patchbay/patchbay/scan"
)

// feedIndex is the advisory index as the server reads it: a store that
// also says when the feeds last changed.
type feedIndex interface {
	scan.Source
	Sources(ctx context.Context) ([]feeds.SourceState, error)
}

// advisoryCache keeps parsed advisories per package key, and KEV and EPSS
// per CVE, in memory: every ingest matches ~1,500 packages, most of them
// the same across a fleet, and decoding their advisories from the
// database was most of an ingest's time. The cache is dropped when this
// replica refreshes the feeds, and when the feeds' state in the database
// changes (another replica refreshed), checked at most every checkEvery.
type advisoryCache struct {
	src        feedIndex
	checkEvery time.Duration

	loadMu  sync.Mutex // one loader at a time: concurrent misses wait for it
	mu      sync.RWMutex
	gen     string
	checked time.Time
	advs    map[match.Key][]*advisory.Advisory
	kev     map[string]*advisory.KEVEntry   // nil: not in KEV
	epss    map[string]*advisory.EPSSScore  // nil: no score
	enr     map[string]*advisory.Enrichment // nil: none
}

func newAdvisoryCache(src feedIndex) *advisoryCache {
	c := &advisoryCache{src: src, checkEvery: 2 * time.Second}
	c.reset("")
	return c
}

func (c *advisoryCache) reset(gen string) {
	c.gen = gen
	c.advs = map[match.Key][]*advisory.Advisory{}
	c.kev = map[string]*advisory.KEVEntry{}
	c.epss = map[string]*advisory.EPSSScore{}
	c.enr = map[string]*advisory.Enrichment{}
}

// Invalidate drops everything.
func (c *advisoryCache) Invalidate() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reset("")
	c.checked = time.Time{}
}

// fresh drops the cache when the feeds changed since it was filled.
func (c *advisoryCache) fresh(ctx context.Context) error {
	c.mu.RLock()
	ok := time.Since(c.checked) < c.checkEvery
	c.mu.RUnlock()
	if ok {
		return nil
	}
	srcs, err := c.src.Sources(ctx)
	if err != nil {
		return err
	}
	var b strings.Builder
	for _, s := range srcs {
		fmt.Fprintf(&b, "%s %d %d %s|", s.Source, s.ImportedAt.UnixNano(), s.Records, s.Version)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if b.String() != c.gen {
		c.reset(b.String())
	}
	c.checked = time.Now()
	return nil
}

// Advisories returns every advisory naming any of the keys, each once.
func (c *advisoryCache) Advisories(ctx context.Context, keys []match.Key) ([]*advisory.Advisory, error) {
	if err := c.fresh(ctx); err != nil {
		return nil, err
	}
	if missing := c.missing(keys); len(missing) > 0 {
		c.loadMu.Lock()
		// Another request may have loaded them meanwhile.
		missing = c.missing(keys)
		as, err := c.src.Advisories(ctx, missing)
		if err != nil {
			c.loadMu.Unlock()
			return nil, err
		}
		// Attribute each advisory to the keys it names, as the store
		// indexes them.
		byKey := make(map[match.Key][]*advisory.Advisory, len(missing))
		for _, k := range missing {
			byKey[k] = []*advisory.Advisory{}
		}
		for _, a := range as {
			seen := map[match.Key]bool{}
			for _, af := range a.Affected {
				k := match.Key{Ecosystem: af.Ecosystem, Name: match.NormalizeName(af.Ecosystem, af.Name)}
				if list, ok := byKey[k]; ok && !seen[k] {
					seen[k] = true
					byKey[k] = append(list, a)
				}
			}
		}
		c.mu.Lock()
		for k, list := range byKey {
			c.advs[k] = list
		}
		c.mu.Unlock()
		c.loadMu.Unlock()
	}
	seen := map[string]bool{}
	var out []*advisory.Advisory
	c.mu.RLock()
	defer c.mu.RUnlock()
	for _, k := range keys {
		for _, a := range c.advs[k] {
			if !seen[a.ID] {
				seen[a.ID] = true
				out = append(out, a)
			}
		}
	}
	return out, nil
}

func (c *advisoryCache) missing(keys []match.Key) []match.Key {
	var out []match.Key
	c.mu.RLock()
	defer c.mu.RUnlock()
	for _, k := range keys {
		if _, ok := c.advs[k]; !ok {
			out = append(out, k)
		}
	}
	return out
}

// Exploitation returns the KEV entries and EPSS scores of the CVEs.
func (c *advisoryCache) Exploitation(ctx context.Context, cves []string) (map[string]advisory.KEVEntry, map[string]advisory.EPSSScore, error) {
	if err := c.fresh(ctx); err != nil {
		return nil, nil, err
	}
	var missing []string
	c.mu.RLock()
	for _, cve := range cves {
		if _, ok := c.kev[cve]; !ok {
			missing = append(missing, cve)
		}
	}
	c.mu.RUnlock()
	if len(missing) > 0 {
		kev, epss, err := c.src.Exploitation(ctx, missing)
		if err != nil {
			return nil, nil, err
		}
		c.mu.Lock()
		for _, cve := range missing {
			var k *advisory.KEVEntry
			if e, ok := kev[cve]; ok {
				k = &e
			}
			var s *advisory.EPSSScore
			if e, ok := epss[cve]; ok {
				s = &e
			}
			c.kev[cve], c.epss[cve] = k, s
		}
		c.mu.Unlock()
	}
	kev := map[string]advisory.KEVEntry{}
	epss := map[string]advisory.EPSSScore{}
	c.mu.RLock()
	defer c.mu.RUnlock()
	for _, cve := range cves {
		if e := c.kev[cve]; e != nil {
			kev[cve] = *e
		}
		if s := c.epss[cve]; s != nil {
			epss[cve] = *s
		}
	}
	return kev, epss, nil
}

// Enrichment returns the NVD records and vendor ratings of the CVEs (see
// scan.EnrichmentSource), cached per CVE like KEV and EPSS.
func (c *advisoryCache) Enrichment(ctx context.Context, cves []string) (map[string]advisory.Enrichment, error) {
	es, ok := c.src.(scan.EnrichmentSource)
	if !ok {
		return nil, nil
	}
	if err := c.fresh(ctx); err != nil {
		return nil, err
	}
	var missing []string
	c.mu.RLock()
	for _, cve := range cves {
		if _, ok := c.enr[cve]; !ok {
			missing = append(missing, cve)
		}
	}
	c.mu.RUnlock()
	if len(missing) > 0 {
		got, err := es.Enrichment(ctx, missing)
		if err != nil {
			return nil, err
		}
		c.mu.Lock()
		for _, cve := range missing {
			var e *advisory.Enrichment
			if g, ok := got[cve]; ok {
				e = &g
			}
			c.enr[cve] = e
		}
		c.mu.Unlock()
	}
	out := map[string]advisory.Enrichment{}
	c.mu.RLock()
	defer c.mu.RUnlock()
	for _, cve := range cves {
		if e := c.enr[cve]; e != nil {
			out[cve] = *e
		}
	}
	return out, nil
}
