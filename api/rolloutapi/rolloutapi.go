// Package rolloutapi holds the wire types of the plan and rollout
// endpoints (/api/v1/plans…).
package rolloutapi

import (
	"github.com/patchbay/patchbay/job"
	"github.com/patchbay/patchbay/rollout"
)

// PlanStatus is a plan, its rollout once started, the rollout's progress
// per ring and, when asked for, every host's job.
type PlanStatus struct {
	Plan    *rollout.Plan        `json:"plan"`
	Rollout *rollout.Machine     `json:"rollout,omitempty"`
	Rings   []RingStatus         `json:"rings,omitempty"`
	Hosts   []rollout.HostStatus `json:"hosts,omitempty"`
}

// RingStatus counts a ring's jobs.
type RingStatus struct {
	Name     string              `json:"name"`
	Hosts    int                 `json:"hosts"`
	Pending  int                 `json:"pending"`
	InFlight int                 `json:"in_flight"`
	Outcomes map[job.Outcome]int `json:"outcomes"`
}
