package jsontest

import "testing"

type recorder struct {
	testing.TB
	errors int
}

func (r *recorder) Helper()               {}
func (r *recorder) Errorf(string, ...any) { r.errors++ }
func (r *recorder) Fatalf(string, ...any) { r.errors++ }

func TestNoZeroTime(t *testing.T) {
	for doc, want := range map[string]int{
		`{"a": {"due": "2026-12-01T00:00:00Z"}, "b": ["x"]}`:                 0,
		`{"a": [{"remediated_at": "0001-01-01T00:00:00Z"}], "kev_due": "x"}`: 1,
		`{"n": 1}`: 1, // nothing checked
	} {
		r := &recorder{TB: t}
		NoZeroTime(r, "doc", []byte(doc))
		if r.errors != want {
			t.Errorf("%s: %d errors, want %d", doc, r.errors, want)
		}
	}
}
