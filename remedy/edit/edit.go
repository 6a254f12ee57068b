// Package edit rewrites dependency files to the versions a remedy.Plan
// proposes, re-scans the result, and writes it atomically.
//
// go.mod is edited with golang.org/x/mod/modfile; when a go command is
// given, `go get MODULE@VERSION` runs in a temporary copy of go.mod and
// go.sum instead, so that go.sum and the requirements the upgrade pulls up
// (minimal version selection) are the go command's own. requirements*.txt
// pins are rewritten line by line. package.json and package-lock.json are
// changed by the real npm client in a temporary copy (`npm install` of a
// direct dependency, `npm update` of a transitive one, lockfile only, no
// scripts): only npm knows the registry's versions, integrity hashes and
// the parents' ranges. Pipfile.lock and poetry.lock hold hashes of every
// file of every release: they are left to pipenv and poetry, each finding
// in them with that reason.
//
// Nothing is written in place until Apply, which writes every file to a
// temporary file beside it and renames them only when all are written.
package edit

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/patchbay/patchbay/match"
	"github.com/patchbay/patchbay/remedy"
)

// Options say which tools may run.
type Options struct {
	// Go is the go command to run for go.mod changes; "" edits go.mod with
	// modfile alone and leaves go.sum (a note says so).
	Go string
	// Npm is the npm command for package-lock.json changes; "" leaves
	// them (each finding says so).
	Npm string
	// Env is added to the tools' environment (GOPROXY, npm_config_registry…).
	Env []string
}

// Change is one rewritten file.
type Change struct {
	Path string `json:"path"`
	Old  []byte `json:"-"`
	New  []byte `json:"-"`
	// Upgrades are the upgrades written into it.
	Upgrades []remedy.Upgrade `json:"upgrades"`
	// Tool says how it was rewritten: "modfile", "go get", "pins", "npm".
	Tool string `json:"tool"`
}

// Skip is an upgrade not written to a file, and why.
type Skip struct {
	Upgrade remedy.Upgrade `json:"upgrade"`
	Path    string         `json:"path"`
	Reason  string         `json:"reason"`
}

// Result is what Rewrite did.
type Result struct {
	Changes []Change `json:"changes"`
	Skipped []Skip   `json:"skipped"`
	// Notes are plain statements about the result ("go.sum not updated:
	// no go command").
	Notes []string `json:"notes"`
}

// Rewrite computes the new contents of every file the plan's upgrades
// name. It changes nothing on disk.
func Rewrite(ctx context.Context, plan remedy.Plan, opts Options) (Result, error) {
	res := Result{Changes: []Change{}, Skipped: []Skip{}, Notes: []string{}}
	byFile := map[string][]remedy.Upgrade{}
	var files []string
	for _, u := range plan.Upgrades {
		for _, loc := range u.Locations {
			if _, ok := byFile[loc]; !ok {
				files = append(files, loc)
			}
			byFile[loc] = append(byFile[loc], u)
		}
	}
	sort.Strings(files)
	for _, path := range files {
		ups := byFile[path]
		var (
			ch    *Change
			skips []Skip
			err   error
		)
		base := filepath.Base(path)
		switch {
		case base == "go.mod":
			ch, skips, err = goMod(ctx, path, ups, opts, &res)
		case base == "package-lock.json":
			ch, skips, err = npmLock(ctx, path, ups, opts, &res)
		case base == "Pipfile.lock" || base == "poetry.lock":
			tool := map[string]string{"Pipfile.lock": "pipenv", "poetry.lock": "poetry"}[base]
			for _, u := range ups {
				skips = append(skips, Skip{Upgrade: u, Path: path, Reason: fmt.Sprintf("%s pins a hash of every file of each release; fix does not write it: run `%s` to upgrade %s to %s", base, lockCommand(tool, u), u.Package, u.To)})
			}
		case strings.HasSuffix(base, ".txt"):
			ch, skips, err = requirements(path, ups)
		default:
			for _, u := range ups {
				skips = append(skips, Skip{Upgrade: u, Path: path, Reason: "fix has no writer for " + base})
			}
		}
		if err != nil {
			return res, err
		}
		res.Skipped = append(res.Skipped, skips...)
		if ch != nil && !bytes.Equal(ch.Old, ch.New) {
			res.Changes = append(res.Changes, *ch)
		}
	}
	return res, nil
}

func lockCommand(tool string, u remedy.Upgrade) string {
	if tool == "poetry" {
		return fmt.Sprintf("poetry add %s@%s --lock", u.Package, u.To)
	}
	return fmt.Sprintf("pipenv upgrade %s==%s", u.Package, u.To)
}

// reqLine matches a requirements pin: name, extras, ==, version.
var reqLine = regexp.MustCompile(`^(\s*)([A-Za-z0-9][A-Za-z0-9._-]*)(\s*\[[^\]]*\])?(\s*===?\s*)([^\s;#\\]+)(.*)$`)

// requirements rewrites the pins of a requirements file.
func requirements(path string, ups []remedy.Upgrade) (*Change, []Skip, error) {
	old, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", path, err)
	}
	lines := strings.SplitAfter(string(old), "\n")
	want := map[string]remedy.Upgrade{}
	for _, u := range ups {
		want[match.NormalizeName("PyPI", u.Package)] = u
	}
	done := map[string]bool{}
	var skips []Skip
	for i, l := range lines {
		body := strings.TrimRight(l, "\r\n")
		m := reqLine.FindStringSubmatch(body)
		if m == nil {
			continue
		}
		name := match.NormalizeName("PyPI", m[2])
		u, ok := want[name]
		if !ok || m[5] != u.From {
			continue
		}
		if strings.Contains(m[6], "--hash") || (strings.HasSuffix(strings.TrimSpace(body), "\\") && i+1 < len(lines) && strings.Contains(lines[i+1], "--hash")) {
			skips = append(skips, Skip{Upgrade: u, Path: path, Reason: fmt.Sprintf("%s:%d pins %s with --hash: regenerate the file (pip-compile --generate-hashes) with %s==%s", path, i+1, u.Package, u.Package, u.To)})
			done[name] = true
			continue
		}
		lines[i] = m[1] + m[2] + m[3] + m[4] + u.To + m[6] + l[len(body):]
		done[name] = true
	}
	ch := &Change{Path: path, Old: old, New: []byte(strings.Join(lines, "")), Tool: "pins"}
	for _, u := range ups {
		n := match.NormalizeName("PyPI", u.Package)
		if !done[n] {
			skips = append(skips, Skip{Upgrade: u, Path: path, Reason: fmt.Sprintf("no line of %s pins %s==%s (an include or a constraint file names it)", path, u.Package, u.From)})
			continue
		}
		if !containsSkip(skips, u) {
			ch.Upgrades = append(ch.Upgrades, u)
		}
	}
	return ch, skips, nil
}

func containsSkip(skips []Skip, u remedy.Upgrade) bool {
	for _, s := range skips {
		if s.Upgrade.Package == u.Package && s.Upgrade.From == u.From {
			return true
		}
	}
	return false
}
