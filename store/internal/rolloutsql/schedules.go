package rolloutsql

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/patchbay/patchbay/rollout"
	"github.com/patchbay/patchbay/store/internal/sqlrows"
	"github.com/patchbay/patchbay/store/internal/unixnano"
)

// ScheduleDialect holds one database's SQL for PatchSchedule runs and
// pauses.
type ScheduleDialect struct {
	// InsertRun records a schedule's run of an opening, nothing when it
	// ran: (schedule, opening, plan_id, created_at).
	InsertRun string
	// Ran reads a run: (schedule, opening) → plan_id.
	Ran string
	// Runs lists a schedule's runs, newest first: (schedule, limit) →
	// opening, plan_id, created_at.
	Runs string
	// InsertPause pauses a schedule, nothing when paused: (schedule,
	// reason, paused_by, paused_at).
	InsertPause string
	// DeletePause resumes a schedule: (schedule).
	DeletePause string
	// Ended lists the rollouts completed or aborted since a time:
	// (updated_at) → id.
	Ended string
}

// Pauses lists the paused schedules' pauses.
const pausesSQL = `SELECT schedule, reason, paused_by, paused_at FROM schedule_pauses`

func (s *Store) createPlanTx(ctx context.Context, tx *sql.Tx, p *rollout.Plan, now time.Time) error {
	head := *p
	head.Hosts = nil
	b, err := marshal(head)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, s.D.InsertPlan,
		p.ID, p.State, b, now.UnixNano(), now.UnixNano()); err != nil {
		return fmt.Errorf("create plan %s: %w", p.ID, err)
	}
	st, err := tx.PrepareContext(ctx, s.D.InsertPlanHost)
	if err != nil {
		return err
	}
	defer st.Close()
	for i, h := range p.Hosts {
		hb, err := marshal(h)
		if err != nil {
			return err
		}
		if _, err := st.ExecContext(ctx, p.ID, h.ID, i, h.Ring, hb); err != nil {
			return fmt.Errorf("create plan %s: host %s: %w", p.ID, h.ID, err)
		}
	}
	return nil
}

// CreateScheduled records a schedule's run of an opening and stores its
// plan (nil: the opening planned nothing) with its events, in one
// transaction fenced by the leader's term: rollout.ErrRan when the
// schedule ran that opening already — on this replica or another, before
// a restart or under an earlier leader.
func (s *Store) CreateScheduled(ctx context.Context, fence rollout.Fence, schedule, opening string, p *rollout.Plan, now time.Time, evs ...rollout.Event) error {
	id, subject := "", "schedule/"+schedule
	if p != nil {
		id, subject = p.ID, p.ID
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		if fence.Term != 0 {
			if err := s.Leases.FenceTx(ctx, tx, fence.Lease, fence.Term); err != nil {
				return err
			}
		}
		res, err := tx.ExecContext(ctx, s.S.InsertRun, schedule, opening, id, now.UnixNano())
		if err != nil {
			return fmt.Errorf("schedule %s run %s: %w", schedule, opening, err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return fmt.Errorf("schedule %s, %s: %w", schedule, opening, rollout.ErrRan)
		}
		if p != nil {
			if err := s.createPlanTx(ctx, tx, p, now); err != nil {
				return err
			}
		}
		return s.record(ctx, tx, subject, now, evs)
	})
}

// Ran says whether a schedule ran an opening.
func (s *Store) Ran(ctx context.Context, schedule, opening string) (bool, error) {
	var id string
	err := s.DB.QueryRowContext(ctx, s.S.Ran, schedule, opening).Scan(&id)
	if err == sql.ErrNoRows {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("schedule %s run %s: %w", schedule, opening, err)
	}
	return true, nil
}

// Runs lists a schedule's runs, newest first.
func (s *Store) Runs(ctx context.Context, schedule string, limit int) ([]rollout.Run, error) {
	rows, err := s.DB.QueryContext(ctx, s.S.Runs, schedule, limit)
	if err != nil {
		return nil, fmt.Errorf("schedule %s runs: %w", schedule, err)
	}
	defer rows.Close()
	out := []rollout.Run{}
	for rows.Next() {
		r := rollout.Run{Schedule: schedule}
		var at int64
		if err := rows.Scan(&r.Opening, &r.Plan, &at); err != nil {
			return nil, fmt.Errorf("schedule %s runs: %w", schedule, err)
		}
		r.At = unixnano.To(at)
		out = append(out, r)
	}
	return out, rows.Err()
}

// Pauses are the paused schedules, by name.
func (s *Store) Pauses(ctx context.Context) (map[string]rollout.Pause, error) {
	rows, err := s.DB.QueryContext(ctx, pausesSQL)
	if err != nil {
		return nil, fmt.Errorf("schedule pauses: %w", err)
	}
	defer rows.Close()
	out := map[string]rollout.Pause{}
	for rows.Next() {
		var name string
		var p rollout.Pause
		var at int64
		if err := rows.Scan(&name, &p.Reason, &p.By, &at); err != nil {
			return nil, fmt.Errorf("schedule pauses: %w", err)
		}
		p.At = unixnano.To(at)
		out[name] = p
	}
	return out, rows.Err()
}

// SetPaused pauses (with p) or resumes (p nil) a schedule with its
// event; changed is false when it was so already (nothing is written).
func (s *Store) SetPaused(ctx context.Context, schedule string, p *rollout.Pause, now time.Time, evs ...rollout.Event) (changed bool, err error) {
	err = s.tx(ctx, func(tx *sql.Tx) error {
		var res sql.Result
		var err error
		if p != nil {
			res, err = tx.ExecContext(ctx, s.S.InsertPause, schedule, p.Reason, p.By, p.At.UnixNano())
		} else {
			res, err = tx.ExecContext(ctx, s.S.DeletePause, schedule)
		}
		if err != nil {
			return fmt.Errorf("schedule %s: %w", schedule, err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return nil
		}
		changed = true
		return s.record(ctx, tx, "schedule/"+schedule, now, evs)
	})
	return changed, err
}

// Halted lists the halted rollouts.
func (s *Store) Halted(ctx context.Context) ([]string, error) {
	return sqlrows.Strings(ctx, s.DB, "halted rollouts", `SELECT id FROM plans WHERE machine_state = 'halted' ORDER BY created_at`)
}

// Approved lists the plans approved and not started.
func (s *Store) Approved(ctx context.Context) ([]string, error) {
	return sqlrows.Strings(ctx, s.DB, "approved plans", `SELECT id FROM plans WHERE state = 'approved' ORDER BY created_at`)
}

// Undecided lists the plans awaiting approval or approved, not started.
func (s *Store) Undecided(ctx context.Context) ([]string, error) {
	return sqlrows.Strings(ctx, s.DB, "undecided plans", `SELECT id FROM plans WHERE state IN ('awaiting_approval', 'approved') ORDER BY created_at`)
}

// Ended lists the rollouts completed or aborted since a time.
func (s *Store) Ended(ctx context.Context, since time.Time) ([]string, error) {
	rows, err := s.DB.QueryContext(ctx, s.S.Ended, since.UnixNano())
	if err != nil {
		return nil, fmt.Errorf("ended rollouts: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("ended rollouts: %w", err)
		}
		out = append(out, id)
	}
	return out, rows.Err()
}
