package job

// Reboot is a job's reboot policy, as a rollout strategy names it.
type Reboot string

// Reboot policies.
const (
	// RebootNever never reboots (a needed reboot is reported as required).
	RebootNever Reboot = "never"
	// RebootIfRequired reboots when the host needs it, inside the window.
	RebootIfRequired Reboot = "if-required"
	// RebootAlways reboots after every change, inside the window.
	RebootAlways Reboot = "always"
)

// Valid says whether r is one of the reboot policies.
func (r Reboot) Valid() bool {
	switch r {
	case RebootNever, RebootIfRequired, RebootAlways:
		return true
	}
	return false
}

// RebootReport is what a job's result says of a reboot.
type RebootReport string

// Reboot reports.
const (
	// RebootNotNeeded: no reboot was needed.
	RebootNotNeeded RebootReport = ""
	// RebootRequired: a reboot is needed and was not done.
	RebootRequired RebootReport = "required"
	// RebootScheduled: the agent rebooted the host.
	RebootScheduled RebootReport = "scheduled"
)

// Phase is when a health check runs in a job.
type Phase string

// Phases.
const (
	// PhasePre: before anything changes.
	PhasePre Phase = "pre"
	// PhasePost: after the install (and service restarts).
	PhasePost Phase = "post"
	// PhasePostRollback: after a failed post-check rolled the install back.
	PhasePostRollback Phase = "post-rollback"
)
