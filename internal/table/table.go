// Package table writes the CLI's tables: columns padded to their display
// width (ANSI colour codes count for nothing, wide runes for two), fitted
// to a width by cutting the columns that may shrink, in the order they
// give way, with an ellipsis.
package table

import (
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/mattn/go-runewidth"
)

// Column describes one column of a table.
type Column struct {
	Name string
	// Min is the narrowest the column is cut to when the table is fitted
	// (at least the header's width or 1, whichever is smaller when Min is
	// 0: a column is never cut below what its header shows, unless Min
	// says so).
	Min int
	// Shrink orders the columns that give way when the table is too wide:
	// the highest first, down to its Min, then the next. 0: the column is
	// never cut (identifiers, priorities, counts).
	Shrink int
	// Right aligns the column to the right (counts).
	Right bool
	// CutLeft cuts the column's cells at their start ("…/pkg/go.mod"):
	// for paths, whose end says most.
	CutLeft bool
	// Drop orders the columns left out when the table is still too wide
	// with every column cut to its minimum: the highest first (kubectl's
	// narrow view; --wide shows them). 0: the column is always shown.
	Drop int
}

// gap is the space between two columns.
const gap = 2

// Table is rows of cells under a header.
type Table struct {
	cols []Column
	rows [][]string
	// Indent is written before every line.
	Indent string
}

// New returns an empty table of cols.
func New(cols ...Column) *Table { return &Table{cols: cols} }

// Row adds a row; missing cells are empty, extra ones dropped.
func (t *Table) Row(cells ...string) {
	r := make([]string, len(t.cols))
	copy(r, cells)
	t.rows = append(t.rows, r)
}

// Len is the number of rows.
func (t *Table) Len() int { return len(t.rows) }

// Dropped is the width Widths gives a column left out.
const Dropped = -1

// Widths are the widths of the columns when the table is fitted to width
// (0 or less: no limit, every column as wide as its widest cell); a
// column left out is Dropped.
func (t *Table) Widths(width int) []int {
	natural := make([]int, len(t.cols))
	for i, c := range t.cols {
		natural[i] = Width(c.Name)
	}
	for _, r := range t.rows {
		for i, s := range r {
			natural[i] = max(natural[i], Width(s))
		}
	}
	if width <= 0 {
		return natural
	}
	dropped := make([]bool, len(t.cols))
	for {
		ws, ok := t.fit(natural, dropped, width)
		if ok {
			return ws
		}
		// Every column at its minimum: leave out the next column that
		// may be dropped and fit again, else the table overflows.
		drop := -1
		for i, c := range t.cols {
			if c.Drop > 0 && !dropped[i] && (drop < 0 || c.Drop > t.cols[drop].Drop) {
				drop = i
			}
		}
		if drop < 0 {
			return ws
		}
		dropped[drop] = true
	}
}

// fit cuts the columns that may shrink, in their order, until the table
// of the columns not dropped is width wide; ok is false when it is still
// wider with all of them at their minimum.
func (t *Table) fit(natural []int, dropped []bool, width int) (ws []int, ok bool) {
	ws = make([]int, len(natural))
	total, shown := Width(t.Indent), 0
	for i, w := range natural {
		if dropped[i] {
			ws[i] = Dropped
			continue
		}
		ws[i] = w
		total += w
		shown++
	}
	total += gap * max(shown-1, 0)
	for total > width {
		// The column that gives way next: the highest Shrink still above
		// its minimum.
		best := -1
		for i, c := range t.cols {
			if c.Shrink > 0 && !dropped[i] && ws[i] > t.min(i) && (best < 0 || c.Shrink > t.cols[best].Shrink) {
				best = i
			}
		}
		if best < 0 {
			return ws, false
		}
		cut := min(total-width, ws[best]-t.min(best))
		ws[best] -= cut
		total -= cut
	}
	return ws, true
}

func (t *Table) min(i int) int {
	c := t.cols[i]
	if c.Min > 0 {
		return c.Min
	}
	return max(1, Width(c.Name))
}

