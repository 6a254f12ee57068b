package duration

import (
	"testing"
	"time"
)

func TestParseAndString(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"7d": 7 * 24 * time.Hour, "2w": 14 * 24 * time.Hour, "36h": 36 * time.Hour, "90m": 90 * time.Minute, " 1d ": 24 * time.Hour, "0s": 0,
	} {
		d, err := Parse(in)
		if err != nil || time.Duration(d) != want {
			t.Errorf("Parse(%q) = %v, %v; want %v", in, time.Duration(d), err, want)
		}
	}
	for _, bad := range []string{"", "d", "-1d", "1.5d", "-3h", "soon"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
	for d, want := range map[Duration]string{Duration(48 * time.Hour): "2d", Duration(36 * time.Hour): "36h0m0s", 0: "0s"} {
		if got := d.String(); got != want {
			t.Errorf("%v.String() = %q, want %q", time.Duration(d), got, want)
		}
	}
	var d Duration
	if err := d.UnmarshalText([]byte("3d")); err != nil || d != Duration(72*time.Hour) {
		t.Errorf("UnmarshalText(3d) = %v, %v", time.Duration(d), err)
	}
	if b, _ := Duration(72 * time.Hour).MarshalText(); string(b) != "3d" {
		t.Errorf("MarshalText = %q", b)
	}
}
