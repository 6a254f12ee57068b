package rolloutsql

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/patchbay/patchbay/rollout"
	"github.com/patchbay/patchbay/store/internal/unixnano"
)

// AlertDialect holds one database's SQL for received alerts and the
// timelines of hosts' jobs.
type AlertDialect struct {
	// UpsertAlert stores an alert occurrence, or updates its status, end
	// and reception (the link stays the first one): (fingerprint,
	// starts_at, ends_at, status, name, labels, host_id, hostname,
	// plan_id, job_started, received_at).
	UpsertAlert string
	// AlertsOfHost, AlertsOfPlan, Alerts list alerts newest first:
	// (host_id | plan_id, since, limit) or (since, limit).
	AlertsOfHost, AlertsOfPlan, Alerts string
	// HostJobs lists a host's jobs started since: (host_id, since) →
	// plan_id, host_id, attempt, started_at, outcome, reported_at, result,
	// revert.
	HostJobs string
	// PlanJobs lists a plan's started jobs: (plan_id) → the same columns.
	PlanJobs string
}

// RecordAlerts stores alerts with their events (audit entries and
// notifications of the links) in one transaction.
func (s *Store) RecordAlerts(ctx context.Context, as []rollout.Alert, now time.Time, evs ...rollout.Event) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		for _, a := range as {
			lb, err := json.Marshal(a.Labels)
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, s.D.Alert.UpsertAlert, a.Fingerprint, a.StartsAt.UnixNano(), unixnano.From(a.EndsAt), a.Status, a.Name, string(lb),
				a.Host, a.Hostname, a.Plan, unixnano.From(a.JobStarted), a.ReceivedAt.UnixNano()); err != nil {
				return fmt.Errorf("store alert %s: %w", a.Name, err)
			}
		}
		for _, e := range evs {
			subject := "" // each notification is its own plan's
			if p, ok := e.Payload.(rollout.PlanEvent); ok {
				subject = p.Plan
			}
			if err := s.record(ctx, tx, subject, now, []rollout.Event{e}); err != nil {
				return err
			}
		}
		return nil
	})
}

// Alerts lists alerts, newest first.
func (s *Store) Alerts(ctx context.Context, f rollout.AlertFilter) ([]rollout.Alert, error) {
	if f.Limit <= 0 {
		f.Limit = 500
	}
	q, args := s.D.Alert.Alerts, []any{unixnano.From(f.Since), f.Limit}
	switch {
	case f.Host != "":
		q, args = s.D.Alert.AlertsOfHost, []any{f.Host, unixnano.From(f.Since), f.Limit}
	case f.Plan != "":
		q, args = s.D.Alert.AlertsOfPlan, []any{f.Plan, unixnano.From(f.Since), f.Limit}
	}
	rows, err := s.DB.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("alerts: %w", err)
	}
	defer rows.Close()
	var out []rollout.Alert
	for rows.Next() {
		var a rollout.Alert
		var starts, ends, jobStarted, received int64
		var labels string
		if err := rows.Scan(&a.ID, &a.Fingerprint, &starts, &ends, &a.Status, &a.Name, &labels, &a.Host, &a.Hostname, &a.Plan, &jobStarted, &received); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(labels), &a.Labels); err != nil {
			return nil, fmt.Errorf("alert %d labels: %w", a.ID, err)
		}
		a.StartsAt, a.EndsAt, a.JobStarted, a.ReceivedAt = unixnano.To(starts), unixnano.To(ends), unixnano.To(jobStarted), unixnano.To(received)
		out = append(out, a)
	}
	return out, rows.Err()
}

// HostJobs lists a host's jobs started at or after since (all rollouts).
func (s *Store) HostJobs(ctx context.Context, host string, since time.Time) ([]rollout.JobRef, error) {
	return s.jobRefs(ctx, s.D.Alert.HostJobs, host, unixnano.From(since))
}

// PlanJobs lists a plan's started jobs.
func (s *Store) PlanJobs(ctx context.Context, plan string) ([]rollout.JobRef, error) {
	return s.jobRefs(ctx, s.D.Alert.PlanJobs, plan)
}

func (s *Store) jobRefs(ctx context.Context, q string, args ...any) ([]rollout.JobRef, error) {
	rows, err := s.DB.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("jobs: %w", err)
	}
	defer rows.Close()
	var out []rollout.JobRef
	for rows.Next() {
		var j rollout.JobRef
		var started, reported int64
		var result string
		var revert int
		if err := rows.Scan(&j.Plan, &j.Host, &j.Attempt, &started, &j.Outcome, &reported, &result, &revert); err != nil {
			return nil, err
		}
		j.Revert = revert != 0
		j.Started, j.ReportedAt, j.Result = unixnano.To(started), unixnano.To(reported), []byte(result)
		out = append(out, j)
	}
	return out, rows.Err()
}
