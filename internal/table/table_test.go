package table

import (
	"strings"
	"testing"
)

func TestWidthIgnoresEscapesCountsWideRunes(t *testing.T) {
	for s, want := range map[string]int{
		"P1":                      2,
		"\x1b[1;31mP1\x1b[0m":     2,
		"werkzeug":                8,
		"日本":                      4,
		"\x1b[2mé\x1b[0m":         1,
		"1.26.5→1.26.17, urllib3": 23,
	} {
		if got := Width(s); got != want {
			t.Errorf("Width(%q) = %d, want %d", s, got, want)
		}
	}
}

func TestTruncate(t *testing.T) {
	for _, c := range []struct {
		s    string
		w    int
		want string
	}{
		{"werkzeug", 8, "werkzeug"},
		{"werkzeug", 5, "werk…"},
		{"werkzeug", 1, "…"},
		{"werkzeug", 0, ""},
		{"日本語", 4, "日…"},
		{"\x1b[33mknown exploited\x1b[0m", 6, "\x1b[33mknown…\x1b[0m"},
	} {
		if got := Truncate(c.s, c.w); got != c.want {
			t.Errorf("Truncate(%q, %d) = %q, want %q", c.s, c.w, got, c.want)
		}
		if Width(Truncate(c.s, c.w)) > c.w {
			t.Errorf("Truncate(%q, %d) is %d wide", c.s, c.w, Width(Truncate(c.s, c.w)))
		}
	}
}

func TestTruncateLeft(t *testing.T) {
	if got := TruncateLeft("etcd/client/pkg/go.mod", 12); got != "…/pkg/go.mod" {
		t.Errorf("TruncateLeft = %q", got)
	}
	if got := TruncateLeft("go.mod", 12); got != "go.mod" {
		t.Errorf("TruncateLeft = %q", got)
	}
}

// TestColumnsAlignWithColour: a coloured cell pads to its display width,
// so the columns after it start where their headers do.
func TestColumnsAlignWithColour(t *testing.T) {
	tb := New(Column{Name: "PRIORITY"}, Column{Name: "PACKAGE"}, Column{Name: "N", Right: true})
	tb.Row("\x1b[1;31mP1\x1b[0m", "werkzeug", "3")
	tb.Row("P4", "日本", "12")
	var b strings.Builder
	if err := tb.Write(&b, 0); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(Strip(b.String()), "\n"), "\n")
	want := []string{
		"PRIORITY  PACKAGE    N",
		"P1        werkzeug   3",
		"P4        日本      12",
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
}

// TestFit: the column that shrinks first gives way down to its minimum,
// then the next; columns that do not shrink keep their width; cut cells
// end in an ellipsis; with no width the table is as wide as it is.
func TestFit(t *testing.T) {
	tb := New(
		Column{Name: "ID"},
		Column{Name: "PACKAGE", Shrink: 1, Min: 6},
		Column{Name: "REASON", Shrink: 2, Min: 8},
	)
	tb.Row("1", "github.com/docker/docker", "known exploited (CISA KEV since 2021-11-03)")
	natural := tb.Widths(0)
	if natural[1] != 24 || natural[2] != 43 {
		t.Fatalf("natural widths %v", natural)
	}
	// 2+2+24+2+43 = 73: fitting to 50 cuts REASON by 23 only.
	if ws := tb.Widths(50); ws[0] != 2 || ws[1] != 24 || ws[2] != 20 {
		t.Errorf("widths at 50: %v", ws)
	}
	// At 30 REASON is at its minimum 8; PACKAGE gives the rest: 30-2-2-2-8 = 16.
	if ws := tb.Widths(30); ws[1] != 16 || ws[2] != 8 {
		t.Errorf("widths at 30: %v", ws)
	}
	// Below every minimum the table overflows rather than cut further.
	if ws := tb.Widths(10); ws[0] != 2 || ws[1] != 6 || ws[2] != 8 {
		t.Errorf("widths at 10: %v", ws)
	}
	var b strings.Builder
	tb.Write(&b, 30)
	for i, l := range strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n") {
		if Width(l) > 30 {
			t.Errorf("line %d is %d wide: %q", i, Width(l), l)
		}
	}
	if !strings.Contains(b.String(), "github.com/dock…  known e…") {
		t.Errorf("no ellipsis cut:\n%s", b.String())
	}
}

func TestMoreAndPlural(t *testing.T) {
	if got := More(2443, 10); got != "… and 2,433 more; --limit 0 for all" {
		t.Errorf("More = %q", got)
	}
	if got := More(3, 3); got != "" {
		t.Errorf("More(3, 3) = %q", got)
	}
	if Limit(10, 0) != 10 || Limit(10, 3) != 3 || Limit(2, 3) != 2 {
		t.Error("Limit")
	}
	for _, c := range []struct {
		got, want string
	}{
		{Plural(1, "host"), "1 host"},
		{Plural(0, "host"), "0 hosts"},
		{Plural(1234567, "input"), "1,234,567 inputs"},
		{Plural(2, "vulnerability", "vulnerabilities"), "2 vulnerabilities"},
		{Plural(-1200, "x"), "-1,200 xs"},
	} {
		if c.got != c.want {
			t.Errorf("%q, want %q", c.got, c.want)
		}
	}
}

// TestDrop: with every column at its minimum and the table still too
// wide, the columns that may be dropped are left out, highest Drop first,
// header and rows alike; without a width nothing is dropped.
func TestDrop(t *testing.T) {
	tb := New(Column{Name: "HOSTNAME"}, Column{Name: "ID", Drop: 1}, Column{Name: "OS"}, Column{Name: "AGENT", Drop: 2}, Column{Name: "LABELS", Shrink: 1, Min: 6})
	tb.Row("web-1", "b0f2a7731af876d5e89a2f74", "Debian:12", "v1.4.0", "env=prod,team=payments")
	if ws := tb.Widths(0); ws[1] != 24 || ws[3] != 6 {
		t.Fatalf("natural: %v", ws)
	}
	// 8+2+24+2+9+2+6+2+6 = 61 at the minimum: at 55 AGENT goes, and
	// LABELS takes what is left: 55-8-2-24-2-9-2 = 8.
	if ws := tb.Widths(55); ws[3] != Dropped || ws[1] != 24 || ws[4] != 8 {
		t.Errorf("at 55: %v", ws)
	}
	// At 40 ID goes too: LABELS grows back to what fits, 40-8-2-9-2 = 19.
	var b strings.Builder
	tb.Write(&b, 40)
	want := "HOSTNAME  OS         LABELS\nweb-1     Debian:12  env=prod,team=paym…\n"
	if b.String() != want {
		t.Errorf("at 40:\n%q\nwant\n%q", b.String(), want)
	}
}
