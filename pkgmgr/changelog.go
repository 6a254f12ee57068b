package pkgmgr

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"

	"github.com/patchbay/patchbay/match"
)

// Changelogs finds the CVEs a Debian or Ubuntu update fixes: the CVE ids
// named in the candidate's changelog entries newer than the installed
// version. The candidate .deb is downloaded (from the URL apt gives, its
// SHA-256 checked) and its changelog.Debian.gz read; the parsed changelog
// is cached by (package, version) under CacheDir, so each is fetched once.
//
// Downloading needs the network: the archive apt's sources name
// (deb.debian.org on a stock Debian). Offline, the updates are still
// listed, with their CVEs empty and the reason in Update.Problem.
type Changelogs struct {
	CacheDir string
	Client   *http.Client
	// CachedOnly reads the cache and downloads nothing: an update whose
	// changelog is not cached yet has empty CVEs and Pending set.
	CachedOnly bool
	// Concurrency bounds the downloads at once; 0 means 4.
	Concurrency int
	// Progress, when set, is called with 0 of the total changelogs to
	// download before the first, and after each one, read or failed.
	Progress func(done, total int)
}

// ChangelogEntry is one entry of a Debian changelog.
type ChangelogEntry struct {
	Version string   `json:"version"`
	CVEs    []string `json:"cves"`
}

// fill sets the CVEs of every update. Binaries built from one source
// version share its changelog, so each (source, candidate) is read once,
// from the smallest of its .debs that has the changelog; up to Concurrency
// are downloaded at once. A changelog that cannot be read leaves the
// updates' CVEs empty with the reason in Problem.
func (c *Changelogs) fill(ctx context.Context, a *Apt, ups []Update) error {
	groups := map[string][]int{}
	var order []string
	for i, u := range ups {
		k := u.SourceName + "\x00" + u.Candidate
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], i)
	}
	set := func(idx []int, entries []ChangelogEntry) {
		for _, i := range idx {
			ups[i].CVEs = entriesCVEs(entries, ups[i])
		}
	}
	var todo []string
	for _, k := range order {
		idx := groups[k]
		if es, ok := c.cached(ups[idx[0]]); ok {
			set(idx, es)
			continue
		}
		if c.CachedOnly {
			for _, i := range idx {
				ups[i].Pending = true
			}
			continue
		}
		todo = append(todo, k)
	}
	if len(todo) == 0 {
		return nil
	}
	n := c.Concurrency
	if n <= 0 {
		n = 4
	}
	// One apt-get --print-uris for every .deb to read; should apt refuse
	// the batch (one version gone from the lists), each group asks alone.
	var targets []Target
	for _, k := range todo {
		for _, i := range groups[k] {
			targets = append(targets, Target{ups[i].Name, ups[i].Candidate})
		}
	}
	var uris map[string]debFile
	if debs, err := a.debURIs(ctx, targets); err == nil {
		uris = map[string]debFile{}
		for _, d := range debs {
			uris[d.name] = d
		}
	} else if ctx.Err() != nil {
		return ctx.Err()
	}
	type result struct {
		k       string
		entries []ChangelogEntry
		err     error
	}
	jobs := make(chan string)
	// Buffered for every result: a worker never waits on the collector,
	// which may have returned on ctx.
	results := make(chan result, len(todo))
	for w := 0; w < min(n, len(todo)); w++ {
		go func() {
			for k := range jobs {
				es, err := c.sourceEntries(ctx, a, ups, groups[k], uris)
				results <- result{k, es, err}
			}
		}()
	}
	go func() {
		defer close(jobs)
		for _, k := range todo {
			select {
			case jobs <- k:
			case <-ctx.Done():
				return
			}
		}
	}()
	if c.Progress != nil {
		c.Progress(0, len(todo))
	}
	for done := 1; done <= len(todo); done++ {
		var r result
		select {
		case r = <-results:
		case <-ctx.Done():
			return ctx.Err()
		}
		if r.err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			for _, i := range groups[r.k] {
				ups[i].Problem = "CVEs unknown: " + r.err.Error()
			}
		} else {
			set(groups[r.k], r.entries)
		}
		if c.Progress != nil {
			c.Progress(done, len(todo))
		}
	}
	return nil
}

