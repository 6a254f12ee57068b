package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"
	"golang.org/x/term"

	"github.com/patchbay/patchbay/internal/table"
)

// dataFormats are the formats of every list and show command: -o table
// (for people), json or yaml (the same field names).
var dataFormats = []string{"table", "json", "yaml"}

// checkOutput checks -o's value against the command's formats. -o is the
// format everywhere (--output-file is the path); a value that looks like a
// path is refused with that hint, for scripts written when scan's -o was
// its file.
func checkOutput(value string, formats []string) error {
	if slices.Contains(formats, value) {
		return nil
	}
	want := strings.Join(formats, ", ")
	if value == "-" || strings.ContainsAny(value, `/\.`) || filepath.Ext(value) != "" {
		return &outputPathError{value: value, want: want}
	}
	return fmt.Errorf("-o %q: want one of %s", value, want)
}

// outputFlag defines -o/--output, the format, with its default and help.
func outputFlag(f *pflag.FlagSet, p *string, formats []string) {
	f.StringVarP(p, "output", "o", formats[0], "output format: "+strings.Join(formats, ", "))
	// Shell completion offers them (completions reads the annotation).
	f.SetAnnotation("output", formatsAnnotation, formats)
}

// formatsAnnotation is the annotation of an -o flag listing its formats.
const formatsAnnotation = "patchbay_formats"

// printJSON writes v as indented JSON.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// printData writes v as JSON or YAML. The YAML is the JSON document
// converted, so its field names, what is omitted and how times are written
// are those of the JSON (and of the API).
func printData(w io.Writer, format string, v any) error {
	switch format {
	case "json":
		return printJSON(w, v)
	case "yaml":
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		y, err := jsonToYAML(b)
		if err != nil {
			return err
		}
		_, err = w.Write(y)
		return err
	}
	return fmt.Errorf("-o %q: want one of %s", format, strings.Join(dataFormats, ", "))
}

// jsonToYAML converts a JSON document to block-style YAML, keeping the
// order of its keys.
func jsonToYAML(b []byte) ([]byte, error) {
	var n yaml.Node
	if err := yaml.Unmarshal(b, &n); err != nil {
		return nil, fmt.Errorf("converting JSON to YAML: %w", err)
	}
	var plain func(*yaml.Node)
	plain = func(n *yaml.Node) {
		n.Style = 0
		for _, c := range n.Content {
			plain(c)
		}
	}
	plain(&n)
	var out bytes.Buffer
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(&n); err != nil {
		return nil, fmt.Errorf("converting JSON to YAML: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("converting JSON to YAML: %w", err)
	}
	return out.Bytes(), nil
}

// tableWidth is the width tables are fitted to: the terminal's, or none
// (0) when standard output is not a terminal or with --wide.
func (e *env) tableWidth(wide bool) int {
	if wide {
		return 0
	}
	return e.termWidth(e.stdout)
}

// terminalWidth is the width of the terminal w is, or 0.
func terminalWidth(w io.Writer) int {
	f, ok := w.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return 0
	}
	width, _, err := term.GetSize(int(f.Fd()))
	if err != nil {
		return 0
	}
	return width
}

// writeTable writes t to standard output, fitted to the table width.
func (e *env) writeTable(t *table.Table, wide bool) error {
	return t.Write(e.stdout, e.tableWidth(wide))
}

// limitFlag defines --limit for a long list.
func limitFlag(f *pflag.FlagSet, p *int, def int, what string) {
	f.IntVar(p, "limit", def, "show at most this many "+what+" (0: all)")
}

// wideFlag defines --wide.
func wideFlag(f *pflag.FlagSet, p *bool) {
	f.BoolVar(p, "wide", false, "do not fit tables to the terminal: every cell in full")
}

// outputPathError is -o given what looks like a path. explain adds the
// hint that fits the command: --output-file where it has one, else a
// redirection.
type outputPathError struct{ value, want string }

func (e *outputPathError) Error() string {
	return fmt.Sprintf("-o %q: -o is the format (%s)", e.value, e.want)
}
