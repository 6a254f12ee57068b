// Package scaffold generates a team's patching as code from templates: a
// policy repository (Teams, Services, HostGroups, the Policy, windows,
// strategies, approval rules), its CI pipelines and its README.
//
// A template is a directory: a manifest (template.yaml, a document of kind
// Template naming its parameters, validated with file:line:column as
// policy documents are) and files. A file whose name ends in .tmpl is a Go
// text/template rendered with the parameters' values (the suffix is
// dropped); any other file is copied as it is. Built-in templates are
// embedded in the binary; their files common to all (CI pipelines) are in
// templates/_common. Adding a document kind to a template is one file
// beside the others, and its parameters in the manifest.
//
// Every rendering is checked before anything is written: the documents it
// produced are parsed and cross-checked as `patchbay policy validate`
// would, so a template and values that render an invalid repository are
// refused, naming the file.
package scaffold

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"text/template"
	"time"

	"github.com/patchbay/patchbay/kinds"
	"github.com/patchbay/patchbay/policy"
)

//go:embed all:templates
var builtinFS embed.FS

// commonDir holds the files every built-in template has.
const commonDir = "_common"

// Template is a loaded, validated template.
type Template struct {
	Name        string
	Description string
	Params      []Param
	// Source is where it came from: "built-in" or its directory.
	Source string
	files  []fs.FS // searched in order; the first holding a path wins
}

// Builtins are the templates shipped in the binary, by name.
func Builtins() []*Template {
	entries, err := fs.ReadDir(builtinFS, "templates")
	if err != nil {
		panic(err)
	}
	common, _ := fs.Sub(builtinFS, "templates/"+commonDir)
	var out []*Template
	for _, e := range entries {
		if !e.IsDir() || e.Name() == commonDir {
			continue
		}
		sub, _ := fs.Sub(builtinFS, "templates/"+e.Name())
		t, err := load(sub, "templates/"+e.Name(), "built-in", common)
		if err != nil {
			panic(fmt.Sprintf("scaffold: built-in template %s: %v", e.Name(), err)) // the tests render every one
		}
		out = append(out, t)
	}
	return out
}

// Builtin returns the built-in template of that name.
func Builtin(name string) (*Template, error) {
	var names []string
	for _, t := range Builtins() {
		if t.Name == name {
			return t, nil
		}
		names = append(names, t.Name)
	}
	return nil, fmt.Errorf("no template %q (built-in: %s; or a directory: ./my-template)", name, strings.Join(names, ", "))
}

