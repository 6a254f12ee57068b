package postgres

import (
	"github.com/patchbay/patchbay/store/internal/policysql"
	"github.com/patchbay/patchbay/store/internal/rolloutsql"
)

// policyDialect is PostgreSQL's SQL for policy documents.
var policyDialect = &policysql.Dialect{
	History:        `SELECT kind, name, version, action, doc, applied_at, applied_by FROM policy_versions WHERE kind = $1 ORDER BY seq`,
	HistoryOf:      `SELECT kind, name, version, action, doc, applied_at, applied_by FROM policy_versions WHERE kind = $1 AND name = $2 ORDER BY seq`,
	InsertDocument: `INSERT INTO policy_documents(kind, name, version, doc, applied_at, applied_by) VALUES($1,$2,$3,$4,$5,$6) ON CONFLICT DO NOTHING`,
	UpdateDocument: `UPDATE policy_documents SET version = $1, doc = $2, applied_at = $3, applied_by = $4 WHERE kind = $5 AND name = $6 AND version = $7`,
	DeleteDocument: `DELETE FROM policy_documents WHERE kind = $1 AND name = $2 AND version = $3`,
	InsertVersion:  `INSERT INTO policy_versions(kind, name, version, action, doc, applied_at, applied_by) VALUES($1,$2,$3,$4,$5,$6,$7)`,
	SetDecided:     `UPDATE policy_decided SET revision = $1 WHERE id = 1 AND revision < $2`,
}

