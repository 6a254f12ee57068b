package edit

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/pmezard/go-difflib/difflib"

	"github.com/patchbay/patchbay/inventory/collect"
	"github.com/patchbay/patchbay/scan"
)

// Check is the re-scan of a rewrite: per changed file, the findings it
// closes and the ones it would open.
type Check struct {
	Closed []scan.Finding `json:"closed"`
	Opened []scan.Finding `json:"opened"`
	// Toolchain are standard-library findings of a go directive that go
	// get raised (a module needs a newer Go): not opened by the upgrade
	// but by the new minimum Go version, and fixed by the toolchain that
	// builds the module, as every stdlib finding of a go.mod is.
	Toolchain []scan.Finding `json:"toolchain,omitempty"`
	// Files maps each dependency file to its closed and opened findings.
	Files map[string]*FileCheck `json:"files"`
}

// FileCheck is the re-scan of one file.
type FileCheck struct {
	Closed []scan.Finding `json:"closed"`
	Opened []scan.Finding `json:"opened"`
}

// Verify re-scans the rewritten files (in a temporary directory, with the
// files beside them that their parsers read) and compares them with
// before, the scan that planned the rewrite.
func Verify(ctx context.Context, src scan.Source, before scan.Result, res Result, now time.Time) (Check, error) {
	chk := Check{Closed: []scan.Finding{}, Opened: []scan.Finding{}, Files: map[string]*FileCheck{}}
	if len(res.Changes) == 0 {
		return chk, nil
	}
	tmp, err := os.MkdirTemp("", "patchbay-fix-check-")
	if err != nil {
		return chk, err
	}
	defer os.RemoveAll(tmp)
	changed := map[string][]byte{}
	for _, c := range res.Changes {
		changed[c.Path] = c.New
	}
	var scanPaths []string
	// Each directory of a changed file is mirrored as tmp/N, and the
	// re-scan's locations are mapped back.
	dirs := map[string]string{} // original directory → mirror
	back := map[string]string{} // mirrored file → original
	mirror := func(p string) string {
		d := filepath.Dir(p)
		m, ok := dirs[d]
		if !ok {
			m = filepath.Join(tmp, fmt.Sprint(len(dirs)))
			dirs[d] = m
		}
		mf := filepath.Join(m, filepath.Base(p))
		back[mf] = p
		return mf
	}
	for _, c := range res.Changes {
		base := filepath.Base(c.Path)
		if base == "go.sum" || base == "package.json" {
			continue
		}
		chk.Files[c.Path] = &FileCheck{Closed: []scan.Finding{}, Opened: []scan.Finding{}}
		scanPaths = append(scanPaths, mirror(c.Path))
		files := []string{c.Path}
		switch base {
		case "go.mod":
			files = append(files, filepath.Join(filepath.Dir(c.Path), "go.sum"))
		case "package-lock.json":
			files = append(files, filepath.Join(filepath.Dir(c.Path), "package.json"))
		}
		for _, f := range files {
			b, ok := changed[f]
			if !ok {
				if b, err = os.ReadFile(f); err != nil {
					if os.IsNotExist(err) {
						continue
					}
					return chk, err
				}
			}
			m := mirror(f)
			if err := os.MkdirAll(filepath.Dir(m), 0o755); err != nil {
				return chk, err
			}
			if err := os.WriteFile(m, b, 0o644); err != nil {
				return chk, err
			}
		}
	}
	sort.Strings(scanPaths)
	inv, err := collect.Collect(ctx, collect.Options{Paths: scanPaths})
	if err != nil {
		return chk, fmt.Errorf("re-scan: %w", err)
	}
	unmirror := func(p string) string {
		if o, ok := back[filepath.Clean(p)]; ok {
			return o
		}
		return p
	}
	if len(inv.Skipped) > 0 {
		return chk, fmt.Errorf("re-scan: the rewritten %s does not parse: %s", unmirror(inv.Skipped[0].Path), inv.Skipped[0].Reason)
	}
	for i := range inv.Packages {
		inv.Packages[i].Location = unmirror(inv.Packages[i].Location)
	}
	after, err := scan.Run(ctx, src, inv, now)
	if err != nil {
		return chk, fmt.Errorf("re-scan: %w", err)
	}
	type fk struct{ file, key string }
	was := map[fk]bool{}
	for _, f := range before.Findings {
		for _, l := range f.Locations {
			if chk.Files[l] != nil {
				was[fk{l, vulnKey(f)}] = true
			}
		}
	}
	is := map[fk]bool{}
	for _, f := range after.Findings {
		for _, l := range f.Locations {
			is[fk{l, vulnKey(f)}] = true
			if fc := chk.Files[l]; fc != nil && !was[fk{l, vulnKey(f)}] {
				if f.Ecosystem == "Go" && f.Package == "stdlib" {
					chk.Toolchain = append(chk.Toolchain, f)
					continue
				}
				fc.Opened = append(fc.Opened, f)
				chk.Opened = append(chk.Opened, f)
			}
		}
	}
	for _, f := range before.Findings {
		for _, l := range f.Locations {
			if fc := chk.Files[l]; fc != nil && !is[fk{l, vulnKey(f)}] {
				fc.Closed = append(fc.Closed, f)
				chk.Closed = append(chk.Closed, f)
			}
		}
	}
	scan.SortFindings(chk.Closed)
	scan.SortFindings(chk.Opened)
	return chk, nil
}

// vulnKey identifies a finding across versions of its package.
func vulnKey(f scan.Finding) string {
	return f.Ecosystem + "\x00" + f.Package + "\x00" + f.Vulnerability
}

// Diff is the unified diff of the changes, file by file.
func Diff(changes []Change) string {
	var b strings.Builder
	for _, c := range changes {
		d, _ := difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
			A: difflib.SplitLines(string(c.Old)), B: difflib.SplitLines(string(c.New)),
			FromFile: "a/" + strings.TrimPrefix(filepath.ToSlash(c.Path), "/"), ToFile: "b/" + strings.TrimPrefix(filepath.ToSlash(c.Path), "/"),
			Context: 3,
		})
		b.WriteString(d)
		if d != "" && !strings.HasSuffix(d, "\n") {
			b.WriteString("\n\\ No newline at end of file\n")
		}
	}
	return b.String()
}

// Apply writes every change: each to a temporary file beside its target
// first, then, when all are written and synced, renames them over the
// targets. An error before the renames leaves every target as it was.
func Apply(changes []Change) error {
	type pending struct{ tmp, path string }
	var done []pending
	cleanup := func() {
		for _, p := range done {
			os.Remove(p.tmp)
		}
	}
	for _, c := range changes {
		mode := os.FileMode(0o644)
		if st, err := os.Stat(c.Path); err == nil {
			mode = st.Mode().Perm()
		}
		f, err := os.CreateTemp(filepath.Dir(c.Path), "."+filepath.Base(c.Path)+".patchbay-*")
		if err != nil {
			cleanup()
			return fmt.Errorf("write %s: %w", c.Path, err)
		}
		done = append(done, pending{f.Name(), c.Path})
		_, err = f.Write(c.New)
		if err == nil {
			err = f.Chmod(mode)
		}
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			cleanup()
			return fmt.Errorf("write %s: %w", c.Path, err)
		}
	}
	for i, p := range done {
		if err := os.Rename(p.tmp, p.path); err != nil {
			for _, q := range done[i:] {
				os.Remove(q.tmp)
			}
			return fmt.Errorf("rename %s: %w (%d of %d files were written)", p.path, err, i, len(done))
		}
	}
	return nil
}
