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

// ScheduleList lists the PatchSchedules.
type ScheduleList struct {
	Schedules []ScheduleSummary `json:"schedules"`
}

// ScheduleSummary is a schedule, whether it is paused, its next opening
// and its last run.
type ScheduleSummary struct {
	Name    string                `json:"name"`
	Spec    *rollout.ScheduleSpec `json:"spec"`
	Paused  *rollout.Pause        `json:"paused,omitempty"`
	Next    []rollout.Opening     `json:"next,omitempty"`
	LastRun *rollout.Run          `json:"last_run,omitempty"`
}

// ScheduleStatus is a schedule with its next openings, what each would
// patch now, the emergency lane's and its recent runs.
type ScheduleStatus struct {
	ScheduleSummary
	Openings  []OpeningPreview `json:"openings"`
	Emergency *rollout.Preview `json:"emergency,omitempty"`
	Runs      []rollout.Run    `json:"runs"`
}

// OpeningPreview is what an opening would patch now; Ran says it was
// planned already.
type OpeningPreview struct {
	rollout.Opening
	Ran     bool            `json:"ran,omitempty"`
	Preview rollout.Preview `json:"preview"`
}
