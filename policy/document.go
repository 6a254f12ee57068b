// Package policy holds patchbay's policy as code: YAML documents
// (apiVersion patchbay/v1) naming teams, services, host groups, the
// prioritisation policy and accepted risks, their strict parsing and
// validation, and the decisions they make: a finding's priority, reasons,
// SLA due date, lane and state.
package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// APIVersion is the version of the documents this package reads.
const APIVersion = "patchbay/v1"

// Metadata names a document.
type Metadata struct {
	Name string `yaml:"name" json:"name" policy:"required"`
	// Labels are free-form, for the users' own tooling.
	Labels map[string]string `yaml:"labels,omitempty" json:"labels,omitempty"`
}

// Spec is a kind's content.
type Spec interface {
	// Check validates the spec alone; cross-document rules are the Set's
	// (see Referrer).
	Check(c *Checker)
}

// Referrer is a spec that names other documents: each must exist in the
// set applied (checked by NewSet, pointing at Path).
type Referrer interface {
	References() []Reference
}

// Reference names a document from a field.
type Reference struct {
	Kind, Name string
	Path       string // the field: spec.hostGroups[1]
}

// Document is one policy document.
type Document struct {
	APIVersion string   `yaml:"apiVersion" json:"apiVersion"`
	Kind       string   `yaml:"kind" json:"kind"`
	Metadata   Metadata `yaml:"metadata" json:"metadata"`
	Spec       Spec     `yaml:"spec" json:"spec"`
	// Source is where the document starts; paths are the positions of
	// its fields, for errors found after parsing.
	Source Pos            `yaml:"-" json:"-"`
	paths  map[string]Pos `yaml:"-" json:"-"`
}

// Ref is "Kind/name".
func (d *Document) Ref() string { return d.Kind + "/" + d.Metadata.Name }

// Kind is a document kind: its name and the constructor of its spec.
type Kind struct {
	Name    string
	NewSpec func() Spec
}

// Kinds are the document kinds a parser knows, made from explicit lists
// at the composition roots (package kinds holds patchbay's one list): a
// document of another kind is refused with the known kinds named.
type Kinds struct {
	names []string // sorted
	spec  map[string]func() Spec
}

// NewKinds combines lists of kinds. A kind given twice is a programming
// error and panics.
func NewKinds(lists ...[]Kind) Kinds {
	k := Kinds{spec: map[string]func() Spec{}}
	for _, list := range lists {
		for _, kind := range list {
			if _, dup := k.spec[kind.Name]; dup {
				panic("policy: kind " + kind.Name + " given twice")
			}
			k.spec[kind.Name] = kind.NewSpec
			k.names = append(k.names, kind.Name)
		}
	}
	sort.Strings(k.names)
	return k
}

// Checker collects a document's validation errors, for specs of other
// packages.
type Checker = checker

// Errorf records a problem of the field at path.
func (c *checker) Errorf(path, format string, args ...any) { c.errorf(path, format, args...) }

// Names lists the kinds in order.
func (k Kinds) Names() []string { return slices.Clone(k.names) }

// Canonical returns the kind named by s, case-insensitive, singular or
// plural ("services" → "Service").
func (k Kinds) Canonical(s string) (string, error) {
	l := strings.ToLower(s)
	for _, name := range k.names {
		kl := strings.ToLower(name)
		if l == kl || l == kl+"s" || l == kl+"es" || (strings.HasSuffix(kl, "y") && l == kl[:len(kl)-1]+"ies") {
			return name, nil
		}
	}
	return "", fmt.Errorf("unknown kind %q (want one of %s)", s, strings.Join(k.names, ", "))
}

