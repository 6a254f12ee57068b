// Command bench measures patchbay end to end, as a user runs it: it builds
// the binary, imports the shared feeds into a fresh data dir, then times
// `patchbay scan` (a new process each run, warm page cache) on a lockfile,
// a Debian host root, a directory of lockfiles and a generated SBOM, and
// prints packages, findings, median wall time and peak RSS.
//
// Side by side: when the peer scanner (osv-scanner, -peer) is runnable, the
// lockfile targets are also scanned by it, fully offline with the same Go
// and PyPI feeds (`scan source --offline-vulnerabilities --local-db-path`,
// a new process each run), and the table adds its median wall time, peak
// RSS and how many times patchbay's time it took.
//
//	go run ./bench                                  # everything, from ../shared
//	go run ./bench -runs 5 -sbom 50000 DIR...      # also scan DIR...
//	go run ./bench -peer /path/to/osv-scanner      # side by side with the peer
//	go run ./bench -bin ./patchbay-old             # time a prebuilt binary
package main

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
)

func main() {
	shared := flag.String("shared", "../shared", "the shared data directory (feeds, fixtures, corpus)")
	runs := flag.Int("runs", 5, "runs per scan; the median wall time is reported")
	sbomSize := flag.Int("sbom", 50000, "components in the generated CycloneDX SBOM (0: skip)")
	keep := flag.Bool("keep", false, "keep the work directory (binary, database, SBOM) and print its path")
	genSBOM := flag.String("gen-sbom", "", "only write the generated SBOM to this path (used by bench itself)")
	peer := flag.String("peer", "osv-scanner", "the peer scanner to time side by side on the lockfile targets (\"\": none)")
	bin := flag.String("bin", "", "time this patchbay binary instead of building ./cmd/patchbay")
	flag.Parse()
	if *genSBOM != "" {
		if _, err := writeSBOM(*genSBOM, *sbomSize, *shared); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(*shared, *runs, *sbomSize, *keep, *peer, *bin, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type result struct {
	name               string
	packages, findings int
	wall               time.Duration
	rssMB              float64
	// peerWall and peerRSSMB are the peer's, when it ran on the target.
	peerWall  time.Duration
	peerRSSMB float64
}

func run(shared string, runs, sbomSize int, keep bool, peer, prebuilt string, extra []string) error {
	work, err := os.MkdirTemp("", "patchbay-bench-")
	if err != nil {
		return err
	}
	if keep {
		fmt.Println("work directory:", work)
	} else {
		defer os.RemoveAll(work)
	}
	bin := filepath.Join(work, "patchbay")
	if prebuilt != "" {
		if bin, err = filepath.Abs(prebuilt); err != nil {
			return err
		}
	} else {
		build := exec.Command("go", "build", "-o", bin, "./cmd/patchbay")
		build.Stderr = os.Stderr
		if err := build.Run(); err != nil {
			return fmt.Errorf("build: %w", err)
		}
	}
	peerBin, peerDB, err := preparePeer(peer, work, shared)
	if err != nil {
		return err
	}
	data := filepath.Join(work, "data")
	feeds := []string{
		filepath.Join(shared, "feeds/osv/Go/all.zip"),
		filepath.Join(shared, "feeds/osv/PyPI/all.zip"),
		filepath.Join(shared, "feeds/osv/Debian/all.zip"),
		filepath.Join(shared, "feeds/kev/known_exploited_vulnerabilities.json"),
	}
	start := time.Now()
	rss, out, err := measure(bin, append([]string{"--data-dir", data, "feeds", "import"}, feeds...)...)
	if err != nil {
		return fmt.Errorf("feeds import: %w\n%s", err, out)
	}
	fmt.Printf("feeds import (Go, PyPI, Debian OSV + KEV, fresh database): %s, peak RSS %.0f MB\n  %s\n",
		time.Since(start).Round(time.Millisecond), rss, strings.TrimSpace(string(out)))
	start = time.Now()
	if _, out, err := measure(bin, append([]string{"--data-dir", data, "feeds", "import"}, feeds...)...); err != nil {
		return fmt.Errorf("feeds import again: %w\n%s", err, out)
	}
	fmt.Printf("feeds import again (nothing changed): %s\n\n", time.Since(start).Round(time.Millisecond))

	host := filepath.Join(work, "host")
	if err := makeRoot(host, filepath.Join(shared, "fixtures/dpkg/status-bookworm-host")); err != nil {
		return err
	}
	dozen := filepath.Join(work, "dozen")
	if err := makeDozen(dozen, filepath.Join(shared, "corpus/lockfiles"), 12); err != nil {
		return err
	}
	// peer is the peer's input: set for lockfile targets only.
	type target struct {
		name string
		args []string
		peer string
	}
	lock := filepath.Join(shared, "corpus/lockfiles/saleor/poetry.lock")
	corpus := filepath.Join(shared, "corpus/lockfiles")
	targets := []target{
		{"one lockfile (saleor/poetry.lock)", []string{lock}, lock},
		{"Debian host root (status-bookworm-host)", []string{"--root", host}, ""},
		{"a dozen lockfiles (every 4th of the corpus)", []string{dozen}, dozen},
		{"lockfile corpus (52 files)", []string{corpus}, corpus},
	}
	for _, d := range extra {
		targets = append(targets, target{d, []string{d}, d})
	}
	if sbomSize > 0 {
		// Generated by a child process: a child's peak RSS counts the
		// parent's memory at fork time, so the parent stays small.
		path := filepath.Join(work, "big.cdx.json")
		gen := exec.Command(os.Args[0], "-gen-sbom", path, "-sbom", fmt.Sprint(sbomSize), "-shared", shared)
		gen.Stderr = os.Stderr
		if err := gen.Run(); err != nil {
			return fmt.Errorf("generate SBOM: %w", err)
		}
		st, err := os.Stat(path)
		if err != nil {
			return err
		}
		size := st.Size()
		targets = append(targets, target{fmt.Sprintf("CycloneDX SBOM, %d components (%.1f MB)", sbomSize, float64(size)/1e6), []string{path}, ""})
	}
	var results []result
	for _, t := range targets {
		r := result{name: t.name}
		var walls []time.Duration
		for i := 0; i < runs; i++ {
			start := time.Now()
			rss, out, err := measure(bin, append([]string{"--data-dir", data, "scan", "-o", "json", "--output-file", filepath.Join(work, "out.json")}, t.args...)...)
			if err != nil {
				return fmt.Errorf("scan %s: %w\n%s", t.name, err, out)
			}
			walls = append(walls, time.Since(start))
			r.rssMB = max(r.rssMB, rss)
		}
		sort.Slice(walls, func(i, j int) bool { return walls[i] < walls[j] })
		r.wall = walls[len(walls)/2]
		var doc struct {
			Summary struct{ Packages, Findings int }
		}
		b, err := os.ReadFile(filepath.Join(work, "out.json"))
		if err != nil {
			return err
		}
		if err := json.Unmarshal(b, &doc); err != nil {
			return err
		}
		r.packages, r.findings = doc.Summary.Packages, doc.Summary.Findings
		if peerBin != "" && t.peer != "" {
			var walls []time.Duration
			for i := 0; i < runs; i++ {
				start := time.Now()
				rss, out, err := measure(peerBin, "scan", "source", "--offline-vulnerabilities", "--local-db-path", peerDB,
					"--no-resolve", "--format", "json", "--output", filepath.Join(work, "peer.json"), "-r", t.peer)
				// The peer exits 1 when it finds vulnerabilities.
				var exit *exec.ExitError
				if err != nil && !(errors.As(err, &exit) && exit.ExitCode() == 1) {
					return fmt.Errorf("peer scan %s: %w\n%s", t.name, err, out)
				}
				walls = append(walls, time.Since(start))
				r.peerRSSMB = max(r.peerRSSMB, rss)
			}
			sort.Slice(walls, func(i, j int) bool { return walls[i] < walls[j] })
			r.peerWall = walls[len(walls)/2]
		}
		results = append(results, r)
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	head := fmt.Sprintf("scan (median of %d, new process each)\tpackages\tfindings\twall\tpeak RSS\t", runs)
	if peerBin != "" {
		head += "peer wall\tpeer RSS\tpeer/patchbay\t"
	}
	fmt.Fprintln(tw, head)
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%.0f MB\t", r.name, r.packages, r.findings, r.wall.Round(time.Millisecond), r.rssMB)
		if peerBin != "" && r.peerWall > 0 {
			fmt.Fprintf(tw, "%s\t%.0f MB\t%.1f×\t", r.peerWall.Round(time.Millisecond), r.peerRSSMB, r.peerWall.Seconds()/r.wall.Seconds())
		} else if peerBin != "" {
			fmt.Fprint(tw, "\t\t\t")
		}
		fmt.Fprintln(tw)
	}
	if peerBin != "" {
		fmt.Fprintf(tw, "peer: %s\n", peerVersion(peerBin))
	}
	return tw.Flush()
}

// preparePeer finds the peer scanner and lays out its offline database
// (DIR/osv-scanner/<Ecosystem>/all.zip, as osv-scanner's --local-db-path
// reads it) with the shared Go and PyPI feeds. It returns "" when the peer
// is not runnable, saying so.
func preparePeer(peer, work, shared string) (bin, db string, err error) {
	if peer == "" {
		return "", "", nil
	}
	bin, err = exec.LookPath(peer)
	if err != nil {
		fmt.Printf("peer %s not runnable (%v): no side-by-side figures\n", peer, err)
		return "", "", nil
	}
	db = filepath.Join(work, "osvdb")
	for _, eco := range []string{"Go", "PyPI"} {
		dir := filepath.Join(db, "osv-scanner", eco)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return "", "", err
		}
		src, err := filepath.Abs(filepath.Join(shared, "feeds/osv", eco, "all.zip"))
		if err != nil {
			return "", "", err
		}
		if err := os.Symlink(src, filepath.Join(dir, "all.zip")); err != nil {
			return "", "", err
		}
	}
	return bin, db, nil
}

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o644)
}