// Open returns the template ref names: a built-in name, or a directory
// when it holds a path separator or starts with a dot.
func Open(ref string) (*Template, error) {
	if !strings.ContainsRune(ref, '/') && !strings.HasPrefix(ref, ".") {
		return Builtin(ref)
	}
	st, err := os.Stat(ref)
	if err != nil {
		return nil, fmt.Errorf("template: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("template %s: not a directory (a template is a directory with a %s)", ref, ManifestFile)
	}
	return Load(os.DirFS(ref), ref)
}

// Load reads a template from fsys (its root holds the manifest); dir is
// how errors name it.
func Load(fsys fs.FS, dir string) (*Template, error) {
	return load(fsys, dir, dir, nil)
}

func load(fsys fs.FS, dir, source string, base fs.FS) (*Template, error) {
	data, err := fs.ReadFile(fsys, ManifestFile)
	if err != nil {
		return nil, fmt.Errorf("template %s: %w", dir, err)
	}
	k := policy.NewKinds([]policy.Kind{{Name: KindTemplate, NewSpec: func() policy.Spec { return &Spec{} }}})
	docs, err := k.Parse(path.Join(dir, ManifestFile), data)
	if err != nil {
		return nil, err
	}
	if len(docs) != 1 {
		return nil, fmt.Errorf("%s: want one document of kind %s, got %d", path.Join(dir, ManifestFile), KindTemplate, len(docs))
	}
	spec := docs[0].Spec.(*Spec)
	t := &Template{Name: docs[0].Metadata.Name, Description: spec.Description, Params: spec.Parameters, Source: source, files: []fs.FS{fsys}}
	if base != nil {
		t.files = append(t.files, base)
	}
	return t, nil
}

// Param returns the parameter of that name.
func (t *Template) Param(name string) *Param {
	for i := range t.Params {
		if t.Params[i].Name == name {
			return &t.Params[i]
		}
	}
	return nil
}

// ParamError is a value refused for a parameter.
type ParamError struct {
	Name, Value string
	Err         error
}

func (e *ParamError) Error() string {
	if e.Value == "" && e.Err == errMissing {
		return e.Name + ": " + e.Err.Error()
	}
	return fmt.Sprintf("%s=%s: %v", e.Name, e.Value, e.Err)
}

func (e *ParamError) Unwrap() error { return e.Err }

var errMissing = errors.New("required: the template has no default for it")

// Values resolves the parameters from the values given (as on the
// command line): each given value parsed and checked, defaults for the
// others. A name the template has no parameter of is refused.
func (t *Template) Values(given map[string]string) (map[string]any, error) {
	names := slices.Sorted(func(yield func(string) bool) {
		for k := range given {
			if !yield(k) {
				return
			}
		}
	})
	for _, k := range names {
		if t.Param(k) == nil {
			have := make([]string, len(t.Params))
			for i, p := range t.Params {
				have[i] = p.Name
			}
			return nil, &ParamError{Name: k, Value: given[k], Err: fmt.Errorf("template %s has no such parameter (it has %s)", t.Name, strings.Join(have, ", "))}
		}
	}
	out := map[string]any{}
	for i := range t.Params {
		p := &t.Params[i]
		s, ok := given[p.Name]
		if !ok {
			if p.Default == nil {
				return nil, &ParamError{Name: p.Name, Err: errMissing}
			}
			s = string(*p.Default)
		}
		v, err := p.Parse(s)
		if err != nil {
			return nil, &ParamError{Name: p.Name, Value: s, Err: err}
		}
		out[p.Name] = v
	}
	return out, nil
}

// File is one generated file.
type File struct {
	Path string // slash-separated, relative
	Data []byte
	Mode fs.FileMode
}

// Render resolves the values and renders every file, then checks the
// policy documents produced. Nothing is written.
func (t *Template) Render(given map[string]string) ([]File, error) {
	vals, err := t.Values(given)
	if err != nil {
		return nil, err
	}
	vals["Template"] = map[string]string{"Name": t.Name, "Description": t.Description}
	paths := map[string]fs.FS{}
	for _, fsys := range t.files {
		err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() || p == ManifestFile {
				return nil
			}
			out := strings.TrimSuffix(p, ".tmpl")
			if _, ok := paths[out]; !ok {
				paths[out] = fsys
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("template %s: %w", t.Name, err)
		}
	}
	outs := make([]string, 0, len(paths))
	for p := range paths {
		outs = append(outs, p)
	}
	sort.Strings(outs)
	var files []File
	for _, out := range outs {
		fsys := paths[out]
		src := out
		if _, err := fs.Stat(fsys, out+".tmpl"); err == nil {
			src = out + ".tmpl"
		}
		data, err := fs.ReadFile(fsys, src)
		if err != nil {
			return nil, fmt.Errorf("template %s: %w", t.Name, err)
		}
		if src != out {
			tm, err := template.New(src).Option("missingkey=error").Funcs(funcs).Parse(string(data))
			if err != nil {
				return nil, fmt.Errorf("template %s: %w", t.Name, err)
			}
			var b bytes.Buffer
			if err := tm.Execute(&b, vals); err != nil {
				return nil, fmt.Errorf("template %s: %w", t.Name, err)
			}
			data = b.Bytes()
		}
		if len(bytes.TrimSpace(data)) == 0 {
			continue // a file the values leave empty is not written
		}
		mode := fs.FileMode(0o644)
		if strings.HasSuffix(out, ".sh") {
			mode = 0o755
		}
		files = append(files, File{Path: out, Data: data, Mode: mode})
	}
	if err := Check(files); err != nil {
		return nil, fmt.Errorf("template %s renders an invalid repository with these values: %w", t.Name, err)
	}
	return files, nil
}

// Check parses the policy documents of the files (those `patchbay apply
// -f DIR` reads) and checks them as a set: references, duplicate names.
func Check(files []File) error {
	var pf []policy.File
	for _, f := range files {
		if !IsPolicyFile(f.Path) {
			continue
		}
		pf = append(pf, policy.File{Name: f.Path, Data: f.Data})
	}
	docs, err := kinds.All().ParseFiles(pf)
	if err != nil {
		return err
	}
	_, err = policy.NewSet(docs)
	return err
}

// IsPolicyFile says whether `patchbay apply -f DIR` reads the file (see
// policy.CollectFiles): YAML and JSON files, not hidden, outside hidden
// directories.
func IsPolicyFile(p string) bool {
	for _, part := range strings.Split(p, "/") {
		if strings.HasPrefix(part, ".") {
			return false
		}
	}
	switch path.Ext(p) {
	case ".yaml", ".yml", ".json":
		return true
	}
	return false
}

var funcs = template.FuncMap{
	// quote writes a string as a double-quoted YAML scalar.
	"quote": func(s string) string { return fmt.Sprintf("%q", s) },
	"join":  strings.Join,
	"first": func(l []string) string { return l[0] },
	"last":  func(l []string) string { return l[len(l)-1] },
	"upper": strings.ToUpper,
	"has":   func(l []string, s string) bool { return slices.Contains(l, s) },
	"mod":   func(a, b int) int { return a % b },
	// except is the list without its last item (the rings before
	// production).
	"except": func(l []string) []string { return l[:len(l)-1] },
	// quarterEnd is the last day of the quarter (three months) that
	// starts on a date parameter's day: 2027-01-01 gives 2027-03-31.
	"quarterEnd": func(s string) (string, error) {
		d, err := time.Parse(time.DateOnly, s)
		if err != nil {
			return "", err
		}
		return d.AddDate(0, 3, -1).Format(time.DateOnly), nil
	},
}

// ErrNotEmpty is returned when the target directory holds files and
// force is not given.
var ErrNotEmpty = errors.New("not empty")

// Write writes the files into dir, all or nothing: into a new directory
// beside it first, renamed to dir when complete (into a dir that exists,
// each file is renamed in once all are written). A dir that exists and is
// not empty is refused unless force; with force, the files replace those
// of the same names and the others are kept.
func Write(dir string, files []File, force bool) error {
	entries, err := os.ReadDir(dir)
	exists := err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if exists && len(entries) > 0 && !force {
		return fmt.Errorf("%s: %w (give --force to write into it; files of the same names are replaced)", dir, ErrNotEmpty)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	parent := filepath.Dir(abs)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".init-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	for _, f := range files {
		p := filepath.Join(tmp, filepath.FromSlash(f.Path))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, f.Data, f.Mode); err != nil {
			return err
		}
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	if !exists {
		return os.Rename(tmp, abs)
	}
	// An existing directory (empty, or with --force; perhaps the current
	// one): every file is written, then each moved in.
	for _, f := range files {
		dst := filepath.Join(dir, filepath.FromSlash(f.Path))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if err := os.Rename(filepath.Join(tmp, filepath.FromSlash(f.Path)), dst); err != nil {
			return err
		}
	}
	return nil
}