var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$`)

type envelope struct {
	APIVersion string   `yaml:"apiVersion" policy:"required"`
	Kind       string   `yaml:"kind" policy:"required"`
	Metadata   Metadata `yaml:"metadata" policy:"required"`
	Spec       rawNode  `yaml:"spec" policy:"required"`
}

// Parse reads every document of a YAML stream (documents separated by
// "---"; empty ones are skipped). name is the file name errors cite.
// Every problem of every document is reported, as Errors.
func (k Kinds) Parse(name string, data []byte) ([]*Document, error) {
	var docs []*Document
	var errs Errors
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			errs = append(errs, syntaxError(name, err))
			break
		}
		if len(n.Content) == 0 || (n.Content[0].Kind == yaml.ScalarNode && n.Content[0].Tag == "!!null") {
			continue
		}
		d, derrs := k.decodeDocument(name, &n)
		errs = append(errs, derrs...)
		if d != nil {
			docs = append(docs, d)
		}
	}
	if len(errs) > 0 {
		return nil, errs.sorted()
	}
	return docs, nil
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

func syntaxError(name string, err error) *FieldError {
	msg := err.Error()
	fe := &FieldError{Pos: Pos{File: name}, Message: "invalid YAML: " + msg}
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		var line int
		fmt.Sscan(m[1], &line)
		fe.Pos.Line, fe.Pos.Column = line, 1
		fe.Message = "invalid YAML: " + m[2]
	}
	return fe
}

func (k Kinds) decodeDocument(file string, n *yaml.Node) (*Document, Errors) {
	d := &decoder{file: file, pos: map[string]Pos{}}
	root := n.Content[0]
	var env envelope
	d.decode(root, reflect.ValueOf(&env).Elem(), "")
	doc := &Document{APIVersion: env.APIVersion, Kind: env.Kind, Metadata: env.Metadata, Source: d.at(root), paths: d.pos}
	if len(d.errs) > 0 {
		return nil, d.errs
	}
	c := &checker{doc: doc}
	if env.APIVersion != APIVersion {
		c.errorf("apiVersion", "want %s, got %q", APIVersion, env.APIVersion)
	}
	if !nameRE.MatchString(env.Metadata.Name) {
		c.errorf("metadata.name", "%q: want lower-case letters, digits, '-' and '.', starting and ending with a letter or digit, up to 63 characters", env.Metadata.Name)
	}
	newSpec, ok := k.spec[env.Kind]
	if !ok {
		c.errorf("kind", "unknown kind %q (want one of %s)", env.Kind, strings.Join(k.names, ", "))
		return nil, c.errs
	}
	spec := newSpec()
	d.decode(env.Spec.node, reflect.ValueOf(spec).Elem(), "spec")
	doc.Spec = spec
	if len(d.errs) > 0 {
		return nil, append(c.errs, d.errs...).sorted()
	}
	spec.Check(c)
	if len(c.errs) > 0 {
		return nil, c.errs
	}
	return doc, nil
}

// File is one file of documents, as read.
type File struct {
	Name string
	Data []byte
}

// CollectFiles reads the files and directories named: *.yaml, *.yml and
// (VEX) *.json files, directories recursively in name order, skipping
// hidden directories and files (a repository's .gitlab-ci.yml is not a
// policy document; a file named explicitly is read). "-" reads stdin,
// named <stdin>.
func CollectFiles(paths []string, stdin io.Reader) ([]File, error) {
	var files []File
	add := func(name string) error {
		b, err := os.ReadFile(name)
		files = append(files, File{Name: name, Data: b})
		return err
	}
	for _, p := range paths {
		if p == "-" {
			b, err := io.ReadAll(stdin)
			if err != nil {
				return nil, err
			}
			files = append(files, File{Name: "<stdin>", Data: b})
			continue
		}
		st, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if !st.IsDir() {
			if err := add(p); err != nil {
				return nil, err
			}
			continue
		}
		err = filepath.WalkDir(p, func(path string, e os.DirEntry, err error) error {
			switch {
			case err != nil:
				return err
			case e.IsDir() && path != p && strings.HasPrefix(e.Name(), "."):
				return filepath.SkipDir
			case e.IsDir():
				return nil
			case strings.HasPrefix(e.Name(), "."):
				return nil
			}
			switch filepath.Ext(path) {
			case ".yaml", ".yml", ".json":
				return add(path)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return files, nil
}

// ParseFiles parses every document of the files, reporting every problem
// of every file (as Errors).
func (k Kinds) ParseFiles(files []File) ([]*Document, error) {
	var docs []*Document
	var errs Errors
	for _, f := range files {
		ds, err := k.ParseFile(f.Name, f.Data)
		if es := AsErrors(err); es != nil {
			errs = append(errs, es...)
			continue
		} else if err != nil {
			return nil, err
		}
		docs = append(docs, ds...)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return docs, nil
}

// ParseFile parses a YAML file, or a VEX document (JSON) into Exceptions.
func (k Kinds) ParseFile(name string, data []byte) ([]*Document, error) {
	if filepath.Ext(name) == ".json" || IsVEX(data) {
		return ParseVEX(name, data)
	}
	return k.Parse(name, data)
}

// checker collects a document's validation errors.
type checker struct {
	doc  *Document
	errs Errors
}

// errorf records a problem at path, placed at the path's position or, for
// a field that is absent, at its nearest present parent's.
func (c *checker) errorf(path, format string, args ...any) {
	c.errs = append(c.errs, &FieldError{Pos: c.doc.posOf(path), Path: path, Message: fmt.Sprintf(format, args...)})
}

func (d *Document) posOf(path string) Pos {
	for p := path; ; {
		if pos, ok := d.paths[p]; ok {
			return pos
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return d.Source
}

// Encode renders documents as a YAML stream that parses back to the same
// documents.
func Encode(w io.Writer, docs []*Document) error {
	for i, d := range docs {
		if i > 0 {
			if _, err := io.WriteString(w, "---\n"); err != nil {
				return err
			}
		}
		enc := yaml.NewEncoder(w)
		enc.SetIndent(2)
		if err := enc.Encode(d); err != nil {
			return err
		}
		if err := enc.Close(); err != nil {
			return err
		}
	}
	return nil
}

// Canonical is a document's stable JSON form: equal for equal documents,
// what versions are compared and stored by.
func Canonical(d *Document) ([]byte, error) {
	return json.Marshal(struct {
		Kind     string   `json:"kind"`
		Metadata Metadata `json:"metadata"`
		Spec     Spec     `json:"spec"`
	}{d.Kind, d.Metadata, d.Spec})
}

// FromCanonical rebuilds a document from its Canonical form.
func (k Kinds) FromCanonical(data []byte) (*Document, error) {
	var raw struct {
		Kind     string          `json:"kind"`
		Metadata Metadata        `json:"metadata"`
		Spec     json.RawMessage `json:"spec"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("stored document: %w", err)
	}
	newSpec, ok := k.spec[raw.Kind]
	if !ok {
		return nil, fmt.Errorf("stored document: unknown kind %q", raw.Kind)
	}
	spec := newSpec()
	if err := json.Unmarshal(raw.Spec, spec); err != nil {
		return nil, fmt.Errorf("stored %s/%s: %w", raw.Kind, raw.Metadata.Name, err)
	}
	// Errors about an applied document name it.
	src := Pos{File: raw.Kind + "/" + raw.Metadata.Name + " (applied)"}
	return &Document{APIVersion: APIVersion, Kind: raw.Kind, Metadata: raw.Metadata, Spec: spec, Source: src, paths: map[string]Pos{}}, nil
}

// SortDocuments orders documents by kind then name.
func SortDocuments(docs []*Document) {
	slices.SortFunc(docs, func(a, b *Document) int {
		if c := strings.Compare(a.Kind, b.Kind); c != 0 {
			return c
		}
		return strings.Compare(a.Metadata.Name, b.Metadata.Name)
	})
}