func peerVersion(bin string) string {
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		return bin
	}
	first, _, _ := strings.Cut(string(out), "\n")
	return bin + " (" + strings.TrimSpace(first) + ")"
}

// makeDozen copies n lockfiles of the corpus — every len/n-th in path order
// — into dir, each under a directory of its own with its file name (and a
// go.mod's go.sum beside it), so both scanners detect them as in the corpus.
func makeDozen(dir, corpus string, n int) error {
	corpus, err := filepath.Abs(corpus)
	if err != nil {
		return err
	}
	var files []string
	err = filepath.WalkDir(corpus, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && d.Name() != "go.sum" {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return err
	}
	sort.Strings(files)
	step := max(1, len(files)/n)
	for i := 0; i < n && i*step < len(files); i++ {
		src, err := filepath.Abs(files[i*step])
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(corpus, src)
		if err != nil {
			return err
		}
		d := filepath.Join(dir, fmt.Sprint(i), filepath.Dir(rel))
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
		// Copies, not links: patchbay's directory walk skips symlinks.
		if err := copyFile(src, filepath.Join(d, filepath.Base(src))); err != nil {
			return err
		}
		if filepath.Base(src) == "go.mod" {
			sum := filepath.Join(filepath.Dir(src), "go.sum")
			if _, err := os.Stat(sum); err == nil {
				if err := copyFile(sum, filepath.Join(d, "go.sum")); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// measure runs the binary and returns its peak RSS in MB and its output.
func measure(bin string, args ...string) (float64, []byte, error) {
	cmd := exec.Command(bin, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	rss := 0.0
	if cmd.ProcessState != nil {
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			rss = float64(ru.Maxrss) / 1024 // kilobytes on Linux
		}
	}
	return rss, out.Bytes(), err
}

func makeRoot(root, status string) error {
	data, err := os.ReadFile(status)
	if err != nil {
		return err
	}
	for _, d := range []string{"var/lib/dpkg", "etc"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(root, "var/lib/dpkg/status"), data, 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(root, "etc/os-release"), []byte("ID=debian\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n"), 0o644)
}

// writeSBOM writes a CycloneDX 1.5 SBOM of n components, about 200 bytes
// each as real SBOMs have (name, version, purl, licence). Names come from the
// shared Go and PyPI feeds, so every look-up meets advisories; versions are
// a fixed version for 85% of components and an affected one for 15%, a
// realistic share of vulnerable components.
func writeSBOM(path string, n int, shared string) (int64, error) {
	type pkg struct {
		purlType, name  string
		affected, fixed []string
	}
	byName := map[string]*pkg{}
	var names []string
	for _, f := range []struct{ zip, typ string }{{"feeds/osv/Go/all.zip", "golang"}, {"feeds/osv/PyPI/all.zip", "pypi"}} {
		zr, err := zip.OpenReader(filepath.Join(shared, f.zip))
		if err != nil {
			return 0, err
		}
		for _, zf := range zr.File {
			rc, err := zf.Open()
			if err != nil {
				return 0, err
			}
			var rec struct {
				Affected []struct {
					Package struct{ Name string }
					Ranges  []struct {
						Events []map[string]string
					}
					Versions []string
				}
			}
			b, _ := io.ReadAll(rc)
			rc.Close()
			if json.Unmarshal(b, &rec) != nil {
				continue
			}
			for _, a := range rec.Affected {
				k := f.typ + "/" + a.Package.Name
				p := byName[k]
				if p == nil {
					p = &pkg{purlType: f.typ, name: a.Package.Name}
					byName[k] = p
					names = append(names, k)
				}
				p.affected = append(p.affected, a.Versions...)
				for _, r := range a.Ranges {
					for _, e := range r.Events {
						v := e["fixed"]
						if v == "" {
							v = e["introduced"]
							if v == "0" || v == "" {
								continue
							}
							p.affected = append(p.affected, v)
							continue
						}
						if !strings.ContainsAny(v, " /") && len(v) < 40 {
							p.fixed = append(p.fixed, v)
						}
					}
				}
			}
		}
		zr.Close()
	}
	rng := rand.New(rand.NewSource(1))
	type license struct {
		License struct {
			ID string `json:"id"`
		} `json:"license"`
	}
	type comp struct {
		Type     string    `json:"type"`
		BOMRef   string    `json:"bom-ref"`
		Name     string    `json:"name"`
		Version  string    `json:"version"`
		Licenses []license `json:"licenses"`
		PURL     string    `json:"purl"`
	}
	comps := make([]comp, 0, n)
	for len(comps) < n {
		p := byName[names[rng.Intn(len(names))]]
		vs := p.fixed
		if rng.Intn(100) < 15 || len(vs) == 0 {
			vs = p.affected
		}
		if len(vs) == 0 {
			continue
		}
		v := vs[rng.Intn(len(vs))]
		if p.purlType == "golang" {
			v = "v" + v
		}
		var l license
		l.License.ID = []string{"MIT", "Apache-2.0", "BSD-3-Clause"}[rng.Intn(3)]
		comps = append(comps, comp{
			Type: "library", BOMRef: fmt.Sprintf("pkg-%d", len(comps)), Name: p.name, Version: v,
			Licenses: []license{l}, PURL: fmt.Sprintf("pkg:%s/%s@%s", p.purlType, p.name, v),
		})
	}
	doc := map[string]any{"bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1, "components": comps}
	b, err := json.Marshal(doc)
	if err != nil {
		return 0, err
	}
	return int64(len(b)), os.WriteFile(path, b, 0o644)
}
