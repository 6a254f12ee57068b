package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Text the API accepts is valid UTF-8 without NUL bytes, in path
// parameters, query parameters and JSON strings alike: one rule for both
// stores (PostgreSQL's text refuses both, SQLite's keeps them), checked
// before a handler sees the request.

// textProblem says what makes s unfit to store, or "".
func textProblem(s string) string {
	switch {
	case !utf8.ValidString(s):
		return "not valid UTF-8"
	case strings.IndexByte(s, 0) >= 0:
		return "contains a NUL byte"
	}
	return ""
}

// wildcards lists the names of a route pattern's wildcards:
// /api/v1/hosts/{id} → [id].
func wildcards(pattern string) []string {
	var out []string
	for rest := pattern; ; {
		i := strings.IndexByte(rest, '{')
		if i < 0 {
			return out
		}
		j := strings.IndexByte(rest[i:], '}')
		if j < 0 {
			return out
		}
		name := strings.TrimSuffix(rest[i+1:i+j], "...")
		if name != "$" {
			out = append(out, name)
		}
		rest = rest[i+j+1:]
	}
}

// checkParams refuses a request whose path or query parameters are not
// text: a 400 naming the parameter (path.id, query.host).
func checkParams(names []string, r *http.Request) error {
	for _, n := range names {
		if p := textProblem(r.PathValue(n)); p != "" {
			return errBadRequest(fmt.Sprintf("path parameter %s %q: %s", n, r.PathValue(n), p), "path."+n)
		}
	}
	if r.URL.RawQuery == "" {
		return nil
	}
	q := r.URL.Query()
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if p := textProblem(k); p != "" {
			return errBadRequest(fmt.Sprintf("query parameter name %q: %s", k, p), "query")
		}
		for _, v := range q[k] {
			if p := textProblem(v); p != "" {
				return errBadRequest(fmt.Sprintf("query parameter %s %q: %s", k, v, p), "query."+k)
			}
		}
	}
	return nil
}

// nulEscape is how JSON writes a NUL inside a string.
var nulEscape = []byte(`\u0000`)

// checkJSONText refuses a JSON document with a string (a value or an
// object key) that is not valid UTF-8 or holds a NUL: a 400 naming its
// path (facts.hostname, inventory[3].name). encoding/json would replace
// invalid UTF-8 with U+FFFD silently and decode \u0000 to a NUL, so the
// raw bytes are what is checked. A document that is not JSON passes: the
// decoder reports that.
func checkJSONText(b []byte) error {
	if utf8.Valid(b) && !bytes.Contains(b, nulEscape) {
		return nil // the common case: one pass over the bytes
	}
	type frame struct {
		object  bool
		wantKey bool
		key     string
		index   int
	}
	var stack []frame
	path := func() string {
		var sb strings.Builder
		for _, f := range stack {
			if f.object && f.wantKey {
				break // at a key: the path is its object's
			}
			if f.object {
				if sb.Len() > 0 {
					sb.WriteByte('.')
				}
				sb.WriteString(f.key)
			} else {
				sb.WriteString("[" + strconv.Itoa(f.index) + "]")
			}
		}
		return sb.String()
	}
	next := func() { // a value of the innermost container is complete
		if n := len(stack); n > 0 {
			if stack[n-1].object {
				stack[n-1].wantKey = true
			} else {
				stack[n-1].index++
			}
		}
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	prev := int64(0)
	for {
		tok, err := dec.Token()
		if err != nil {
			return nil
		}
		cur := dec.InputOffset()
		raw := b[prev:cur]
		prev = cur
		str, isStr := tok.(string)
		problem := ""
		if isStr {
			if !utf8.Valid(raw) {
				problem = "not valid UTF-8"
			} else if strings.IndexByte(str, 0) >= 0 {
				problem = "contains a NUL byte (\\u0000)"
			}
		}
		n := len(stack)
		if n > 0 && stack[n-1].object && stack[n-1].wantKey {
			if d, ok := tok.(json.Delim); ok && d == '}' {
				stack = stack[:n-1]
				next()
				continue
			}
			if problem != "" {
				field := path()
				msg := fmt.Sprintf("key %q: %s", str, problem)
				if field != "" {
					msg = field + ": " + msg
				}
				return errBadRequest(msg, field)
			}
			stack[n-1].key, stack[n-1].wantKey = str, false
			continue
		}
		if problem != "" {
			field := path()
			return errBadRequest(fmt.Sprintf("%s: %s", field, problem), field)
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, frame{object: true, wantKey: true})
		case json.Delim('['):
			stack = append(stack, frame{})
		case json.Delim(']'):
			stack = stack[:n-1]
			next()
		default:
			next()
		}
	}
}