// entriesCVEs returns the CVEs named by entries above the installed
// version, up to the candidate, sorted.
func entriesCVEs(entries []ChangelogEntry, u Update) []string {
	since := u.Installed
	if u.SourceVersion != "" {
		since = u.SourceVersion
	}
	set := map[string]bool{}
	for _, e := range entries {
		newer, err1 := match.Compare("Debian", e.Version, since)
		upTo, err2 := match.Compare("Debian", e.Version, u.Candidate)
		if err1 != nil || err2 != nil {
			continue
		}
		if newer > 0 && upTo <= 0 {
			for _, cve := range e.CVEs {
				set[cve] = true
			}
		}
	}
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// sourceEntries reads the changelog of a group of binaries of one source,
// from the .debs uris names (by package), or apt's answer for the group
// when uris lacks one.
func (c *Changelogs) sourceEntries(ctx context.Context, a *Apt, ups []Update, idx []int, uris map[string]debFile) ([]ChangelogEntry, error) {
	if es, ok := c.cached(ups[idx[0]]); ok {
		return es, nil
	}
	cache := c.cachePath(ups[idx[0]])
	var targets []Target
	var debs []debFile
	for _, i := range idx {
		targets = append(targets, Target{ups[i].Name, ups[i].Candidate})
		if d, ok := uris[ups[i].Name]; ok {
			debs = append(debs, d)
		}
	}
	if len(debs) != len(idx) {
		var err error
		if debs, err = a.debURIs(ctx, targets); err != nil {
			return nil, err
		}
	}
	sort.SliceStable(debs, func(i, j int) bool { return debs[i].size < debs[j].size })
	var lastErr error
	for _, d := range debs {
		b, err := c.download(ctx, d.url, d.size, d.sum)
		if err != nil {
			return nil, err
		}
		text, err := DebChangelog(bytes.NewReader(b), d.name)
		if err != nil {
			lastErr = fmt.Errorf("%s: %w", path.Base(d.url), err)
			continue
		}
		es, err := ParseChangelog(text)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path.Base(d.url), err)
		}
		if err := os.MkdirAll(filepath.Dir(cache), 0o700); err == nil {
			b, _ := json.Marshal(es)
			tmp := cache + ".tmp"
			if os.WriteFile(tmp, b, 0o600) == nil {
				os.Rename(tmp, cache)
			}
		}
		return es, nil
	}
	return nil, lastErr
}

func (c *Changelogs) cachePath(u Update) string {
	return filepath.Join(c.CacheDir, "changelog", safeName(u.SourceName+"_"+u.Candidate)+".json")
}

// cached returns the cached changelog of u's source at its candidate.
func (c *Changelogs) cached(u Update) ([]ChangelogEntry, bool) {
	b, err := os.ReadFile(c.cachePath(u))
	if err != nil {
		return nil, false
	}
	var es []ChangelogEntry
	if json.Unmarshal(b, &es) != nil {
		return nil, false
	}
	return es, true
}

func safeName(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '/' || r == 0 {
			return '_'
		}
		return r
	}, s)
}

type debFile struct {
	name, url, sum string
	size           int64
}

// debURIs asks apt where the .debs of the targets are: URL, size, SHA-256.
func (a *Apt) debURIs(ctx context.Context, targets []Target) ([]debFile, error) {
	if err := ValidateDebian(targets); err != nil {
		return nil, err
	}
	args := []string{"apt-get", "--print-uris", "-q", "download"}
	for _, t := range targets {
		args = append(args, t.String())
	}
	c, err := a.R.Run(ctx, args...)
	if err != nil {
		return nil, err
	}
	var out []debFile
	for _, line := range strings.Split(c.Output, "\n") {
		if !strings.HasPrefix(line, "'") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 4 || !strings.HasPrefix(f[3], "SHA256:") {
			return nil, &ParseError{Cmd: c.String(), Line: line, Why: "want 'URL' FILE SIZE SHA256:HASH"}
		}
		size, err := strconv.ParseInt(f[2], 10, 64)
		if err != nil {
			return nil, &ParseError{Cmd: c.String(), Line: line, Why: "size is not a number"}
		}
		name, _, _ := strings.Cut(f[1], "_")
		out = append(out, debFile{name: name, url: strings.Trim(f[0], "'"), size: size, sum: strings.TrimPrefix(f[3], "SHA256:")})
	}
	if len(out) == 0 {
		return nil, &ParseError{Cmd: c.String(), Line: lastLines(c.Output, 1), Why: "no download URI"}
	}
	return out, nil
}

