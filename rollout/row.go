package rollout

import (
	"encoding/json"
	"errors"
	"time"

	"github.com/patchbay/patchbay/job"
)

// What plans and rollouts are stored as: rows, the events written with a
// change, the jobs a step starts and settles, webhook deliveries and the
// store's errors. The stores (store/internal/rolloutsql) speak these types;
// the scheduler's Store is declared in step.go.

// Errors of the rollout store.
var (
	// ErrNotFound: no plan has that id.
	ErrNotFound = errors.New("no such plan")
	// ErrConflict: the plan changed since it was read; read it again.
	ErrConflict = errors.New("the plan changed meanwhile")
)

// Row is a plan as stored: the plan, its rollout's aggregate once
// started, and the version changes are swapped against.
type Row struct {
	Plan    *Plan
	Machine *Machine // nil until started; Jobs not loaded
	Version int64
}

// Event is an audit entry and the notifications of a change, written in
// the change's transaction.
type Event struct {
	Actor, Action, Object string
	Change                any
	// Notify is the event's name for webhooks ("" for none); Payload its
	// body, sent to each of Targets.
	Notify  string
	Payload any
	Targets []string
}

// Dispatch is a job a step starts: its attempt and signed manifest.
type Dispatch struct {
	Host    string
	Attempt int
	Started time.Time
	Job     string
	// Revert: the job puts a succeeded host back at its previous
	// versions after the rollout halted (the attempt after its last).
	Revert bool
}

// Settle is an outcome a step decides for a host (timed out, no agent).
type Settle struct {
	Host    string
	Attempt int
	Outcome job.Outcome
}

// Fence is the leader's lease and term a step is written under.
type Fence struct {
	Lease string
	Term  int64
}

// Notification is a webhook delivery.
type Notification struct {
	ID          int64           `json:"id"`
	Event       string          `json:"event"`
	Subject     string          `json:"subject"`
	Target      string          `json:"target"`
	Payload     json.RawMessage `json:"payload"`
	CreatedAt   time.Time       `json:"created_at"`
	Attempts    int             `json:"attempts"`
	NextAt      time.Time       `json:"next_at,omitzero"`
	DeliveredAt time.Time       `json:"delivered_at,omitzero"`
	FailedAt    time.Time       `json:"failed_at,omitzero"`
	LastStatus  int             `json:"last_status,omitempty"`
	LastError   string          `json:"last_error,omitempty"`
}
