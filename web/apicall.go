package web

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/patchbay/patchbay/api"
	"github.com/patchbay/patchbay/auth"
)

// apiError is the API's refusal of a call, with its status.
type apiError struct {
	Status int
	Body   api.Error
}

func (e *apiError) Error() string { return e.Body.Error }

// recorder collects an in-process response.
type recorder struct {
	h      http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.h }
func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
}
func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.body.Write(b)
}

// call calls the API in process as the session's person: method on
// path with query q, body (JSON) when not nil, the answer decoded into
// out when not nil. A refusal is an *apiError.
func (u *UI) call(ctx context.Context, s *session, method, path string, q url.Values, body, out any) error {
	raw, err := u.callRaw(ctx, s, method, path, q, body)
	if err != nil {
		return err
	}
	if out == nil || len(raw) == 0 {
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
	}
	return nil
}

func (u *UI) callRaw(ctx context.Context, s *session, method, path string, q url.Values, body any) ([]byte, error) {
	var rd io.Reader = http.NoBody
	var n int64
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd, n = bytes.NewReader(b), int64(len(b))
	}
	target := path
	if len(q) > 0 {
		target += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(auth.WithPerson(ctx, s.token()), method, target, rd)
	if err != nil {
		return nil, err
	}
	req.ContentLength = n
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.RemoteAddr = "ui:" + s.User
	rec := &recorder{h: http.Header{}}
	u.cfg.API.ServeHTTP(rec, req)
	if rec.status == 0 {
		rec.status = http.StatusNoContent
	}
	if rec.status >= 400 {
		ae := &apiError{Status: rec.status}
		if err := json.Unmarshal(rec.body.Bytes(), &ae.Body); err != nil || ae.Body.Error == "" {
			ae.Body.Error = fmt.Sprintf("%s %s: status %d", method, path, rec.status)
		}
		return nil, ae
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return rec.body.Bytes(), nil
}

// refusal is the API's refusal in err, if it is one.
func refusal(err error) (*apiError, bool) {
	var ae *apiError
	return ae, errors.As(err, &ae)
}

// aggregateTTL is how long the UI reuses a fleet-wide aggregate (the
// vulnerabilities list, which the store computes over every finding):
// the same for every person (every role reads it), so a busy overview
// does not compute it for each page view.
const aggregateTTL = 30 * time.Second

type cached struct {
	at  time.Time
	raw []byte
	val any // a value computed from answers (cachedValue)
}

// cachedValue returns the value under key computed by fn, reusing one
// younger than aggregateTTL, and when it was computed.
func cachedValue[T any](u *UI, key string, fn func() (T, error)) (T, time.Time, error) {
	now := time.Now()
	u.cacheMu.Lock()
	c, ok := u.cache[key]
	u.cacheMu.Unlock()
	if v, isT := c.val.(T); ok && isT && now.Sub(c.at) <= aggregateTTL {
		return v, c.at, nil
	}
	v, err := fn()
	if err != nil {
		return v, now, err
	}
	u.cacheMu.Lock()
	if len(u.cache) > 64 {
		clear(u.cache)
	}
	u.cache[key] = cached{at: now, val: v}
	u.cacheMu.Unlock()
	return v, now, nil
}

// callCached is call for GETs of fleet-wide aggregates, reusing an
// answer younger than aggregateTTL. It returns when the answer was made.
func (u *UI) callCached(ctx context.Context, s *session, path string, q url.Values, out any) (time.Time, error) {
	key := path + "?" + q.Encode()
	now := time.Now()
	u.cacheMu.Lock()
	c, ok := u.cache[key]
	u.cacheMu.Unlock()
	if !ok || now.Sub(c.at) > aggregateTTL {
		raw, err := u.callRaw(ctx, s, "GET", path, q, nil)
		if err != nil {
			return now, err
		}
		c = cached{at: now, raw: raw}
		u.cacheMu.Lock()
		if len(u.cache) > 64 {
			clear(u.cache) // filters people vary: keep it small
		}
		u.cache[key] = c
		u.cacheMu.Unlock()
	}
	if err := json.Unmarshal(c.raw, out); err != nil {
		return c.at, fmt.Errorf("GET %s: decode answer: %w", path, err)
	}
	return c.at, nil
}

// refreshing marks the keys being computed in the background.
// cachedAsync returns the value under key if there is one (stale
// included: fresh is false then) and, when it is missing or stale,
// computes it in the background with fn (one at a time per key), so a
// page never waits for it: ok is false until the first value is there.
func cachedAsync[T any](u *UI, key string, fn func(ctx context.Context) (T, error)) (v T, at time.Time, ok bool) {
	now := time.Now()
	u.cacheMu.Lock()
	c, have := u.cache[key]
	v, ok = c.val.(T)
	ok = ok && have
	start := (!ok || now.Sub(c.at) > aggregateTTL) && !u.refreshing[key]
	if start {
		u.refreshing[key] = true
	}
	u.cacheMu.Unlock()
	if start {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			val, err := fn(ctx)
			u.cacheMu.Lock()
			defer u.cacheMu.Unlock()
			delete(u.refreshing, key)
			if err != nil {
				u.log.Warn("background count", "what", key, "err", err)
				return
			}
			u.cache[key] = cached{at: time.Now(), val: val}
		}()
	}
	return v, c.at, ok
}
