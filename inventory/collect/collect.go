// Package collect collects inventories: what is installed on a root (the
// dpkg, rpm and apk databases) and pinned in files (lockfiles, Go
// binaries, site-packages, SBOMs), as inventory.Package values.
//
// Collection is done by osv-scalibr's extractor packages, imported one by
// one; this package adds what they lack: the distro → OSV ecosystem mapping,
// per-file error reporting and the source package of OS packages.
package collect

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	cpb "github.com/google/osv-scalibr/binary/proto/config_go_proto"
	"github.com/google/osv-scalibr/extractor"
	"github.com/google/osv-scalibr/extractor/filesystem"
	"github.com/google/osv-scalibr/extractor/filesystem/language/dotnet/packageslockjson"
	"github.com/google/osv-scalibr/extractor/filesystem/language/golang/gobinary"
	"github.com/google/osv-scalibr/extractor/filesystem/language/golang/gomod"
	"github.com/google/osv-scalibr/extractor/filesystem/language/java/gradlelockfile"
	"github.com/google/osv-scalibr/extractor/filesystem/language/java/pomxml"
	"github.com/google/osv-scalibr/extractor/filesystem/language/javascript/packagelockjson"
	"github.com/google/osv-scalibr/extractor/filesystem/language/javascript/pnpmlock"
	"github.com/google/osv-scalibr/extractor/filesystem/language/javascript/yarnlock"
	"github.com/google/osv-scalibr/extractor/filesystem/language/php/composerlock"
	"github.com/google/osv-scalibr/extractor/filesystem/language/python/pipfilelock"
	"github.com/google/osv-scalibr/extractor/filesystem/language/python/poetrylock"
	"github.com/google/osv-scalibr/extractor/filesystem/language/python/requirements"
	"github.com/google/osv-scalibr/extractor/filesystem/language/python/uvlock"
	"github.com/google/osv-scalibr/extractor/filesystem/language/python/wheelegg"
	"github.com/google/osv-scalibr/extractor/filesystem/language/ruby/gemfilelock"
	"github.com/google/osv-scalibr/extractor/filesystem/language/rust/cargolock"
	"github.com/google/osv-scalibr/extractor/filesystem/os/apk"
	apkmeta "github.com/google/osv-scalibr/extractor/filesystem/os/apk/metadata"
	"github.com/google/osv-scalibr/extractor/filesystem/os/dpkg"
	dpkgmeta "github.com/google/osv-scalibr/extractor/filesystem/os/dpkg/metadata"
	"github.com/google/osv-scalibr/extractor/filesystem/os/rpm"
	rpmmeta "github.com/google/osv-scalibr/extractor/filesystem/os/rpm/metadata"
	"github.com/google/osv-scalibr/extractor/filesystem/sbom/cdx"
	"github.com/google/osv-scalibr/extractor/filesystem/sbom/spdx"
	"github.com/google/osv-scalibr/extractor/filesystem/simplefileapi"
	scalibrfs "github.com/google/osv-scalibr/fs"
	"github.com/patchbay/patchbay/inventory"
)

// Options says what to collect.
type Options struct {
	// Root is a filesystem root whose OS package databases (dpkg, rpm, apk)
	// are read; empty for none, "/" for this host.
	Root string
	// Paths are files and directories holding application dependencies:
	// lockfiles, manifests, Go binaries, site-packages, SBOMs.
	Paths []string
}

// osDatabases are the package database files, relative to a root.
var osDatabases = []string{
	"var/lib/dpkg/status",
	"lib/apk/db/installed",
	"var/lib/rpm/rpmdb.sqlite",
	"var/lib/rpm/Packages.db",
	"var/lib/rpm/Packages",
	"usr/lib/sysimage/rpm/rpmdb.sqlite",
	"usr/lib/sysimage/rpm/Packages.db",
}

// skipDirs are directory names never descended into.
var skipDirs = map[string]bool{".git": true, "node_modules": true, ".hg": true, ".svn": true, "__pycache__": true}

