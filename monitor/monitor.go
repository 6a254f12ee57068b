// Package monitor reads the monitoring the rollout gates watch: instant
// queries of Prometheus's HTTP API (/api/v1/query) and the active alerts
// of Alertmanager's API v2 (/api/v2/alerts), over plain net/http. Errors
// name the component and its URL, and wrap rollout.ErrUnreachable when it
// could not be reached (a failed connection, a timeout, a 5xx answer).
package monitor

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/patchbay/patchbay/rollout"
)

// Client queries one Prometheus and one Alertmanager (either URL may be
// empty: that component is not configured, and its gates fail as
// unreachable).
type Client struct {
	PrometheusURL   string
	AlertmanagerURL string
	HTTP            *http.Client
	// Timeout bounds each request (10s when zero).
	Timeout time.Duration
}

var _ rollout.Monitor = (*Client)(nil)

func (c *Client) do(ctx context.Context, component, base, path string, q url.Values, out any) error {
	if base == "" {
		return fmt.Errorf("%s: %w: no --%s-url configured", component, rollout.ErrUnreachable, component)
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	u := strings.TrimSuffix(base, "/") + path + "?" + q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("%s %s: %w", component, base, err)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w: %v", component, base, rollout.ErrUnreachable, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return fmt.Errorf("%s %s: %w: reading the answer: %v", component, base, rollout.ErrUnreachable, err)
	}
	if resp.StatusCode >= 500 {
		return fmt.Errorf("%s %s: %w: %s: %s", component, base, rollout.ErrUnreachable, resp.Status, snippet(body))
	}
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusBadRequest && resp.StatusCode != http.StatusUnprocessableEntity {
		return fmt.Errorf("%s %s: %s: %s", component, base, resp.Status, snippet(body))
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("%s %s: %s: not the API's JSON: %v", component, base, resp.Status, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %s: %s", component, base, resp.Status, snippet(body))
	}
	return nil
}

func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// Query runs an instant query at Prometheus's present; a scalar is one
// sample without labels, a vector one sample per series. Other result
// types (matrices, strings) are refused: a gate compares numbers.
func (c *Client) Query(ctx context.Context, promql string) ([]rollout.Sample, error) {
	var r struct {
		Status    string `json:"status"`
		ErrorType string `json:"errorType"`
		Error     string `json:"error"`
		Data      struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		} `json:"data"`
	}
	err := c.do(ctx, "prometheus", c.PrometheusURL, "/api/v1/query", url.Values{"query": {promql}}, &r)
	if r.Status == "error" {
		return nil, fmt.Errorf("prometheus %s: query %s: %s: %s", c.PrometheusURL, promql, r.ErrorType, r.Error)
	}
	if err != nil {
		return nil, err
	}
	switch r.Data.ResultType {
	case "vector":
		var vs []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		}
		if err := json.Unmarshal(r.Data.Result, &vs); err != nil {
			return nil, fmt.Errorf("prometheus %s: a vector that does not decode: %v", c.PrometheusURL, err)
		}
		out := make([]rollout.Sample, 0, len(vs))
		for _, v := range vs {
			f, err := sampleValue(v.Value)
			if err != nil {
				return nil, fmt.Errorf("prometheus %s: %v", c.PrometheusURL, err)
			}
			out = append(out, rollout.Sample{Labels: v.Metric, Value: f})
		}
		return out, nil
	case "scalar":
		var v [2]any
		if err := json.Unmarshal(r.Data.Result, &v); err != nil {
			return nil, fmt.Errorf("prometheus %s: a scalar that does not decode: %v", c.PrometheusURL, err)
		}
		f, err := sampleValue(v)
		if err != nil {
			return nil, fmt.Errorf("prometheus %s: %v", c.PrometheusURL, err)
		}
		return []rollout.Sample{{Value: f}}, nil
	}
	return nil, fmt.Errorf("prometheus %s: query %s gives a %s: a gate wants an instant vector or a scalar", c.PrometheusURL, promql, r.Data.ResultType)
}

func sampleValue(v [2]any) (float64, error) {
	s, ok := v[1].(string)
	if !ok {
		return 0, fmt.Errorf("sample value %v is not a string", v[1])
	}
	return strconv.ParseFloat(s, 64) // "NaN", "+Inf" parse
}

// Alerts lists the active alerts (not silenced, not inhibited) matching
// every matcher; Alertmanager parses the matchers.
func (c *Client) Alerts(ctx context.Context, matchers []string) ([]rollout.FiringAlert, error) {
	q := url.Values{"active": {"true"}, "silenced": {"false"}, "inhibited": {"false"}, "unprocessed": {"false"}}
	for _, m := range matchers {
		q.Add("filter", m)
	}
	var as []struct {
		Labels      map[string]string `json:"labels"`
		StartsAt    time.Time         `json:"startsAt"`
		Fingerprint string            `json:"fingerprint"`
		Status      struct {
			State string `json:"state"`
		} `json:"status"`
	}
	if err := c.do(ctx, "alertmanager", c.AlertmanagerURL, "/api/v2/alerts", q, &as); err != nil {
		return nil, err
	}
	out := make([]rollout.FiringAlert, 0, len(as))
	for _, a := range as {
		if a.Status.State != "" && a.Status.State != "active" {
			continue
		}
		out = append(out, rollout.FiringAlert{Labels: a.Labels, StartsAt: a.StartsAt, Fingerprint: a.Fingerprint})
	}
	return out, nil
}

// QueryRange reads every value of every series of promql over the last
// rng (ending at this machine's present) at step; a gate compares the
// values as samples.
func (c *Client) QueryRange(ctx context.Context, promql string, rng, step time.Duration) ([]float64, error) {
	end := time.Now()
	var r struct {
		Status    string `json:"status"`
		ErrorType string `json:"errorType"`
		Error     string `json:"error"`
		Data      struct {
			ResultType string `json:"resultType"`
			Result     []struct {
				Values [][2]any `json:"values"`
			} `json:"result"`
		} `json:"data"`
	}
	q := url.Values{"query": {promql}, "start": {strconv.FormatInt(end.Add(-rng).Unix(), 10)}, "end": {strconv.FormatInt(end.Unix(), 10)},
		"step": {strconv.FormatFloat(step.Seconds(), 'f', -1, 64)}}
	err := c.do(ctx, "prometheus", c.PrometheusURL, "/api/v1/query_range", q, &r)
	if r.Status == "error" {
		return nil, fmt.Errorf("prometheus %s: query %s: %s: %s", c.PrometheusURL, promql, r.ErrorType, r.Error)
	}
	if err != nil {
		return nil, err
	}
	if r.Data.ResultType != "matrix" {
		return nil, fmt.Errorf("prometheus %s: query_range of %s gives a %s, not a matrix", c.PrometheusURL, promql, r.Data.ResultType)
	}
	var out []float64
	for _, s := range r.Data.Result {
		for _, v := range s.Values {
			f, err := sampleValue(v)
			if err != nil {
				return nil, fmt.Errorf("prometheus %s: %v", c.PrometheusURL, err)
			}
			out = append(out, f)
		}
	}
	return out, nil
}
