package rolloutapi

import (
	"time"

	"github.com/patchbay/patchbay/rollout"
)

// AlertmanagerPayload is the body of Alertmanager's webhook (version 4),
// what POST /api/v1/alerts receives.
type AlertmanagerPayload struct {
	Version  string              `json:"version"`
	Status   string              `json:"status"`
	Receiver string              `json:"receiver"`
	GroupKey string              `json:"groupKey"`
	Alerts   []AlertmanagerAlert `json:"alerts"`
}

// AlertmanagerAlert is one alert of the payload.
type AlertmanagerAlert struct {
	Status       string            `json:"status"`
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
	Fingerprint  string            `json:"fingerprint"`
}

// AlertsReceived is the answer to a webhook delivery: how many alerts
// were stored and how many of them were linked to a job.
type AlertsReceived struct {
	Received int             `json:"received"`
	Linked   int             `json:"linked"`
	Alerts   []rollout.Alert `json:"alerts"`
}

// Event is one line of a timeline (GET /api/v1/events): a check-in, a
// job's start or report, a check, a reboot, an alert or a gate's
// measurement.
type Event struct {
	Time     time.Time `json:"time"`
	Kind     string    `json:"kind"` // checkin, job.started, job.reported, check, reboot, alert, gate, halt
	Host     string    `json:"host,omitempty"`
	Hostname string    `json:"hostname,omitempty"`
	Rollout  string    `json:"rollout,omitempty"`
	Summary  string    `json:"summary"`
}

// Events is a timeline, oldest first.
type Events struct {
	Events []Event `json:"events"`
}
