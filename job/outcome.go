package job

import "github.com/patchbay/patchbay/duration"

// Outcome is how one host's job ended. Distinct states: a skipped host
// (held or kept back) is never reported as patched.
type Outcome string

// Outcomes.
const (
	Succeeded       Outcome = "succeeded"
	SucceededReboot Outcome = "succeeded_reboot_required"
	NoChange        Outcome = "no_change_needed"
	Skipped         Outcome = "skipped"
	Failed          Outcome = "failed"
	RolledBack      Outcome = "rolled_back"
	TimedOut        Outcome = "timed_out"
	NoAgent         Outcome = "no_agent"
)

// Error says whether the outcome counts toward the error threshold: a
// host without an active agent is reported, not counted.
func (o Outcome) Error() bool { return o == Failed || o == RolledBack || o == TimedOut }

// HealthCheck is one structured post-check: exactly one of HTTP, TCP,
// Systemd and Command (commands run only where the agent's own
// configuration allows them).
type HealthCheck struct {
	HTTP    string            `yaml:"http,omitempty" json:"http,omitempty"`
	Status  int               `yaml:"status,omitempty" json:"status,omitempty"` // expected HTTP status, 200 by default
	TCP     string            `yaml:"tcp,omitempty" json:"tcp,omitempty"`       // host:port
	Systemd string            `yaml:"systemd,omitempty" json:"systemd,omitempty"`
	Command []string          `yaml:"command,omitempty" json:"command,omitempty"`
	Timeout duration.Duration `yaml:"timeout,omitempty" json:"timeout,omitempty"`
}
