package rollout

import (
	"strings"
	"time"
)

// Alert is an alert Alertmanager sent to patchbay's receiver, linked to
// the job that preceded it on its host, if one started within the
// correlation window before the alert did.
type Alert struct {
	ID          int64             `json:"id,omitempty"`
	Fingerprint string            `json:"fingerprint"`
	Name        string            `json:"name"`
	Status      string            `json:"status"` // firing or resolved
	Labels      map[string]string `json:"labels"`
	StartsAt    time.Time         `json:"starts_at"`
	EndsAt      time.Time         `json:"ends_at,omitzero"`
	ReceivedAt  time.Time         `json:"received_at"`
	// Host is the host the alert names (its id), Plan and JobStarted the
	// job it is linked to ("" and zero when none).
	Host       string    `json:"host,omitempty"`
	Hostname   string    `json:"hostname,omitempty"`
	Plan       string    `json:"plan,omitempty"`
	JobStarted time.Time `json:"job_started,omitzero"`
}

// JobRef is a host's job in a rollout, as correlation and timelines see
// it.
type JobRef struct {
	Plan       string    `json:"plan"`
	Host       string    `json:"host"`
	Attempt    int       `json:"attempt"`
	Started    time.Time `json:"started"`
	Outcome    string    `json:"outcome,omitempty"`
	ReportedAt time.Time `json:"reported_at,omitzero"`
	Result     []byte    `json:"-"`
	// Revert: the job now puts the host back (the rollout halted).
	Revert bool `json:"revert,omitempty"`
}

// AlertHostLabels are the labels that name an alert's host, in order:
// host, hostname, nodename, then instance without its port.
var AlertHostLabels = []string{"host", "hostname", "nodename", "instance"}

// AlertHostname is the hostname an alert names, "" when none.
func AlertHostname(labels map[string]string) string {
	for _, l := range AlertHostLabels {
		v := labels[l]
		if v == "" {
			continue
		}
		if l == "instance" {
			if h, _, ok := strings.Cut(v, ":"); ok && !strings.HasPrefix(v, "[") {
				v = h
			}
		}
		return v
	}
	return ""
}

// Correlate links an alert to the latest job of jobs (those of its hosts)
// that started within window before the alert did (at the alert's start
// or before it, not more than window before). It returns false when none
// did.
func Correlate(a *Alert, jobs []JobRef, window time.Duration) bool {
	var best *JobRef
	for i := range jobs {
		j := &jobs[i]
		if j.Started.IsZero() || j.Started.After(a.StartsAt) || a.StartsAt.Sub(j.Started) > window {
			continue
		}
		if best == nil || j.Started.After(best.Started) {
			best = j
		}
	}
	if best == nil {
		return false
	}
	a.Host, a.Plan, a.JobStarted = best.Host, best.Plan, best.Started
	return true
}

// AlertFilter selects alerts: of a host or a plan (or all), started at or
// after Since; at most Limit (500 when zero).
type AlertFilter struct {
	Host, Plan string
	Since      time.Time
	Limit      int
}
