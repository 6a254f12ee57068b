package web

import (
	"bytes"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/patchbay/patchbay/api/rolloutapi"
	"github.com/patchbay/patchbay/rollout"
)

// pages are the parsed templates: each page with the layout.
type pages struct {
	byName map[string]*template.Template
}

func parsePages() (*pages, error) {
	files, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	p := &pages{byName: map[string]*template.Template{}}
	for _, f := range files {
		name := strings.TrimSuffix(path.Base(f), ".html")
		if name == "layout" {
			continue
		}
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", f)
		if err != nil {
			return nil, fmt.Errorf("web: template %s: %w", f, err)
		}
		p.byName[name] = t
	}
	return p, nil
}

// view is what every page's template gets.
type view struct {
	Title string
	Page  string
	User  string
	Role  string
	CSRF  string
	// Can tells what the person's role allows (operator: act on plans
	// and rollouts; admin: the audit log).
	CanOperate, CanAdmin bool
	Data                 any
	Now                  time.Time
}

func (u *UI) render(w http.ResponseWriter, r *http.Request, s *session, status int, page, title string, data any) {
	t := u.pages.byName[page]
	if t == nil {
		u.fail(w, r, s, fmt.Errorf("web: no page %q", page))
		return
	}
	v := view{Title: title, Page: page, Data: data, Now: u.cfg.Now().UTC()}
	if s != nil {
		v.User, v.Role, v.CSRF = s.User, string(s.Role), s.CSRF
		v.CanOperate, v.CanAdmin = s.Role.Allows("operator"), s.Role.Allows("admin")
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, v); err != nil {
		u.log.Error("render", "page", page, "err", err)
		http.Error(w, "internal error (logged on the server)", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

type errorView struct {
	Status  int
	Message string
}

func (u *UI) errorPage(w http.ResponseWriter, r *http.Request, s *session, status int, msg string) {
	u.render(w, r, s, status, "error", http.StatusText(status), errorView{Status: status, Message: msg})
}

// fail shows an error: the API's refusals as they are (they say what
// is wrong), anything else as an internal error, logged.
func (u *UI) fail(w http.ResponseWriter, r *http.Request, s *session, err error) {
	if ae, ok := refusal(err); ok {
		u.errorPage(w, r, s, ae.Status, ae.Body.Error)
		return
	}
	var be badInput
	if errors.As(err, &be) {
		u.errorPage(w, r, s, http.StatusBadRequest, be.msg)
		return
	}
	if r.Context().Err() != nil {
		return
	}
	u.log.Error("page failed", "path", r.URL.Path, "err", err)
	u.errorPage(w, r, s, http.StatusInternalServerError, "Internal error (logged on the server).")
}

// badInput is a query or form the UI itself refuses.
type badInput struct{ msg string }

func (e badInput) Error() string { return e.msg }

var funcs = template.FuncMap{
	// link returns the URL of path with the query q, key set to value
	// ("" removes it) and the page cursor dropped.
	"link": linkURL,
	"time": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04")
	},
	"date": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format(time.DateOnly)
	},
	"iso":   func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"clock": func(t time.Time) string { return t.UTC().Format("15:04:05") },
	"ago": func(now, t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return ago(now.Sub(t))
	},
	"join": func(sep string, xs any) string {
		switch v := xs.(type) {
		case []string:
			return strings.Join(v, sep)
		}
		return fmt.Sprint(xs)
	},
	"lower":      strings.ToLower,
	"statusText": http.StatusText,
	"add":        func(a, b int) int { return a + b },
	"sub":        func(a, b int) int { return a - b },
	"list2":      func(a, b any) []any { return []any{a, b} },
	"days":       daysText,
	"rate":       rateText,
	"pct":        func(f *float64) string { return pct(f) },
	"prio":       func(p any) string { return strings.ToLower(fmt.Sprint(p)) },
	"state":      func(s any) string { return strings.ReplaceAll(fmt.Sprint(s), "_", " ") },
	"svgbar":     barChart,
	"share":      func(f float64) string { return fmt.Sprintf("%.0f%%", 100*f) },
	"ring":       ringBar,
	"list":       func(xs ...string) []string { return xs },
	"has":        func(xs []string, x string) bool { return slices.Contains(xs, x) },
	"done": func(r rolloutapi.RingStatus) int {
		n := 0
		for _, c := range r.Outcomes {
			n += c
		}
		return n
	},
	"failed": func(r rolloutapi.RingStatus) int {
		n := 0
		for o, c := range r.Outcomes {
			if o.Error() {
				n += c
			}
		}
		return n
	},
	"ringName": func(p *rollout.Plan, i int) string {
		if i >= 0 && i < len(p.Rings) {
			return p.Rings[i].Name
		}
		return fmt.Sprint(i + 1)
	},
	"pager": newPager,
	"seq": func(n int) []int {
		out := make([]int, n)
		for i := range out {
			out[i] = i
		}
		return out
	},
}

func pct(f *float64) string {
	if f == nil {
		return "—"
	}
	return fmt.Sprintf("%.1f%%", *f*100)
}

func ago(d time.Duration) string {
	switch {
	case d < 0:
		return "in " + strings.TrimSuffix(ago(-d), " ago")
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return fmt.Sprintf("%d min ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h ago", int(d.Hours()))
	default:
		return fmt.Sprintf("%d days ago", int(d.Hours()/24))
	}
}

// pagerView links a numbered page's neighbours.
type pagerView struct {
	Page, Last int
	Prev, Next string
}

func newPager(p string, q url.Values, page, last int) pagerView {
	at := func(n int) string {
		u := linkURL(p, q)
		if n <= 1 {
			return u
		}
		if strings.Contains(u, "?") {
			return u + "&page=" + fmt.Sprint(n)
		}
		return u + "?page=" + fmt.Sprint(n)
	}
	return pagerView{Page: page, Last: last, Prev: at(page - 1), Next: at(page + 1)}
}

// linkURL returns the URL of path p with the query q, key set to value
// ("" removes it) and the page cursor dropped.
func linkURL(p string, q url.Values, kv ...string) string {
	n := url.Values{}
	for k, v := range q {
		if k != "cursor" && k != "page" {
			n[k] = v
		}
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "" {
			n.Del(kv[i])
		} else {
			n.Set(kv[i], kv[i+1])
		}
	}
	if len(n) == 0 {
		return p
	}
	return p + "?" + n.Encode()
}
