package edit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/semver"

	"github.com/patchbay/patchbay/remedy"
)

// goMod upgrades the requirements of a go.mod, and its go.sum when the go
// command runs.
func goMod(ctx context.Context, path string, ups []remedy.Upgrade, opts Options, res *Result) (*Change, []Skip, error) {
	old, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", path, err)
	}
	f, err := modfile.Parse(path, old, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("parse %s: %w", path, err)
	}
	var skips []Skip
	var todo []remedy.Upgrade
	for _, u := range ups {
		if r := replaced(f, u.Package); r != nil {
			skips = append(skips, Skip{Upgrade: u, Path: path, Reason: fmt.Sprintf("%s:%d replaces %s with %s %s: change the replace directive", path, r.Syntax.Start.Line, u.Package, r.New.Path, r.New.Version)})
			continue
		}
		if !required(f, u.Package) {
			skips = append(skips, Skip{Upgrade: u, Path: path, Reason: fmt.Sprintf("%s does not require %s", path, u.Package)})
			continue
		}
		todo = append(todo, u)
	}
	if len(todo) == 0 {
		return nil, skips, nil
	}
	ch := &Change{Path: path, Old: old, Upgrades: todo}
	if opts.Go != "" {
		mod, sum, err := goGet(ctx, path, todo, opts)
		if err == nil {
			ch.New, ch.Tool = mod, "go get"
			sumPath := filepath.Join(filepath.Dir(path), "go.sum")
			oldSum, _ := os.ReadFile(sumPath)
			if !bytes.Equal(oldSum, sum) {
				res.Changes = append(res.Changes, Change{Path: sumPath, Old: oldSum, New: sum, Tool: "go get"})
			}
			return ch, skips, nil
		}
		res.Notes = append(res.Notes, fmt.Sprintf("%s: go get failed, so the requirements were edited with modfile alone and go.sum is not updated (run `go mod tidy`): %v", path, err))
	} else {
		res.Notes = append(res.Notes, fmt.Sprintf("%s: no go command was run, so go.sum and the requirements the upgrades pull up are not updated: run `go mod tidy` in %s", path, filepath.Dir(path)))
	}
	for _, u := range todo {
		if err := f.AddRequire(u.Package, goVersion(u.To)); err != nil {
			return nil, nil, fmt.Errorf("%s: require %s %s: %w", path, u.Package, u.To, err)
		}
	}
	f.Cleanup()
	out, err := f.Format()
	if err != nil {
		return nil, nil, fmt.Errorf("format %s: %w", path, err)
	}
	ch.New, ch.Tool = out, "modfile"
	return ch, skips, nil
}

func replaced(f *modfile.File, path string) *modfile.Replace {
	for _, r := range f.Replace {
		if r.Old.Path == path {
			return r
		}
	}
	return nil
}

func required(f *modfile.File, path string) bool {
	for _, r := range f.Require {
		if r.Mod.Path == path {
			return true
		}
	}
	return false
}

// goGet runs `go get MODULE@VERSION...` on a copy of go.mod and go.sum and
// returns their new contents. GOTOOLCHAIN=local keeps it from fetching
// toolchains; GOFLAGS=-mod=mod lets it write go.mod.
func goGet(ctx context.Context, path string, ups []remedy.Upgrade, opts Options) (mod, sum []byte, err error) {
	dir, err := os.MkdirTemp("", "patchbay-fix-go-")
	if err != nil {
		return nil, nil, err
	}
	defer os.RemoveAll(dir)
	for _, name := range []string{"go.mod", "go.sum"} {
		b, err := os.ReadFile(filepath.Join(filepath.Dir(path), name))
		if errors.Is(err, os.ErrNotExist) && name == "go.sum" {
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return nil, nil, err
		}
	}
	// One module at a time: an upgrade pulls others up by minimal version
	// selection, and asking for a module at a version below what an
	// earlier upgrade now requires would be refused ("x requires y@v2,
	// not y@v1"); such a module is already past its fix and is skipped.
	for _, u := range ups {
		cur, err := requiredVersion(filepath.Join(dir, "go.mod"), u.Package)
		if err != nil {
			return nil, nil, err
		}
		want := goVersion(u.To)
		if cur != "" && semver.Compare(cur, want) >= 0 {
			continue
		}
		args := []string{"get", u.Package + "@" + want}
		cmd := exec.CommandContext(ctx, opts.Go, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOTOOLCHAIN=local", "GOFLAGS=-mod=mod", "GOWORK=off")
		cmd.Env = append(cmd.Env, opts.Env...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			return nil, nil, fmt.Errorf("go %s: %w: %s", strings.Join(args, " "), err, lastLines(stderr.String(), 3))
		}
	}
	if mod, err = os.ReadFile(filepath.Join(dir, "go.mod")); err != nil {
		return nil, nil, err
	}
	sum, err = os.ReadFile(filepath.Join(dir, "go.sum"))
	if errors.Is(err, os.ErrNotExist) {
		err = nil
	}
	return mod, sum, err
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "; ")
}

// goVersion is a version as go.mod writes it: OSV's Go versions have no
// "v".
func goVersion(v string) string { return "v" + strings.TrimPrefix(v, "v") }

// requiredVersion is the version go.mod at path requires of module, "" when
// it requires none.
func requiredVersion(path, module string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	f, err := modfile.ParseLax(path, b, nil)
	if err != nil {
		return "", fmt.Errorf("parse %s after go get: %w", path, err)
	}
	for _, r := range f.Require {
		if r.Mod.Path == module {
			return r.Mod.Version, nil
		}
	}
	return "", nil
}
