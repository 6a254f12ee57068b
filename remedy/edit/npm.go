package edit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"github.com/patchbay/patchbay/remedy"
)

// npmFlags keep npm to the lockfile: no node_modules, no install scripts,
// no audit or funding calls.
var npmFlags = []string{"--package-lock-only", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"}

// npmLock upgrades the packages of a package-lock.json with npm in a copy
// of the project's package.json and lockfile. A direct dependency gets
// `npm install NAME@^TO` (package.json's range moves to the fixed
// version); a transitive one `npm update NAME`, which moves it to the
// newest version its parents' ranges allow. The re-scan says what closed;
// a parent whose range holds a version back is named by Parents.
func npmLock(ctx context.Context, path string, ups []remedy.Upgrade, opts Options, res *Result) (*Change, []Skip, error) {
	dir := filepath.Dir(path)
	manifestPath := filepath.Join(dir, "package.json")
	manifest, err := os.ReadFile(manifestPath)
	if errors.Is(err, os.ErrNotExist) {
		var skips []Skip
		for _, u := range ups {
			skips = append(skips, Skip{Upgrade: u, Path: path, Reason: "no package.json beside " + path + ": npm cannot relock it"})
		}
		return nil, skips, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", manifestPath, err)
	}
	if opts.Npm == "" {
		var skips []Skip
		for _, u := range ups {
			skips = append(skips, Skip{Upgrade: u, Path: path, Reason: fmt.Sprintf("npm resolution is off (no npm or --offline): run `npm install %s@^%s --package-lock-only` or `npm update %s`", u.Package, u.To, u.Package)})
		}
		return nil, skips, nil
	}
	direct, err := directDeps(manifest)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", manifestPath, err)
	}
	old, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", path, err)
	}
	tmp, err := os.MkdirTemp("", "patchbay-fix-npm-")
	if err != nil {
		return nil, nil, err
	}
	defer os.RemoveAll(tmp)
	for name, b := range map[string][]byte{"package.json": manifest, "package-lock.json": old} {
		if err := os.WriteFile(filepath.Join(tmp, name), b, 0o644); err != nil {
			return nil, nil, err
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, ".npmrc")); err == nil {
		if err := os.WriteFile(filepath.Join(tmp, ".npmrc"), b, 0o600); err != nil {
			return nil, nil, err
		}
	}
	var install, update []string
	for _, u := range uniqueByName(ups) {
		if direct[u.Package] {
			install = append(install, u.Package+"@^"+u.To)
		} else {
			update = append(update, u.Package)
		}
	}
	run := func(verb string, pkgs []string) error {
		if len(pkgs) == 0 {
			return nil
		}
		args := append(append([]string{verb}, npmFlags...), pkgs...)
		cmd := exec.CommandContext(ctx, opts.Npm, args...)
		cmd.Dir = tmp
		cmd.Env = append(append(os.Environ(), "npm_config_update_notifier=false"), opts.Env...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("npm %s: %w: %s", strings.Join(args, " "), err, lastLines(stderr.String(), 3))
		}
		return nil
	}
	if err := run("install", install); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	if err := run("update", update); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	newLock, err := os.ReadFile(filepath.Join(tmp, "package-lock.json"))
	if err != nil {
		return nil, nil, err
	}
	newManifest, err := os.ReadFile(filepath.Join(tmp, "package.json"))
	if err != nil {
		return nil, nil, err
	}
	if !bytes.Equal(manifest, newManifest) {
		res.Changes = append(res.Changes, Change{Path: manifestPath, Old: manifest, New: newManifest, Tool: "npm"})
	}
	return &Change{Path: path, Old: old, New: newLock, Upgrades: ups, Tool: "npm"}, nil, nil
}

// directDeps are the names package.json depends on itself.
func directDeps(manifest []byte) (map[string]bool, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(manifest, &m); err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	out := map[string]bool{}
	for _, k := range []string{"dependencies", "devDependencies", "optionalDependencies"} {
		raw, ok := m[k]
		if !ok {
			continue
		}
		var deps map[string]string
		if err := json.Unmarshal(raw, &deps); err != nil {
			return nil, fmt.Errorf("%s: %w", k, err)
		}
		for name := range deps {
			out[name] = true
		}
	}
	return out, nil
}

func uniqueByName(ups []remedy.Upgrade) []remedy.Upgrade {
	best := map[string]remedy.Upgrade{}
	var names []string
	for _, u := range ups {
		if _, ok := best[u.Package]; !ok {
			names = append(names, u.Package)
			best[u.Package] = u
		}
	}
	sort.Strings(names)
	out := make([]remedy.Upgrade, len(names))
	for i, n := range names {
		out[i] = best[n]
	}
	return out
}

// Parents names, from a package-lock.json (v2 or v3), the packages that
// depend on name at version and the range each asks for:
// "mocha@10.1.0 requires debug@4.3.4".
func Parents(lock []byte, name, version string) ([]string, error) {
	var doc struct {
		Packages map[string]lockEntry `json:"packages"`
	}
	if err := json.Unmarshal(lock, &doc); err != nil {
		return nil, fmt.Errorf("parse package-lock.json: %w", err)
	}
	// The entries that hold name at version, and from them who resolves to
	// them: a parent at P resolves name at P/node_modules/name, or at the
	// nearest ancestor's node_modules.
	var out []string
	for p, e := range doc.Packages {
		for _, deps := range []map[string]string{e.Dependencies, e.OptionalDependencies, e.PeerDependencies, e.DevDependencies} {
			rng, ok := deps[name]
			if !ok {
				continue
			}
			if resolve(doc.Packages, p, name) != version {
				continue
			}
			who := p // a workspace
			switch {
			case p == "":
				who = "package.json"
			case strings.Contains(p, "node_modules/"):
				who = p[strings.LastIndex(p, "node_modules/")+len("node_modules/"):] + "@" + e.Version
			}
			out = append(out, fmt.Sprintf("%s requires %s@%s", who, name, rng))
		}
	}
	sort.Strings(out)
	return out, nil
}

// resolve is the version node resolution finds for name from the package
// at path p.
func resolve(pkgs map[string]lockEntry, p, name string) string {
	for {
		cand := "node_modules/" + name
		if p != "" {
			cand = p + "/node_modules/" + name
		}
		if e, ok := pkgs[cand]; ok {
			return e.Version
		}
		if p == "" {
			return ""
		}
		i := strings.LastIndex(p, "/node_modules/")
		if i < 0 {
			p = ""
		} else {
			p = p[:i]
		}
	}
}

// lockEntry is one entry of a package-lock.json's packages.
type lockEntry struct {
	Version              string            `json:"version"`
	Dependencies         map[string]string `json:"dependencies"`
	DevDependencies      map[string]string `json:"devDependencies"`
	OptionalDependencies map[string]string `json:"optionalDependencies"`
	PeerDependencies     map[string]string `json:"peerDependencies"`
}
