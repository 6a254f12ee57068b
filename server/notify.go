package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/patchbay/patchbay/rollout"
)

// Webhook is where notifications go: a generic JSON POST of the event, or
// a Slack-compatible message (an incoming webhook's {"text": …}).
type Webhook struct {
	Name   string `json:"name"`
	URL    string `json:"url"`
	Format string `json:"format"` // json or slack
}

// ParseWebhook reads NAME=URL or NAME=slack+URL.
func ParseWebhook(s string) (Webhook, error) {
	name, u, ok := strings.Cut(s, "=")
	if !ok || name == "" {
		return Webhook{}, fmt.Errorf("webhook %q: want NAME=URL or NAME=slack+URL", s)
	}
	w := Webhook{Name: name, URL: u, Format: "json"}
	if rest, ok := strings.CutPrefix(u, "slack+"); ok {
		w.URL, w.Format = rest, "slack"
	}
	if !strings.HasPrefix(w.URL, "http://") && !strings.HasPrefix(w.URL, "https://") {
		return Webhook{}, fmt.Errorf("webhook %s: %q: want an http or https URL", name, w.URL)
	}
	return w, nil
}

// notifyTargets names the configured webhooks.
func (s *Server) notifyTargets() []string {
	out := make([]string, len(s.cfg.Webhooks))
	for i, w := range s.cfg.Webhooks {
		out[i] = w.Name
	}
	return out
}

// slackText renders an event as one line of Slack mrkdwn.
func slackText(n rollout.Notification) string {
	if n.Event == "backup.failed" {
		var b struct {
			Error string `json:"error"`
			Dir   string `json:"dir"`
		}
		_ = json.Unmarshal(n.Payload, &b)
		return fmt.Sprintf("patchbay: *backup failed* into %s: %s", b.Dir, b.Error)
	}
	if t, ok := scoreText(n); ok {
		return t
	}
	var e rollout.PlanEvent
	_ = json.Unmarshal(n.Payload, &e)
	var what string
	switch n.Event {
	case "plan.awaiting_approval":
		what = fmt.Sprintf("awaits approval by %s: %s, closes %s", count(e.Required, "person", "people"), count(e.Hosts, "host", "hosts"), closesText(e.Closes))
	case "rollout.ring_promoted":
		what = fmt.Sprintf("promoted from ring %v", e.Detail["from_ring"])
	case "rollout.halted":
		what = fmt.Sprintf("*halted*: %v", e.Detail["why"])
	case "rollout.completed":
		what = fmt.Sprintf("completed: %s, closes %s", count(e.Hosts, "host", "hosts"), closesText(e.Closes))
	default:
		what = n.Event
	}
	return fmt.Sprintf("patchbay: plan `%s` (%s) %s", e.Plan, e.Strategy, what)
}

func closesText(c map[string]int) string {
	var parts []string
	for _, p := range []string{"P1", "P2", "P3", "P4"} {
		if c[p] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", c[p], p))
		}
	}
	if len(parts) == 0 {
		return "no findings"
	}
	return strings.Join(parts, ", ") + " findings"
}

// Notification retries: up to MaxAttempts with exponential back-off from
// NotifyBackoff (doubled each time, at most an hour).
const maxNotifyAttempts = 8

// DeliverNotifications sends the due webhook deliveries once each.
func (s *Server) DeliverNotifications(ctx context.Context) error {
	now := s.cfg.Now().UTC()
	due, err := s.db.Rollouts.Due(ctx, now, 100)
	if err != nil {
		return err
	}
	for _, n := range due {
		var hook *Webhook
		for i := range s.cfg.Webhooks {
			if s.cfg.Webhooks[i].Name == n.Target {
				hook = &s.cfg.Webhooks[i]
			}
		}
		if team, ok := strings.CutPrefix(n.Target, "team:"); ok && hook == nil && s.cfg.TeamWebhooks {
			hook, err = s.teamWebhook(ctx, team)
			if err != nil {
				return err
			}
		}
		if hook == nil {
			if err := s.db.Rollouts.Attempted(ctx, n.ID, now, 0, "no webhook named "+n.Target+" is configured", false, time.Time{}); err != nil {
				return err
			}
			continue
		}
		status, derr := s.post(ctx, *hook, n)
		var next time.Time
		if derr != nil && n.Attempts+1 < maxNotifyAttempts {
			next = now.Add(min(s.cfg.NotifyBackoff<<n.Attempts, time.Hour))
		}
		msg := ""
		if derr != nil {
			msg = derr.Error()
			s.log.Warn("webhook delivery failed", "webhook", hook.Name, "event", n.Event, "attempt", n.Attempts+1, "err", derr)
		}
		if err := s.db.Rollouts.Attempted(ctx, n.ID, now, status, msg, derr == nil, next); err != nil {
			return err
		}
	}
	return nil
}

// teamWebhook is the webhook of a team's Team document (generic JSON, as
// of the server's NAME=URL), or nil when the team has none now.
func (s *Server) teamWebhook(ctx context.Context, team string) (*Webhook, error) {
	set, err := s.Policy(ctx)
	if err != nil {
		return nil, err
	}
	ts := set.TeamOf(team)
	if ts == nil || ts.Webhook == "" {
		return nil, nil
	}
	return &Webhook{Name: "team:" + team, URL: ts.Webhook, Format: "json"}, nil
}

func (s *Server) post(ctx context.Context, w Webhook, n rollout.Notification) (int, error) {
	body := []byte(n.Payload)
	if w.Format == "slack" {
		body, _ = json.Marshal(map[string]string{"text": slackText(n)})
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Patchbay-Event", n.Event)
	req.Header.Set("X-Patchbay-Delivery", fmt.Sprint(n.ID))
	resp, err := s.webhookClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode >= 300 {
		return resp.StatusCode, fmt.Errorf("%s answered %s", w.Name, resp.Status)
	}
	return resp.StatusCode, nil
}

// listNotifications lists webhook deliveries, of one plan when asked.
func (s *Server) listNotifications(w http.ResponseWriter, r *http.Request, _ *caller) error {
	ns, err := s.db.Rollouts.Notifications(r.Context(), r.URL.Query().Get("plan"), 500)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]any{"notifications": ns})
}

// count is "1 host", "2 hosts".
func count(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
