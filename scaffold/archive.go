package scaffold

import (
	"archive/tar"
	"compress/gzip"
	"io"
	"path"
	"time"
)

// Info describes a template and its parameters, as the API lists them.
type Info struct {
	Name        string      `json:"name"`
	Description string      `json:"description"`
	Parameters  []ParamInfo `json:"parameters"`
}

// ParamInfo describes one parameter.
type ParamInfo struct {
	Name        string   `json:"name"`
	Type        string   `json:"type"`
	Prompt      string   `json:"prompt"`
	Description string   `json:"description,omitempty"`
	Default     *string  `json:"default,omitempty"` // absent: required
	Allowed     []string `json:"allowed,omitempty"`
	Pattern     string   `json:"pattern,omitempty"`
	Min         *int     `json:"min,omitempty"`
	Max         *int     `json:"max,omitempty"`
}

// Info describes the template.
func (t *Template) Info() Info {
	in := Info{Name: t.Name, Description: t.Description, Parameters: make([]ParamInfo, len(t.Params))}
	for i, p := range t.Params {
		pi := ParamInfo{Name: p.Name, Type: p.Type, Prompt: p.Prompt, Description: p.Description, Pattern: p.Pattern, Min: p.Min, Max: p.Max}
		if p.Default != nil {
			d := string(*p.Default)
			pi.Default = &d
		}
		for _, a := range p.Allowed {
			pi.Allowed = append(pi.Allowed, string(a))
		}
		in.Parameters[i] = pi
	}
	return in
}

// WriteTarGz writes the files as a gzipped tar archive under the
// directory dir, dated at.
func WriteTarGz(w io.Writer, dir string, files []File, at time.Time) error {
	gz := gzip.NewWriter(w)
	tw := tar.NewWriter(gz)
	dirs := map[string]bool{}
	for _, f := range files {
		// Parent directories first, once each.
		var parents []string
		for d := path.Dir(f.Path); d != "."; d = path.Dir(d) {
			parents = append([]string{d}, parents...)
		}
		for _, d := range append([]string{""}, parents...) {
			if dirs[d] {
				continue
			}
			dirs[d] = true
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: path.Join(dir, d) + "/", Mode: 0o755, ModTime: at, Format: tar.FormatPAX}); err != nil {
				return err
			}
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: path.Join(dir, f.Path), Mode: int64(f.Mode.Perm()), Size: int64(len(f.Data)), ModTime: at, Format: tar.FormatPAX}); err != nil {
			return err
		}
		if _, err := tw.Write(f.Data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return gz.Close()
}
