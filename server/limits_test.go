package server_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/patchbay/patchbay/api"
	"github.com/patchbay/patchbay/auth"
	"github.com/patchbay/patchbay/fleet"
	"github.com/patchbay/patchbay/server"
)

// rawRequest writes a request's head and the first bytes of its body on a
// connection of its own, and returns the connection to drip more on.
func rawRequest(t *testing.T, base, method, path, token string, length int, first string) net.Conn {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	head := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n", method, path, u.Host, length)
	if token != "" {
		head += "Authorization: Bearer " + token + "\r\n"
	}
	if _, err := io.WriteString(c, head+"\r\n"+first); err != nil {
		t.Fatal(err)
	}
	return c
}

// readStatus reads a response's status line and headers within d, and
// whether the server closes the connection after it.
func readStatus(t *testing.T, c net.Conn, d time.Duration) (int, bool) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(d))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no answer within %s: %v", d, err)
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Close
}

// A request without a credential is answered at once, however slowly its
// body comes, and its connection closed: the server does not wait for
// the body it will not read.
func TestSlowBodyWithoutTokenAnsweredAtOnce(t *testing.T) {
	f := newFixture(t, "sqlite", nil)
	var conns []net.Conn
	for range 20 {
		conns = append(conns, rawRequest(t, f.url, "POST", api.Prefix+"/agent/checkin", "", 100_000, "{"))
	}
	start := time.Now()
	for _, c := range conns {
		code, closed := readStatus(t, c, 3*time.Second)
		if code != http.StatusUnauthorized || !closed {
			t.Errorf("status %d, connection closed %t; want 401 and close", code, closed)
		}
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("20 answers took %s", d)
	}
}

// A client with a credential has BodyTimeout to send its body.
func TestSlowBodyTimesOut(t *testing.T) {
	f := newFixture(t, "sqlite", func(c *server.Config) { c.BodyTimeout = 500 * time.Millisecond })
	admin := f.api(auth.Admin)
	c := rawRequest(t, f.url, "POST", api.Prefix+"/tokens", admin, 100_000, `{"name": "`)
	stop := make(chan struct{})
	defer close(stop)
	go func() { // a byte a 100 ms, for ever
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
				if _, err := c.Write([]byte("x")); err != nil {
					return
				}
			}
		}
	}()
	start := time.Now()
	code, _ := readStatus(t, c, 5*time.Second)
	if code != http.StatusRequestTimeout {
		t.Errorf("status %d, want 408", code)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("answered after %s; the body timeout is 500ms", d)
	}
}

// largeBody is a check-in body of n bytes whose facts hold one long
// string: decoded in full (and refused after), without being stored.
type largeBody struct {
	prefix, suffix string
	n, off         int
}

func newLargeBody(n int) *largeBody {
	return &largeBody{prefix: `{"facts": {"os_pretty": "`, suffix: `"}, "inventory": 5}`, n: n}
}

func (b *largeBody) Len() int { return b.n }

func (b *largeBody) Read(p []byte) (int, error) {
	if b.off >= b.n {
		return 0, io.EOF
	}
	i := 0
	for ; i < len(p) && b.off < b.n; i, b.off = i+1, b.off+1 {
		switch {
		case b.off < len(b.prefix):
			p[i] = b.prefix[b.off]
		case b.off >= b.n-len(b.suffix):
			p[i] = b.suffix[b.off-(b.n-len(b.suffix))]
		default:
			p[i] = 'x'
		}
	}
	return i, nil
}

