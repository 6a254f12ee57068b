package progress

import (
	"strings"
	"testing"
	"time"
)

// clock advances by step at every reading.
func clock(step time.Duration) func() time.Time {
	t := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	return func() time.Time {
		t = t.Add(step)
		return t
	}
}

// TestOffTerminalOneLinePerStageStartAndEnd: off a terminal, updates
// write nothing; a stage is its start line and its end line.
func TestOffTerminalOneLinePerStageStartAndEnd(t *testing.T) {
	var b strings.Builder
	r := New(&b, false)
	r.now = clock(time.Second)
	s := r.Start("reading changelogs", "needs the Debian mirror deb.debian.org")
	for i := 0; i <= 57; i++ {
		s.Update(i, 57)
	}
	s.End("57 read")
	s.End("twice")
	r.Start("checking in this host", "").End("done")
	want := "reading changelogs … (needs the Debian mirror deb.debian.org)\n" +
		"reading changelogs: 57 read (1s)\n" +
		"checking in this host …\n" +
		"checking in this host: done (1s)\n"
	if b.String() != want {
		t.Errorf("got\n%q\nwant\n%q", b.String(), want)
	}
	if strings.Contains(b.String(), "\r") {
		t.Error("a redraw off a terminal")
	}
}

// TestTerminalRedrawsOneLine: on a terminal one line is drawn at the
// start and redrawn with the count, the rate and what the stage needs, no
// more than ten times a second, and cleared for the outcome.
func TestTerminalRedrawsOneLine(t *testing.T) {
	var b strings.Builder
	r := New(&b, true)
	r.now = clock(10 * time.Millisecond)
	s := r.Start("reading changelogs", "needs the Debian mirror deb.debian.org")
	for i := 0; i <= 20; i++ {
		s.Update(i, 20)
	}
	s.End("20 read")
	out := b.String()
	if !strings.HasPrefix(out, "\r\x1b[Kreading changelogs … — needs the Debian mirror deb.debian.org\r") {
		t.Errorf("the start is not drawn at once: %q", out)
	}
	draws := strings.Count(out, "\r\x1b[K")
	// 21 updates 10 ms apart: the first, about one per 100 ms, the last;
	// and the clear before the outcome.
	if draws < 3 || draws > 6 {
		t.Errorf("%d redraws in %q", draws, out)
	}
	if !strings.Contains(out, "reading changelogs 20/20 (") || !strings.Contains(out, "/s) — needs the Debian mirror deb.debian.org") {
		t.Errorf("no count, rate and need in %q", out)
	}
	if !strings.HasSuffix(out, "\r\x1b[Kreading changelogs: 20 read (200ms)\n") {
		t.Errorf("outcome line: %q", out)
	}
	if strings.Count(out, "\n") != 1 {
		t.Errorf("more than the outcome's line: %q", out)
	}
}

// TestLogLinesDoNotMixWithTheProgressLine: a log line written through the
// reporter while a stage is drawn clears the line, and the line is drawn
// again after it.
func TestLogLinesDoNotMixWithTheProgressLine(t *testing.T) {
	var b strings.Builder
	r := New(&b, true)
	r.now = clock(time.Second)
	r.Write([]byte("level=INFO msg=before\n"))
	s := r.Start("reading changelogs", "")
	s.Update(1, 3)
	r.Write([]byte("level=INFO msg=during\n"))
	s.End("3 read")
	r.Write([]byte("level=INFO msg=after\n"))
	want := "level=INFO msg=before\n" +
		"\r\x1b[Kreading changelogs …" +
		"\r\x1b[Kreading changelogs 1/3 (1.0/s)" +
		"\r\x1b[Klevel=INFO msg=during\n\r\x1b[Kreading changelogs 1/3 (1.0/s)" +
		"\r\x1b[Kreading changelogs: 3 read (2s)\n" +
		"level=INFO msg=after\n"
	if b.String() != want {
		t.Errorf("got\n%q\nwant\n%q", b.String(), want)
	}
}