// Collect reads the OS package databases under opts.Root and the dependency
// files under opts.Paths. An input that cannot be parsed is listed in
// Result.Skipped and the others are still read; the error is non-nil only
// when collection itself cannot proceed (a missing path argument, a
// cancelled context).
func Collect(ctx context.Context, opts Options) (inventory.Result, error) {
	var res inventory.Result
	osExtractors, err := newOSExtractors()
	if err != nil {
		return res, err
	}
	appExtractors, err := newAppExtractors()
	if err != nil {
		return res, err
	}
	if opts.Root != "" {
		st, err := os.Stat(opts.Root)
		if err != nil {
			return res, fmt.Errorf("root: %w", err)
		}
		if !st.IsDir() {
			return res, fmt.Errorf("root %s: not a directory", opts.Root)
		}
		d, err := inventory.ReadDistro(opts.Root)
		if err != nil && !errors.Is(err, inventory.ErrNoOSRelease) {
			return res, err
		}
		if err == nil {
			res.Distro = &d
		} else {
			res.Skipped = append(res.Skipped, inventory.Skip{Path: filepath.Join(opts.Root, "etc/os-release"), Reason: "missing: OS packages cannot be matched to a distro release"})
		}
		fsys := scalibrfs.DirFS(opts.Root)
		for _, rel := range osDatabases {
			if err := ctx.Err(); err != nil {
				return res, err
			}
			info, err := fs.Stat(fsys, rel)
			if err != nil || info.IsDir() {
				continue
			}
			c := collector{res: &res, distro: res.Distro}
			c.extract(ctx, fsys, opts.Root, rel, info, osExtractors, false)
		}
	}
	for _, p := range opts.Paths {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		info, err := os.Stat(p)
		if err != nil {
			return res, fmt.Errorf("scan path: %w", err)
		}
		c := collector{res: &res}
		if !info.IsDir() {
			dir, base := filepath.Split(p)
			if dir == "" {
				dir = "."
			}
			c.extract(ctx, scalibrfs.DirFS(dir), dir, base, info, appExtractors, true)
			continue
		}
		fsys := scalibrfs.DirFS(p)
		err = fs.WalkDir(fsys, ".", func(rel string, d fs.DirEntry, err error) error {
			if err != nil {
				res.Skipped = append(res.Skipped, inventory.Skip{Path: filepath.Join(p, rel), Reason: readError(err), Unreadable: true})
				if d != nil && d.IsDir() {
					return fs.SkipDir
				}
				return nil
			}
			if d.IsDir() {
				if rel != "." && skipDirs[d.Name()] {
					return fs.SkipDir
				}
				return nil
			}
			if !d.Type().IsRegular() {
				return nil
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			info, err := d.Info()
			if err != nil {
				return nil
			}
			c.extract(ctx, fsys, p, rel, info, appExtractors, false)
			return nil
		})
		if err != nil {
			return res, err
		}
	}
	sort.SliceStable(res.Packages, func(i, j int) bool {
		a, b := res.Packages[i], res.Packages[j]
		if a.Ecosystem != b.Ecosystem {
			return a.Ecosystem < b.Ecosystem
		}
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		if a.Version != b.Version {
			return a.Version < b.Version
		}
		return a.Location < b.Location
	})
	return res, nil
}

type collector struct {
	res    *inventory.Result
	distro *inventory.Distro
}

// extract runs the first extractor that wants the file. explicit is true
// when the user named the file: a file nobody claims is then reported
// instead of ignored, and a *.txt is read as a requirements file.
func (c *collector) extract(ctx context.Context, fsys scalibrfs.FS, root, rel string, info fs.FileInfo, exts []filesystem.Extractor, explicit bool) {
	display := filepath.Join(root, rel)
	api := simplefileapi.New(rel, info)
	var chosen filesystem.Extractor
	for _, e := range exts {
		if e.FileRequired(api) {
			chosen = e
			break
		}
	}
	if chosen == nil && (explicit || isRequirementsDirFile(rel)) {
		chosen = guessExtractor(rel, exts)
		if chosen == nil {
			c.res.Skipped = append(c.res.Skipped, inventory.Skip{Path: display, Reason: "not a recognised lockfile, manifest, binary or SBOM"})
			return
		}
	}
	if chosen == nil {
		return
	}
	f, err := fsys.Open(rel)
	if err != nil {
		c.res.Skipped = append(c.res.Skipped, inventory.Skip{Path: display, Reason: readError(err), Unreadable: true})
		return
	}
	defer f.Close()
	inv, err := chosen.Extract(ctx, &filesystem.ScanInput{FS: fsys, Path: rel, Root: root, Info: info, Reader: f})
	if err != nil {
		c.res.Skipped = append(c.res.Skipped, inventory.Skip{Path: display, Reason: fmt.Sprintf("%s: %v", chosen.Name(), err)})
		return
	}
	if chosen.Name() == requirements.Name {
		c.res.Warnings = append(c.res.Warnings, requirementWarnings(fsys, rel, display)...)
	}
	c.res.Files = append(c.res.Files, display)
	for _, p := range inv.Packages {
		if pkg, ok := c.convert(p, display); ok {
			c.res.Packages = append(c.res.Packages, pkg)
		}
	}
}

// isRequirementsDirFile reports whether rel is a *.txt in a directory named
// "requirements" (requirements/dev.txt: the pip-tools convention), which is
// read as a requirements file although its name does not say so.
func isRequirementsDirFile(rel string) bool {
	return strings.HasSuffix(rel, ".txt") && filepath.Base(filepath.Dir(rel)) == "requirements"
}

func guessExtractor(rel string, exts []filesystem.Extractor) filesystem.Extractor {
	want := ""
	switch {
	case strings.HasSuffix(rel, ".txt"):
		want = requirements.Name
	case strings.HasSuffix(rel, ".spdx.json") || strings.Contains(filepath.Base(rel), "spdx"):
		want = spdx.Name
	case strings.HasSuffix(rel, ".json"):
		want = cdx.Name
	}
	for _, e := range exts {
		if e.Name() == want {
			return e
		}
	}
	return nil
}

// convert maps an osv-scalibr package to a patchbay inventory.Package.
func (c *collector) convert(p *extractor.Package, location string) (inventory.Package, bool) {
	if p.Name == "" || p.Version == "" {
		return inventory.Package{}, false
	}
	pkg := inventory.Package{Name: p.Name, Version: p.Version, Location: location}
	if p.Location.Descriptor != nil && p.Location.Descriptor.File != nil {
		pkg.Line = p.Location.Descriptor.File.LineNumber
	}
	if u := p.PURL(); u != nil {
		pkg.PURL = purlString(u)
	}
	switch m := p.Metadata.(type) {
	case *dpkgmeta.Metadata:
		if m.Status != "" && !strings.Contains(m.Status, "installed") {
			return inventory.Package{}, false
		}
		pkg.SourceName, pkg.SourceVersion = m.SourceName, m.SourceVersion
		if pkg.SourceName == "" {
			pkg.SourceName = m.PackageName
		}
		if pkg.SourceVersion == "" {
			pkg.SourceVersion = pkg.Version
		}
		pkg.Name = m.PackageName
		pkg.Ecosystem = c.osEcosystem("Debian")
	case *apkmeta.Metadata:
		pkg.SourceName, pkg.SourceVersion = m.OriginName, p.Version
		pkg.Ecosystem = c.osEcosystem("Alpine")
	case *rpmmeta.Metadata:
		if m.Epoch > 0 {
			pkg.Version = strconv.Itoa(m.Epoch) + ":" + pkg.Version
		}
		pkg.SourceName = strings.TrimSuffix(m.SourceRPM, ".src.rpm")
		pkg.Ecosystem = c.osEcosystem("")
	default:
		pkg.Ecosystem = p.Ecosystem().String()
	}
	if pkg.Ecosystem == "" {
		pkg.Ecosystem = ecosystemFromPURL(pkg.PURL)
	}
	if pkg.Ecosystem == "Go" {
		if pkg.Name == "go" { // osv-scalibr names the toolchain of a binary "go"
			pkg.Name = "stdlib"
		}
		pkg.Version = strings.TrimPrefix(pkg.Version, "v")
		pkg.Version = strings.TrimPrefix(pkg.Version, "go")
	}
	if pkg.Ecosystem == "" {
		return inventory.Package{}, false
	}
	return pkg, true
}

// osEcosystem is the root's distro ecosystem; fallback names the family
// when os-release is missing.
func (c *collector) osEcosystem(fallback string) string {
	if c.distro != nil && c.distro.Ecosystem != "" {
		return c.distro.Ecosystem
	}
	return fallback
}

func ecosystemFromPURL(purl string) string {
	typ, _, _ := strings.Cut(strings.TrimPrefix(purl, "pkg:"), "/")
	switch typ {
	case "golang":
		return "Go"
	case "pypi":
		return "PyPI"
	case "npm":
		return "npm"
	case "cargo":
		return "crates.io"
	case "gem":
		return "RubyGems"
	case "composer":
		return "Packagist"
	case "maven":
		return "Maven"
	case "nuget":
		return "NuGet"
	}
	return ""
}

func newOSExtractors() ([]filesystem.Extractor, error) {
	return build(dpkg.New, apk.New, rpm.New)
}

func newAppExtractors() ([]filesystem.Extractor, error) {
	return build(
		gomod.New, gobinary.New,
		requirements.New, poetrylock.New, pipfilelock.New, uvlock.New, wheelegg.New,
		packagelockjson.New, yarnlock.New, pnpmlock.New,
		cargolock.New, gemfilelock.New, composerlock.New,
		pomxml.New, gradlelockfile.New, packageslockjson.New,
		cdx.New, spdx.New,
	)
}

func build(ctors ...func(*cpb.PluginConfig) (filesystem.Extractor, error)) ([]filesystem.Extractor, error) {
	cfg := &cpb.PluginConfig{}
	out := make([]filesystem.Extractor, 0, len(ctors))
	for _, ctor := range ctors {
		e, err := ctor(cfg)
		if err != nil {
			return nil, fmt.Errorf("set up extractor: %w", err)
		}
		out = append(out, e)
	}
	return out, nil
}

// readError is why a file or directory could not be read, without the
// path relative to the walked directory that the error repeats (the Skip
// carries the whole path).
func readError(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return "cannot read: " + pe.Err.Error()
	}
	return "cannot read: " + err.Error()
}

// singleEquals is a requirement pinned with one "=" (requests=2.0): pip
// refuses it, and the requirements parser passes over it silently.
var singleEquals = regexp.MustCompile(`^\s*([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?\s*=\s*([^=<>!~\s;#][^\s;#]*)`)

// requirementWarnings names the lines of a requirements file that pin
// nothing pip would accept, with the line number.
func requirementWarnings(fsys fs.FS, rel, display string) []inventory.Warning {
	f, err := fsys.Open(rel)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []inventory.Warning
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		m := singleEquals.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		out = append(out, inventory.Warning{Path: display, Line: n,
			Message: fmt.Sprintf("%q is not a requirement pip accepts (did you mean %s==%s?); not matched", strings.TrimSpace(line), m[1]+m[2], m[3])})
	}
	return out
}
