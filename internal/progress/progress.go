// Package progress tells a person what long work is doing. On a terminal a
// stage redraws one line — what it does, count/total, rate, and what it
// needs (the network, for instance) — at most a few times a second; off a
// terminal (a log, a pipe, CI) a stage writes one line when it starts and
// one when it ends, never a redraw.
package progress

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// Reporter writes stages to one writer.
type Reporter struct {
	w   io.Writer
	tty bool
	now func() time.Time
	mu  sync.Mutex
	// line is the progress line on the terminal now, "" when none.
	line string
}

// Write writes p (whole lines: a logger's) to the reporter's writer: on a
// terminal the progress line is cleared first and drawn again after, so
// the two do not mix.
func (r *Reporter) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.line == "" {
		return r.w.Write(p)
	}
	fmt.Fprint(r.w, "\r\x1b[K")
	n, err := r.w.Write(p)
	fmt.Fprintf(r.w, "\r\x1b[K%s", r.line)
	return n, err
}

// New reports to w; tty says whether w is a terminal (lines are redrawn).
func New(w io.Writer, tty bool) *Reporter {
	return &Reporter{w: w, tty: tty, now: time.Now}
}

// Stage is one piece of long work.
type Stage struct {
	r           *Reporter
	what, needs string
	start, last time.Time
	done, total int
	drawn       bool
	ended       bool
}

// Start begins a stage: what it does ("reading changelogs") and, when it
// matters to the person waiting, what it needs ("needs the Debian mirror
// deb.debian.org"; "" for nothing).
func (r *Reporter) Start(what, needs string) *Stage {
	s := &Stage{r: r, what: what, needs: needs, start: r.now()}
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.tty {
		fmt.Fprintf(r.w, "%s …%s\n", what, s.suffix())
		return s
	}
	line := what + " …"
	if needs != "" {
		line += " — " + needs
	}
	s.drawn, s.last, r.line = true, s.start, line
	fmt.Fprintf(r.w, "\r\x1b[K%s", line)
	return s
}

func (s *Stage) suffix() string {
	if s.needs == "" {
		return ""
	}
	return " (" + s.needs + ")"
}

// Update sets the count: done of total. On a terminal the line is redrawn
// (at most ten times a second, and always at the last item); off one
// nothing is written.
func (s *Stage) Update(done, total int) {
	r := s.r
	r.mu.Lock()
	defer r.mu.Unlock()
	prev := s.done
	s.done, s.total = done, total
	if !r.tty || s.ended {
		return
	}
	now := r.now()
	if prev > 0 && now.Sub(s.last) < 100*time.Millisecond && done != total {
		return
	}
	s.last, s.drawn = now, true
	line := fmt.Sprintf("%s %d/%d", s.what, done, total)
	if el := now.Sub(s.start).Seconds(); el > 0 && done > 0 {
		line += fmt.Sprintf(" (%.1f/s)", float64(done)/el)
	}
	if s.needs != "" {
		line += " — " + s.needs
	}
	r.line = line
	fmt.Fprintf(r.w, "\r\x1b[K%s", line)
}

// End finishes the stage with a one-line outcome ("57 read, 0 failed"),
// with the time it took.
func (s *Stage) End(outcome string) {
	r := s.r
	r.mu.Lock()
	defer r.mu.Unlock()
	if s.ended {
		return
	}
	s.ended = true
	if r.tty && s.drawn {
		fmt.Fprint(r.w, "\r\x1b[K")
		r.line = ""
	}
	fmt.Fprintf(r.w, "%s: %s (%s)\n", s.what, outcome, r.now().Sub(s.start).Round(100*time.Millisecond))
}