func (c *Changelogs) download(ctx context.Context, url string, size int64, sum string) ([]byte, error) {
	client := c.Client
	if client == nil {
		client = http.DefaultClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("download %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("download %s: %s", url, resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, size+1))
	if err != nil {
		return nil, fmt.Errorf("download %s: %w", url, err)
	}
	h := sha256.Sum256(b)
	if int64(len(b)) != size || hex.EncodeToString(h[:]) != sum {
		return nil, fmt.Errorf("download %s: size or SHA-256 does not match what apt expects", url)
	}
	return b, nil
}

// DebChangelog returns the Debian changelog of binary package name from a
// .deb: usr/share/doc/<name>/changelog.Debian.gz (or changelog.gz for
// native packages), following a symlinked doc directory or file inside the
// archive.
func DebChangelog(deb io.ReaderAt, name string) (string, error) {
	data, comp, err := debData(deb)
	if err != nil {
		return "", err
	}
	var r io.Reader = data
	switch comp {
	case ".xz":
		xr, err := xz.NewReader(data)
		if err != nil {
			return "", fmt.Errorf("data.tar.xz: %w", err)
		}
		r = xr
	case ".zst":
		zr, err := zstd.NewReader(data)
		if err != nil {
			return "", fmt.Errorf("data.tar.zst: %w", err)
		}
		defer zr.Close()
		r = zr
	case ".gz":
		gr, err := gzip.NewReader(data)
		if err != nil {
			return "", fmt.Errorf("data.tar.gz: %w", err)
		}
		r = gr
	case "":
	default:
		return "", fmt.Errorf("data.tar%s: unsupported compression", comp)
	}
	files := map[string][]byte{}
	links := map[string]string{}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", fmt.Errorf("data.tar: %w", err)
		}
		p := path.Clean("/" + h.Name)
		if !strings.HasPrefix(p, "/usr/share/doc/") {
			continue
		}
		switch h.Typeflag {
		case tar.TypeSymlink:
			links[p] = h.Linkname
		case tar.TypeReg:
			if strings.HasPrefix(path.Base(p), "changelog") {
				b, err := io.ReadAll(io.LimitReader(tr, 64<<20))
				if err != nil {
					return "", fmt.Errorf("data.tar: %s: %w", p, err)
				}
				files[p] = b
			}
		}
	}
	resolve := func(p string) string {
		for i := 0; i < 8; i++ {
			changed := false
			for from, to := range links {
				if p == from || strings.HasPrefix(p, from+"/") {
					target := to
					if !strings.HasPrefix(to, "/") {
						target = path.Join(path.Dir(from), to)
					}
					p = path.Clean(target + strings.TrimPrefix(p, from))
					changed = true
				}
			}
			if !changed {
				break
			}
		}
		return p
	}
	for _, f := range []string{"changelog.Debian.gz", "changelog.gz"} {
		p := resolve("/usr/share/doc/" + name + "/" + f)
		if b, ok := files[p]; ok {
			gr, err := gzip.NewReader(bytes.NewReader(b))
			if err != nil {
				return "", fmt.Errorf("%s: %w", p, err)
			}
			text, err := io.ReadAll(gr)
			if err != nil {
				return "", fmt.Errorf("%s: %w", p, err)
			}
			return string(text), nil
		}
	}
	return "", errors.New("no changelog.Debian.gz in the package")
}

// debData finds the data.tar member of a .deb (an ar archive).
func debData(deb io.ReaderAt) (io.Reader, string, error) {
	magic := make([]byte, 8)
	if _, err := deb.ReadAt(magic, 0); err != nil || string(magic) != "!<arch>\n" {
		return nil, "", errors.New("not a .deb (ar archive)")
	}
	off := int64(8)
	for {
		hdr := make([]byte, 60)
		if _, err := deb.ReadAt(hdr, off); err != nil {
			return nil, "", errors.New("no data.tar member in the .deb")
		}
		name := strings.TrimSpace(string(hdr[0:16]))
		size, err := strconv.ParseInt(strings.TrimSpace(string(hdr[48:58])), 10, 64)
		if err != nil {
			return nil, "", fmt.Errorf("ar member %q: bad size", name)
		}
		name = strings.TrimSuffix(name, "/")
		if strings.HasPrefix(name, "data.tar") {
			return io.NewSectionReader(deb, off+60, size), strings.TrimPrefix(name, "data.tar"), nil
		}
		off += 60 + size + size%2
	}
}

var (
	changelogHeader = regexp.MustCompile(`^(\S+) \(([^)\s]+)\) [^;]*;`)
	cveID           = regexp.MustCompile(`CVE-\d{4}-\d{4,}`)
)

// ParseChangelog splits a Debian changelog into entries and the CVE ids
// each names.
func ParseChangelog(text string) ([]ChangelogEntry, error) {
	var out []ChangelogEntry
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if m := changelogHeader.FindStringSubmatch(line); m != nil {
			out = append(out, ChangelogEntry{Version: m[2], CVEs: []string{}})
			continue
		}
		if len(out) == 0 {
			if strings.TrimSpace(line) == "" {
				continue
			}
			return nil, fmt.Errorf("changelog line %d: %q is not an entry header", n, line)
		}
		cur := &out[len(out)-1]
		for _, id := range cveID.FindAllString(line, -1) {
			if !contains(cur.CVEs, id) {
				cur.CVEs = append(cur.CVEs, id)
			}
		}
	}
	if len(out) == 0 {
		return nil, errors.New("changelog has no entries")
	}
	return out, sc.Err()
}

func contains(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}
