// Package jsontest holds checks of JSON documents that the tests of
// several packages share.
package jsontest

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// NoZeroTime fails on any string of the JSON document b that is the zero
// time: a time that is not there is omitted, never 0001-01-01. A document
// without any string fails too (it checked nothing).
func NoZeroTime(t testing.TB, what string, b []byte) {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%s: %v: %s", what, err, b)
	}
	n := 0
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, c := range x {
				walk(path+"."+k, c)
			}
		case []any:
			for i, c := range x {
				walk(fmt.Sprintf("%s[%d]", path, i), c)
			}
		case string:
			n++
			if strings.HasPrefix(x, "0001-01-01") {
				t.Errorf("%s: %s is %q, the zero time", what, path, x)
			}
		}
	}
	walk("", v)
	if n == 0 {
		t.Errorf("%s: no string in %s", what, b)
	}
}
