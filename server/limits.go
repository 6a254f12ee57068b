package server

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/patchbay/patchbay/api"
)

// The server's memory is bounded per server, not per request: a request
// body past LargeBody bytes (after decompression) needs one of LargeBodies
// slots before more of it is read, and one credential holds at most one
// slot at a time. A decoded body costs a few times its size (the JSON
// decoder keeps the whole value, then the values built from it), so the
// bodies being read at once cost at most about
// LargeBodies × MaxBody × (that factor) plus the small ones.

// bodyGate hands out the slots of large bodies.
type bodyGate struct {
	large   int64
	slots   chan struct{}
	wait    time.Duration
	mu      sync.Mutex
	holders map[string]bool // credentials holding a slot
}

func newBodyGate(large int64, slots int, wait time.Duration) *bodyGate {
	return &bodyGate{large: large, slots: make(chan struct{}, slots), wait: wait, holders: map[string]bool{}}
}

// acquire takes a slot for holder, waiting up to the gate's wait: a
// credential that already holds one is told to wait (429), a full gate
// past the wait is busy (503).
func (g *bodyGate) acquire(ctx context.Context, holder string) error {
	g.mu.Lock()
	if g.holders[holder] {
		g.mu.Unlock()
		return &httpError{http.StatusTooManyRequests, api.Error{Error: fmt.Sprintf("this credential is already sending a request body over %d bytes; send one at a time", g.large), Code: api.CodeTooManyRequests}}
	}
	g.holders[holder] = true
	g.mu.Unlock()
	t := time.NewTimer(g.wait)
	defer t.Stop()
	select {
	case g.slots <- struct{}{}:
		return nil
	case <-t.C:
	case <-ctx.Done():
	}
	g.mu.Lock()
	delete(g.holders, holder)
	g.mu.Unlock()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return &httpError{http.StatusServiceUnavailable, api.Error{Error: fmt.Sprintf("the server is reading %d large request bodies already; try again", cap(g.slots)), Code: api.CodeUnavailable}}
}

func (g *bodyGate) release(holder string) {
	<-g.slots
	g.mu.Lock()
	delete(g.holders, holder)
	g.mu.Unlock()
}

// gatedBody is a request body that takes a slot of the gate once more
// than the gate's large size has been read, and lifts the connection's
// body read deadline once the body is read to its end.
type gatedBody struct {
	r      io.ReadCloser
	ctx    context.Context
	g      *bodyGate
	holder string
	n      int64
	held   bool
	eof    bool
	err    error
	rc     *http.ResponseController
}

func (b *gatedBody) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if !b.held && b.n+int64(len(p)) > b.g.large {
		// Read up to the threshold without a slot, then take one.
		if room := b.g.large - b.n; room > 0 {
			p = p[:room]
		} else {
			if err := b.g.acquire(b.ctx, b.holder); err != nil {
				b.err = err
				return 0, err
			}
			b.held = true
		}
	}
	n, err := b.r.Read(p)
	b.n += int64(n)
	if err == io.EOF {
		b.eof = true
		if b.rc != nil {
			_ = b.rc.SetReadDeadline(time.Time{})
		}
	}
	return n, err
}

func (b *gatedBody) Close() error { return b.r.Close() }

// reserve takes the slot now when a body of n bytes will need one.
func (b *gatedBody) reserve(n int64) error {
	if b.held || n <= b.g.large {
		return nil
	}
	if err := b.g.acquire(b.ctx, b.holder); err != nil {
		b.err = err
		return err
	}
	b.held = true
	return nil
}

// done gives back the slot, if one was taken.
func (b *gatedBody) done() {
	if b.held {
		b.g.release(b.holder)
		b.held = false
	}
}

// LimitListener limits the connections open at once from one client
// address: past perClient, new connections from that address are closed
// at once. perClient 0 is no limit.
func LimitListener(l net.Listener, perClient int) net.Listener {
	if perClient <= 0 {
		return l
	}
	return &limitListener{Listener: l, max: perClient, open: map[string]int{}}
}

type limitListener struct {
	net.Listener
	max  int
	mu   sync.Mutex
	open map[string]int
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		host := c.RemoteAddr().String()
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		l.mu.Lock()
		if l.open[host] >= l.max {
			l.mu.Unlock()
			c.Close()
			continue
		}
		l.open[host]++
		l.mu.Unlock()
		return &limitConn{Conn: c, l: l, host: host}, nil
	}
}

type limitConn struct {
	net.Conn
	l    *limitListener
	host string
	once sync.Once
}

func (c *limitConn) Close() error {
	c.once.Do(func() {
		c.l.mu.Lock()
		if c.l.open[c.host]--; c.l.open[c.host] <= 0 {
			delete(c.l.open, c.host)
		}
		c.l.mu.Unlock()
	})
	return c.Conn.Close()
}