// rolloutDialect is PostgreSQL's SQL for plans, rollouts and notifications.
var rolloutDialect = &rolloutsql.Dialect{
	Key:                `SELECT private_key FROM server_keys WHERE name = $1`,
	InsertKey:          `INSERT INTO server_keys(name, private_key, created_at) VALUES($1,$2,$3) ON CONFLICT DO NOTHING`,
	SwapKey:            `UPDATE server_keys SET private_key = $1 WHERE name = $2 AND private_key = $3`,
	InsertNotification: `INSERT INTO notifications(event, subject, target, payload, created_at, next_at) VALUES($1,$2,$3,$4,$5,$6)`,
	InsertPlan:         `INSERT INTO plans(id, state, plan, version, created_at, updated_at) VALUES($1,$2,$3,1,$4,$5)`,
	InsertPlanHost:     `INSERT INTO plan_hosts(plan_id, host_id, seq, ring, host) VALUES($1,$2,$3,$4,$5)`,
	Plan:               `SELECT plan, machine, version FROM plans WHERE id = $1`,
	Plans:              `SELECT plan, machine, version FROM plans ORDER BY created_at DESC, id LIMIT $1`,
	Hosts:              `SELECT host, attempt, started_at, outcome, result, reported_at FROM plan_hosts WHERE plan_id = $1 ORDER BY seq`,
	Jobs:               `SELECT host_id, ring, attempt, started_at, outcome FROM plan_hosts WHERE plan_id = $1 ORDER BY seq`,
	UpdatePlan:         `UPDATE plans SET state = $1, plan = $2, machine = $3, machine_state = $4, version = version + 1, updated_at = $5 WHERE id = $6 AND version = $7`,
	StepPlan:           `UPDATE plans SET machine = $1, machine_state = $2, version = version + 1, updated_at = $3 WHERE id = $4 AND version = $5`,
	StartJob:           `UPDATE plan_hosts SET attempt = $1, started_at = $2, job = $3, dispatch_seq = $4 WHERE plan_id = $5 AND host_id = $6 AND attempt = 0 AND outcome = ''`,
	Alert: rolloutsql.AlertDialect{
		UpsertAlert: `INSERT INTO alerts(fingerprint, starts_at, ends_at, status, name, labels, host_id, hostname, plan_id, job_started, received_at) VALUES($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11)
			ON CONFLICT (fingerprint, starts_at) DO UPDATE SET ends_at = excluded.ends_at, status = excluded.status, received_at = excluded.received_at`,
		AlertsOfHost: `SELECT id, fingerprint, starts_at, ends_at, status, name, labels, host_id, hostname, plan_id, job_started, received_at FROM alerts WHERE host_id = $1 AND starts_at >= $2 ORDER BY starts_at DESC, id DESC LIMIT $3`,
		AlertsOfPlan: `SELECT id, fingerprint, starts_at, ends_at, status, name, labels, host_id, hostname, plan_id, job_started, received_at FROM alerts WHERE plan_id = $1 AND starts_at >= $2 ORDER BY starts_at DESC, id DESC LIMIT $3`,
		Alerts:       `SELECT id, fingerprint, starts_at, ends_at, status, name, labels, host_id, hostname, plan_id, job_started, received_at FROM alerts WHERE starts_at >= $1 ORDER BY starts_at DESC, id DESC LIMIT $2`,
		HostJobs:     `SELECT plan_id, host_id, attempt, started_at, outcome, reported_at, result, revert FROM plan_hosts WHERE host_id = $1 AND started_at >= $2 AND attempt > 0 ORDER BY started_at`,
		PlanJobs:     `SELECT plan_id, host_id, attempt, started_at, outcome, reported_at, result, revert FROM plan_hosts WHERE plan_id = $1 AND attempt > 0 ORDER BY started_at`,
	},
	RevertJob: `UPDATE plan_hosts SET attempt = $1, job = $2, dispatch_seq = $3, outcome = '', revert = 1 WHERE plan_id = $4 AND host_id = $5 AND attempt = $6 - 1 AND revert = 0 AND outcome IN ('succeeded', 'succeeded_reboot_required')`,
	SettleJob: `UPDATE plan_hosts SET outcome = $1, attempt = $2, reported_at = $3 WHERE plan_id = $4 AND host_id = $5 AND attempt = $6 AND outcome = ''`,
	ReportJob: `UPDATE plan_hosts SET outcome = $1, result = $2, reported_at = $3 WHERE plan_id = $4 AND host_id = $5 AND attempt = $6 AND attempt > 0 AND outcome = ''`,
	Pending: `SELECT ph.plan_id, ph.job FROM plan_hosts ph JOIN plans p ON p.id = ph.plan_id
		WHERE ph.host_id = $1 AND ph.job <> '' AND ph.outcome = '' AND (p.machine_state NOT IN ('halted', 'aborted') OR ph.revert = 1) ORDER BY ph.dispatch_seq`,
	DispatchedSince: `SELECT host_id, dispatch_seq FROM plan_hosts WHERE dispatch_seq > $1 AND outcome = ''`,
	SeeUpdate:       `INSERT INTO update_releases(ecosystem, name, version, first_seen) VALUES($1,$2,$3,$4) ON CONFLICT DO NOTHING`,
	Released:        `SELECT name, version, first_seen FROM update_releases WHERE ecosystem = $1`,
	Notifications:   `SELECT ` + rolloutsql.NotificationColumns + ` FROM notifications ORDER BY id DESC LIMIT $1`,
	NotificationsOf: `SELECT ` + rolloutsql.NotificationColumns + ` FROM notifications WHERE subject = $1 ORDER BY id DESC LIMIT $2`,
	Due:             `SELECT ` + rolloutsql.NotificationColumns + ` FROM notifications WHERE delivered_at = 0 AND failed_at = 0 AND next_at <= $1 ORDER BY id LIMIT $2`,
	Delivered:       `UPDATE notifications SET attempts = attempts + 1, last_status = $1, last_error = $2, delivered_at = $3 WHERE id = $4`,
	Failed:          `UPDATE notifications SET attempts = attempts + 1, last_status = $1, last_error = $2, failed_at = $3 WHERE id = $4`,
	Retry:           `UPDATE notifications SET attempts = attempts + 1, last_status = $1, last_error = $2, next_at = $3 WHERE id = $4`,
}

// scheduleDialect is PostgreSQL's SQL for schedule runs and pauses.
var scheduleDialect = &rolloutsql.ScheduleDialect{
	InsertRun:   `INSERT INTO schedule_runs(schedule, opening, plan_id, created_at) VALUES($1,$2,$3,$4) ON CONFLICT DO NOTHING`,
	Ran:         `SELECT plan_id FROM schedule_runs WHERE schedule = $1 AND opening = $2`,
	Runs:        `SELECT opening, plan_id, created_at FROM schedule_runs WHERE schedule = $1 ORDER BY created_at DESC, opening LIMIT $2`,
	InsertPause: `INSERT INTO schedule_pauses(schedule, reason, paused_by, paused_at) VALUES($1,$2,$3,$4) ON CONFLICT DO NOTHING`,
	DeletePause: `DELETE FROM schedule_pauses WHERE schedule = $1`,
	Ended:       `SELECT id FROM plans WHERE machine_state IN ('completed', 'aborted') AND updated_at >= $1 ORDER BY created_at`,
}
