package policy

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"time"
)

// ErrConflict is returned when a document changed between the diff and
// its application.
var ErrConflict = errors.New("changed by someone else meanwhile; apply again")

// Applied is a document as the server keeps it: its current version.
type Applied struct {
	Doc       *Document `json:"-"`
	Version   int       `json:"version"`
	AppliedAt time.Time `json:"applied_at"`
	AppliedBy string    `json:"applied_by"`
}

// Action is what an apply does to one document.
type Action string

// Actions of a change.
const (
	Created   Action = "created"
	Changed   Action = "changed"
	Unchanged Action = "unchanged"
	Deleted   Action = "deleted"
)

// Change is what applying (or deleting) one document does.
type Change struct {
	Action  Action    `json:"action"`
	Kind    string    `json:"kind"`
	Name    string    `json:"name"`
	Version int       `json:"version"` // the version after the change
	Doc     *Document `json:"-"`       // nil when deleted
	// Canonical is the new version's stored form ("" when deleted).
	Canonical string `json:"-"`
	// Diff is a unified diff of the YAML, old to new.
	Diff string `json:"diff,omitempty"`
}

// Ref is "Kind/name".
func (c Change) Ref() string { return c.Kind + "/" + c.Name }

// Diff computes the changes that applying docs and deleting deletes
// ("Kind/name") make to current — the diff of an apply, which `apply
// --dry-run` and `diff` show — and checks that the result is a valid Set.
// Nothing is changed. The returned set is the result's.
func Diff(current []Applied, docs []*Document, deletes []string) ([]Change, *Set, error) {
	byRef := map[string]Applied{}
	for _, a := range current {
		byRef[a.Doc.Ref()] = a
	}
	result := map[string]*Document{}
	for _, a := range current {
		result[a.Doc.Ref()] = a.Doc
	}
	var changes []Change
	var errs Errors
	given := map[string]*Document{}
	for _, d := range docs {
		if prev, ok := given[d.Ref()]; ok {
			errs = append(errs, &FieldError{Pos: d.posOf("metadata.name"), Path: "metadata.name", Message: fmt.Sprintf("%s is also defined at %s", d.Ref(), prev.Source)})
			continue
		}
		given[d.Ref()] = d
		canon, err := Canonical(d)
		if err != nil {
			return nil, nil, err
		}
		c := Change{Kind: d.Kind, Name: d.Metadata.Name, Doc: d, Canonical: string(canon)}
		old, ok := byRef[d.Ref()]
		switch {
		case !ok:
			c.Action, c.Version = Created, 1
			c.Diff = diffYAML(nil, d)
		default:
			oldCanon, err := Canonical(old.Doc)
			if err != nil {
				return nil, nil, err
			}
			if bytes.Equal(oldCanon, canon) {
				c.Action, c.Version = Unchanged, old.Version
			} else {
				c.Action, c.Version = Changed, old.Version+1
				c.Diff = diffYAML(old.Doc, d)
			}
		}
		result[d.Ref()] = d
		changes = append(changes, c)
	}
	for _, ref := range deletes {
		old, ok := byRef[ref]
		if !ok {
			errs = append(errs, &FieldError{Pos: Pos{File: ref}, Message: "not found"})
			continue
		}
		if _, ok := given[ref]; ok {
			errs = append(errs, &FieldError{Pos: Pos{File: ref}, Message: "both applied and deleted"})
			continue
		}
		delete(result, ref)
		changes = append(changes, Change{Action: Deleted, Kind: old.Doc.Kind, Name: old.Doc.Metadata.Name, Version: old.Version + 1, Diff: diffYAML(old.Doc, nil)})
	}
	if len(errs) > 0 {
		return nil, nil, errs.sorted()
	}
	all := make([]*Document, 0, len(result))
	for _, d := range result {
		all = append(all, d)
	}
	set, err := NewSet(all)
	if err != nil {
		return nil, nil, err
	}
	return changes, set, nil
}

func diffYAML(old, new *Document) string {
	render := func(d *Document) []string {
		if d == nil {
			return nil
		}
		var b bytes.Buffer
		if err := Encode(&b, []*Document{d}); err != nil {
			return []string{"# " + err.Error()}
		}
		return strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	}
	return LineDiff(render(old), render(new))
}

// LineDiff is a line diff of a and b: lines only in a start with "-", only in
// b with "+", common ones with " ". It is the longest common subsequence's
// (documents are small).
func LineDiff(a, b []string) string {
	n, m := len(a), len(b)
	lcs := make([][]int, n+1)
	for i := range lcs {
		lcs[i] = make([]int, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var out strings.Builder
	i, j := 0, 0
	for i < n || j < m {
		switch {
		case i < n && j < m && a[i] == b[j]:
			out.WriteString("  " + a[i] + "\n")
			i++
			j++
		case j < m && (i == n || lcs[i][j+1] >= lcs[i+1][j]):
			out.WriteString("+ " + b[j] + "\n")
			j++
		default:
			out.WriteString("- " + a[i] + "\n")
			i++
		}
	}
	return out.String()
}
