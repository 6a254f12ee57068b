package forge

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// Request is a merge request to open or update.
type Request struct {
	Head  string // the fix branch
	Base  string // the branch it merges into
	Title string
	Body  string // Markdown
}

// MergeRequest is a merge request as the forge reports it.
type MergeRequest struct {
	// Number is GitHub's pull request number or GitLab's iid.
	Number int    `json:"number"`
	URL    string `json:"url"`
	// State is "open", "merged" or "closed".
	State string `json:"state"`
}

// Forge opens and reads merge requests.
type Forge interface {
	// Upsert updates the open merge request of r.Head, or opens one;
	// created says which.
	Upsert(ctx context.Context, r Request) (mr MergeRequest, created bool, err error)
	// Get reads a merge request's state.
	Get(ctx context.Context, number int) (MergeRequest, error)
}

// apiError is a forge's refusal, with the message it gave.
type apiError struct {
	Method, URL string
	Status      int
	Message     string
}

func (e *apiError) Error() string {
	return fmt.Sprintf("%s %s: %d %s", e.Method, e.URL, e.Status, e.Message)
}

// client is the HTTP side both forges share.
type client struct {
	base   string
	http   *http.Client
	header func(http.Header)
}

func (c *client) do(ctx context.Context, method, path string, q url.Values, in, out any) error {
	u := strings.TrimSuffix(c.base, "/") + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("User-Agent", "patchbay")
	c.header(req.Header)
	hc := c.http
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		var m struct {
			Message any `json:"message"`
		}
		msg := strings.TrimSpace(string(data))
		if json.Unmarshal(data, &m) == nil && m.Message != nil {
			msg = fmt.Sprint(m.Message)
		}
		if len(msg) > 300 {
			msg = msg[:300] + "…"
		}
		return &apiError{Method: method, URL: path, Status: resp.StatusCode, Message: msg}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: response: %w", method, path, err)
	}
	return nil
}

// GitHub is the pull request API of GitHub (or GitHub Enterprise).
type GitHub struct {
	// API is the API's base URL: https://api.github.com, or
	// https://HOST/api/v3 for GitHub Enterprise.
	API string
	// Repo is OWNER/NAME.
	Repo  string
	Token string
	HTTP  *http.Client
}

func (g *GitHub) client() *client {
	return &client{base: g.API, http: g.HTTP, header: func(h http.Header) {
		h.Set("Accept", "application/vnd.github+json")
		h.Set("X-GitHub-Api-Version", "2022-11-28")
		h.Set("Authorization", "Bearer "+g.Token)
	}}
}

type githubPull struct {
	Number   int     `json:"number"`
	HTMLURL  string  `json:"html_url"`
	State    string  `json:"state"`
	MergedAt *string `json:"merged_at"`
}

func (p githubPull) mr() MergeRequest {
	st := p.State
	if p.MergedAt != nil && *p.MergedAt != "" {
		st = "merged"
	}
	return MergeRequest{Number: p.Number, URL: p.HTMLURL, State: st}
}

func (g *GitHub) Upsert(ctx context.Context, r Request) (MergeRequest, bool, error) {
	c := g.client()
	owner, _, _ := strings.Cut(g.Repo, "/")
	var open []githubPull
	if err := c.do(ctx, http.MethodGet, "/repos/"+g.Repo+"/pulls", url.Values{"head": {owner + ":" + r.Head}, "state": {"open"}}, nil, &open); err != nil {
		return MergeRequest{}, false, fmt.Errorf("github: %w", err)
	}
	if len(open) > 0 {
		var p githubPull
		if err := c.do(ctx, http.MethodPatch, fmt.Sprintf("/repos/%s/pulls/%d", g.Repo, open[0].Number), nil, map[string]string{"title": r.Title, "body": r.Body, "base": r.Base}, &p); err != nil {
			return MergeRequest{}, false, fmt.Errorf("github: %w", err)
		}
		return p.mr(), false, nil
	}
	var p githubPull
	if err := c.do(ctx, http.MethodPost, "/repos/"+g.Repo+"/pulls", nil, map[string]any{"title": r.Title, "head": r.Head, "base": r.Base, "body": r.Body, "maintainer_can_modify": true}, &p); err != nil {
		return MergeRequest{}, false, fmt.Errorf("github: %w", err)
	}
	return p.mr(), true, nil
}

func (g *GitHub) Get(ctx context.Context, number int) (MergeRequest, error) {
	var p githubPull
	if err := g.client().do(ctx, http.MethodGet, fmt.Sprintf("/repos/%s/pulls/%d", g.Repo, number), nil, nil, &p); err != nil {
		return MergeRequest{}, fmt.Errorf("github: %w", err)
	}
	return p.mr(), nil
}

// GitLab is the merge request API of GitLab.
type GitLab struct {
	// API is the instance's base URL: https://gitlab.com.
	API string
	// Project is the project's path (group/name) or numeric id.
	Project string
	Token   string
	HTTP    *http.Client
}

func (g *GitLab) client() *client {
	return &client{base: g.API, http: g.HTTP, header: func(h http.Header) { h.Set("PRIVATE-TOKEN", g.Token) }}
}

type gitlabMR struct {
	IID    int    `json:"iid"`
	WebURL string `json:"web_url"`
	State  string `json:"state"` // opened, closed, locked, merged
}

func (m gitlabMR) mr() MergeRequest {
	st := m.State
	if st == "opened" || st == "locked" {
		st = "open"
	}
	return MergeRequest{Number: m.IID, URL: m.WebURL, State: st}
}

func (g *GitLab) path() string {
	return "/api/v4/projects/" + url.PathEscape(g.Project) + "/merge_requests"
}

func (g *GitLab) Upsert(ctx context.Context, r Request) (MergeRequest, bool, error) {
	c := g.client()
	var open []gitlabMR
	if err := c.do(ctx, http.MethodGet, g.path(), url.Values{"source_branch": {r.Head}, "state": {"opened"}}, nil, &open); err != nil {
		return MergeRequest{}, false, fmt.Errorf("gitlab: %w", err)
	}
	if len(open) > 0 {
		var m gitlabMR
		if err := c.do(ctx, http.MethodPut, fmt.Sprintf("%s/%d", g.path(), open[0].IID), nil, map[string]string{"title": r.Title, "description": r.Body, "target_branch": r.Base}, &m); err != nil {
			return MergeRequest{}, false, fmt.Errorf("gitlab: %w", err)
		}
		return m.mr(), false, nil
	}
	var m gitlabMR
	if err := c.do(ctx, http.MethodPost, g.path(), nil, map[string]any{"source_branch": r.Head, "target_branch": r.Base, "title": r.Title, "description": r.Body, "remove_source_branch": true}, &m); err != nil {
		return MergeRequest{}, false, fmt.Errorf("gitlab: %w", err)
	}
	return m.mr(), true, nil
}

func (g *GitLab) Get(ctx context.Context, number int) (MergeRequest, error) {
	var m gitlabMR
	if err := g.client().do(ctx, http.MethodGet, fmt.Sprintf("%s/%d", g.path(), number), nil, nil, &m); err != nil {
		return MergeRequest{}, fmt.Errorf("gitlab: %w", err)
	}
	return m.mr(), nil
}