// One credential sends one large body at a time: a second one at once is
// told to wait (429); a full server is busy after BodyWait (503).
func TestLargeBodiesOneAtATimePerCredential(t *testing.T) {
	f := newFixture(t, "sqlite", func(c *server.Config) {
		c.LargeBody, c.LargeBodies, c.BodyWait, c.MaxBody = 64<<10, 1, 300*time.Millisecond, 4<<20
	})
	agent := f.enroll(f.token(auth.KindEnrollment, auth.Agent, 2, time.Time{}), fleet.Facts{Hostname: "a", MachineID: "m-a", OSID: "debian", OSVersion: "12"})
	other := f.enroll(f.token(auth.KindEnrollment, auth.Agent, 2, time.Time{}), fleet.Facts{Hostname: "b", MachineID: "m-b", OSID: "debian", OSVersion: "12"})
	// The first holds the only slot: past the threshold, then dripping.
	first := rawRequest(t, f.url, "POST", api.Prefix+"/agent/checkin", agent.Credential, 1<<20, `{"facts": {"os_pretty": "`+strings.Repeat("x", 100<<10))
	time.Sleep(200 * time.Millisecond)
	code, body := f.do("POST", api.Prefix+"/agent/checkin", agent.Credential, newLargeBodyBytes(200<<10))
	if code != http.StatusTooManyRequests || !strings.Contains(string(body), "one at a time") {
		t.Errorf("second large body of the same credential: %d %s", code, body)
	}
	start := time.Now()
	code, body = f.do("POST", api.Prefix+"/agent/checkin", other.Credential, newLargeBodyBytes(200<<10))
	if code != http.StatusServiceUnavailable || time.Since(start) < 250*time.Millisecond {
		t.Errorf("large body while the slot is taken: %d after %s: %s", code, time.Since(start), body)
	}
	// Small bodies pass meanwhile.
	if code, body := f.do("POST", api.Prefix+"/agent/checkin", other.Credential, map[string]any{"facts": map[string]any{"hostname": "b"}}); code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable {
		t.Errorf("small body while the slot is taken: %d %s", code, body)
	}
	first.Close()
	// Once the first is gone, the slot is free again.
	deadline := time.Now().Add(5 * time.Second)
	for {
		code, _ := f.do("POST", api.Prefix+"/agent/checkin", other.Credential, newLargeBodyBytes(200<<10))
		if code == http.StatusBadRequest { // decoded, then refused: inventory is not a list
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("slot not given back: %d", code)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func newLargeBodyBytes(n int) []byte {
	b, _ := io.ReadAll(newLargeBody(n))
	return b
}

// A body declared larger than MaxBody is refused unread.
func TestDeclaredTooLargeRefusedUnread(t *testing.T) {
	f := newFixture(t, "sqlite", nil) // MaxBody 4 MiB
	admin := f.api(auth.Admin)
	c := rawRequest(t, f.url, "POST", api.Prefix+"/tokens", admin, 100<<20, "{")
	code, closed := readStatus(t, c, 3*time.Second)
	if code != http.StatusRequestEntityTooLarge || !closed {
		t.Errorf("status %d, connection closed %t; want 413 and close", code, closed)
	}
}

func TestLimitListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ll := server.LimitListener(ln, 2)
	accepted := make(chan net.Conn, 10)
	go func() {
		for {
			c, err := ll.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	dial := func() net.Conn {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	closedByServer := func(c net.Conn) bool {
		c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		_, err := c.Read(make([]byte, 1))
		return err == io.EOF
	}
	dial()
	dial()
	a1, a2 := <-accepted, <-accepted
	third := dial()
	if !closedByServer(third) {
		t.Error("a third connection from the same address was kept")
	}
	a1.Close()
	time.Sleep(50 * time.Millisecond)
	fourth := dial()
	select {
	case c := <-accepted:
		c.Close()
	case <-time.After(2 * time.Second):
		t.Error("a connection after one closed was not accepted")
	}
	_ = fourth
	a2.Close()
}

// peakRSS is the process's peak resident set since the last reset, in
// bytes; resetPeakRSS starts a new measure (Linux: clear_refs 5).
func peakRSS(t *testing.T) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skip("no /proc/self/status")
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	t.Skip("no VmHWM")
	return 0
}

func resetPeakRSS(t *testing.T) {
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		t.Skipf("cannot reset the peak RSS: %v", err)
	}
}

// Concurrent maximal bodies are read a slot at a time: with one slot,
// eight concurrent 32 MiB check-ins raise the peak RSS by less than eight
// times one body (104–145 MiB here; about 400 MiB with a slot each).
func TestConcurrentMaximalBodiesBoundMemory(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector multiplies memory; .ci/run runs this test without it")
	}
	const maxBody, n = 32 << 20, 8
	f := newFixture(t, "sqlite", func(c *server.Config) {
		c.MaxBody, c.LargeBodies, c.BodyWait = maxBody, 1, time.Minute
	})
	var tokens []string
	for i := range n {
		r := f.enroll(f.token(auth.KindEnrollment, auth.Agent, 1, time.Time{}), fleet.Facts{Hostname: fmt.Sprint("h", i), MachineID: fmt.Sprint("m", i), OSID: "debian", OSVersion: "12"})
		tokens = append(tokens, r.Credential)
	}
	resetPeakRSS(t)
	base := peakRSS(t)
	var wg sync.WaitGroup
	for _, tok := range tokens {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := newLargeBody(maxBody)
			req, _ := http.NewRequest("POST", f.url+api.Prefix+"/agent/checkin", b)
			req.ContentLength = int64(b.Len())
			req.Header.Set("Authorization", "Bearer "+tok)
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("status %d, want 400 (decoded, then refused)", resp.StatusCode)
			}
		}()
	}
	wg.Wait()
	grew := peakRSS(t) - base
	t.Logf("%d concurrent %d MiB bodies, one slot: peak RSS grew %d MiB", n, maxBody>>20, grew>>20)
	if bound := int64(8 * maxBody); grew > bound {
		t.Errorf("peak RSS grew %d MiB, over the bound of %d MiB", grew>>20, bound>>20)
	}
}
