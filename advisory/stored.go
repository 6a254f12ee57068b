package advisory

import (
	"encoding/json"
	"time"
	"unicode/utf8"
)

// DecodeStored decodes an advisory as the stores keep it: the JSON that
// encoding/json writes for Advisory. The result is what json.Unmarshal
// gives, without its reflection: profiles put json.Unmarshal of stored
// advisories at 12% of a one-lockfile scan's CPU (the look-up of
// saleor/poetry.lock's 248 advisories went from 5.6 to 3.9 ms). Anything
// outside the shape json.Marshal writes (an unknown or differently cased
// field, a number, a null string, a malformed document) is decoded by
// json.Unmarshal instead, so the result never differs.
func DecodeStored(doc []byte) (*Advisory, error) {
	d := storedDecoder{b: doc}
	if a := d.advisory(); !d.failed {
		d.ws()
		if d.i == len(d.b) {
			return a, nil
		}
	}
	a := &Advisory{}
	if err := json.Unmarshal(doc, a); err != nil {
		return nil, err
	}
	return a, nil
}

// storedDecoder is a recursive-descent decoder of Advisory's JSON form.
// On anything unexpected it sets failed and the caller falls back.
type storedDecoder struct {
	b      []byte
	i      int
	failed bool
}

func (d *storedDecoder) fail() { d.failed = true }

func (d *storedDecoder) ws() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// peek returns the next non-space byte, 0 at the end.
func (d *storedDecoder) peek() byte {
	d.ws()
	if d.i >= len(d.b) {
		return 0
	}
	return d.b[d.i]
}

func (d *storedDecoder) expect(c byte) {
	if d.peek() != c {
		d.fail()
		return
	}
	d.i++
}

// null consumes a null literal if one is next.
func (d *storedDecoder) null() bool {
	if d.peek() == 'n' && len(d.b)-d.i >= 4 && string(d.b[d.i:d.i+4]) == "null" {
		d.i += 4
		return true
	}
	return false
}

// rawString returns the next string token with its quotes.
func (d *storedDecoder) rawString() ([]byte, bool) {
	if d.peek() != '"' {
		d.fail()
		return nil, false
	}
	start := d.i
	plain := true
	for j := d.i + 1; j < len(d.b); j++ {
		switch c := d.b[j]; {
		case c == '\\':
			plain = false
			j++
		case c == '"':
			d.i = j + 1
			return d.b[start:d.i], plain
		case c < 0x20:
			d.fail() // invalid JSON: let encoding/json say so
			return nil, false
		case c >= utf8.RuneSelf:
			plain = false // invalid UTF-8 is replaced by encoding/json
		}
	}
	d.fail()
	return nil, false
}

func (d *storedDecoder) str() string {
	raw, plain := d.rawString()
	if d.failed {
		return ""
	}
	inner := raw[1 : len(raw)-1]
	if plain || (utf8.Valid(inner) && !hasByte(inner, '\\')) {
		return string(inner)
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		d.fail()
	}
	return s
}

func hasByte(b []byte, c byte) bool {
	for _, x := range b {
		if x == c {
			return true
		}
	}
	return false
}

func (d *storedDecoder) time() time.Time {
	var t time.Time
	if d.null() {
		return t
	}
	raw, _ := d.rawString()
	if d.failed {
		return t
	}
	if err := t.UnmarshalJSON(raw); err != nil {
		d.fail()
	}
	return t
}

// object calls field for every key of an object; null leaves it unset.
func (d *storedDecoder) object(field func(key string)) {
	if d.null() {
		return
	}
	d.expect('{')
	if d.peek() == '}' {
		d.i++
		return
	}
	for !d.failed {
		key := d.str()
		d.expect(':')
		if d.failed {
			return
		}
		field(key)
		switch d.peek() {
		case ',':
			d.i++
		case '}':
			d.i++
			return
		default:
			d.fail()
		}
	}
}

// array calls elem for every element; it reports false for null (the
// slice stays nil, as with encoding/json) and true for an array, even an
// empty one (encoding/json makes that an empty, non-nil slice).
func (d *storedDecoder) array(elem func()) bool {
	if d.null() {
		return false
	}
	d.expect('[')
	if d.peek() == ']' {
		d.i++
		return true
	}
	for !d.failed {
		elem()
		switch d.peek() {
		case ',':
			d.i++
		case ']':
			d.i++
			return true
		default:
			d.fail()
		}
	}
	return true
}

func (d *storedDecoder) strings() []string {
	var out []string
	if d.array(func() { out = append(out, d.str()) }) && out == nil {
		out = []string{}
	}
	return out
}

func (d *storedDecoder) severities() []Severity {
	var out []Severity
	ok := d.array(func() {
		var s Severity
		d.object(func(k string) {
			switch k {
			case "type":
				s.Type = d.str()
			case "score":
				s.Score = d.str()
			default:
				d.fail()
			}
		})
		out = append(out, s)
	})
	if ok && out == nil {
		out = []Severity{}
	}
	return out
}

func (d *storedDecoder) events() []Event {
	var out []Event
	ok := d.array(func() {
		var e Event
		d.object(func(k string) {
			switch k {
			case "introduced":
				e.Introduced = d.str()
			case "fixed":
				e.Fixed = d.str()
			case "last_affected":
				e.LastAffected = d.str()
			case "limit":
				e.Limit = d.str()
			default:
				d.fail()
			}
		})
		out = append(out, e)
	})
	if ok && out == nil {
		out = []Event{}
	}
	return out
}

func (d *storedDecoder) ranges() []Range {
	var out []Range
	ok := d.array(func() {
		var r Range
		d.object(func(k string) {
			switch k {
			case "type":
				r.Type = d.str()
			case "events":
				r.Events = d.events()
			default:
				d.fail()
			}
		})
		out = append(out, r)
	})
	if ok && out == nil {
		out = []Range{}
	}
	return out
}

func (d *storedDecoder) affected() []Affected {
	var out []Affected
	ok := d.array(func() {
		var a Affected
		d.object(func(k string) {
			switch k {
			case "ecosystem":
				a.Ecosystem = d.str()
			case "name":
				a.Name = d.str()
			case "ranges":
				a.Ranges = d.ranges()
			case "versions":
				a.Versions = d.strings()
			case "severity":
				a.Severity = d.severities()
			case "severity_word":
				a.SeverityWord = d.str()
			default:
				d.fail()
			}
		})
		out = append(out, a)
	})
	if ok && out == nil {
		out = []Affected{}
	}
	return out
}

func (d *storedDecoder) advisory() *Advisory {
	a := &Advisory{}
	if d.peek() != '{' {
		d.fail() // null or another value: encoding/json decides
		return a
	}
	d.object(func(k string) {
		switch k {
		case "id":
			a.ID = d.str()
		case "aliases":
			a.Aliases = d.strings()
		case "modified":
			a.Modified = d.time()
		case "published":
			a.Published = d.time()
		case "withdrawn":
			a.Withdrawn = d.time()
		case "summary":
			a.Summary = d.str()
		case "severity":
			a.Severity = d.severities()
		case "severity_word":
			a.SeverityWord = d.str()
		case "affected":
			a.Affected = d.affected()
		case "url":
			a.URL = d.str()
		default:
			d.fail()
		}
	})
	return a
}