// Write writes the header and the rows fitted to width (0 or less: no
// limit). The last column is not padded.
func (t *Table) Write(w io.Writer, width int) error {
	ws := t.Widths(width)
	var b strings.Builder
	line := func(cells []string) {
		b.WriteString(t.Indent)
		last := len(cells) - 1
		for last > 0 && (ws[last] == Dropped || (cells[last] == "" && !t.cols[last].Right)) {
			last--
		}
		first := true
		for i := 0; i <= last; i++ {
			if ws[i] == Dropped {
				continue
			}
			if !first {
				b.WriteString(strings.Repeat(" ", gap))
			}
			first = false
			s := Truncate(cells[i], ws[i])
			if t.cols[i].CutLeft {
				s = TruncateLeft(cells[i], ws[i])
			}
			pad := strings.Repeat(" ", ws[i]-Width(s))
			switch {
			case t.cols[i].Right:
				b.WriteString(pad + s)
			case i == last:
				b.WriteString(s)
			default:
				b.WriteString(s + pad)
			}
		}
		b.WriteByte('\n')
	}
	head := make([]string, len(t.cols))
	for i, c := range t.cols {
		head[i] = c.Name
	}
	line(head)
	for _, r := range t.rows {
		line(r)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// Width is the display width of s: ANSI escape sequences take none, East
// Asian wide runes two.
func Width(s string) int {
	if !strings.Contains(s, "\x1b") {
		return runewidth.StringWidth(s)
	}
	return runewidth.StringWidth(Strip(s))
}

// Strip removes the ANSI escape sequences (CSI … final byte) of s.
func Strip(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		if n := escapeLen(s[i:]); n > 0 {
			i += n
			continue
		}
		b.WriteByte(s[i])
		i++
	}
	return b.String()
}

// escapeLen is the length of the escape sequence s starts with, or 0.
func escapeLen(s string) int {
	if len(s) < 2 || s[0] != '\x1b' || s[1] != '[' {
		return 0
	}
	for j := 2; j < len(s); j++ {
		if s[j] >= 0x40 && s[j] <= 0x7e {
			return j + 1
		}
	}
	return len(s)
}

const ellipsis = "…"

// Truncate cuts s to at most w display columns, ending in an ellipsis when
// it cut anything. Escape sequences are kept, and a reset added after a
// cut one so no colour runs on.
func Truncate(s string, w int) string {
	if Width(s) <= w {
		return s
	}
	if w <= 0 {
		return ""
	}
	var b strings.Builder
	used, escaped := 0, false
	for i := 0; i < len(s); {
		if n := escapeLen(s[i:]); n > 0 {
			b.WriteString(s[i : i+n])
			escaped = true
			i += n
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		rw := runewidth.RuneWidth(r)
		if used+rw > w-1 {
			break
		}
		b.WriteString(s[i : i+size])
		used += rw
		i += size
	}
	b.WriteString(ellipsis)
	if escaped {
		b.WriteString("\x1b[0m")
	}
	return b.String()
}

// TruncateLeft cuts s to at most w display columns from the left,
// starting with an ellipsis when it cut anything. Escape sequences are
// dropped from a cut cell.
func TruncateLeft(s string, w int) string {
	if Width(s) <= w {
		return s
	}
	if w <= 0 {
		return ""
	}
	rs := []rune(Strip(s))
	used, i := 0, len(rs)
	for i > 0 && used+runewidth.RuneWidth(rs[i-1]) <= w-1 {
		i--
		used += runewidth.RuneWidth(rs[i])
	}
	return ellipsis + string(rs[i:])
}

// Limit is how many of n rows a list with --limit limit shows (0: all).
func Limit(n, limit int) int {
	if limit <= 0 || limit >= n {
		return n
	}
	return limit
}

// More is the footer of a list cut by --limit: "… and 2,433 more; --limit
// 0 for all", or "" when nothing was cut.
func More(n, shown int) string {
	if shown >= n {
		return ""
	}
	return "… and " + Thousands(n-shown) + " more; --limit 0 for all"
}

// Thousands writes n with comma separators: 2,433.
func Thousands(n int) string {
	s := strings.TrimPrefix(strconv.Itoa(n), "-")
	var b strings.Builder
	if n < 0 {
		b.WriteByte('-')
	}
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// Plural is "1 host", "2 hosts": n and the word, with an s unless n is 1
// (or plural when the word's plural is not word+"s").
func Plural(n int, word string, plural ...string) string {
	if n == 1 {
		return Thousands(n) + " " + word
	}
	if len(plural) > 0 {
		return Thousands(n) + " " + plural[0]
	}
	return Thousands(n) + " " + word + "s"
}
