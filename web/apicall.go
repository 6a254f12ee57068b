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
