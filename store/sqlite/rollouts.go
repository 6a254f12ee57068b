package sqlite

import (
	"github.com/patchbay/patchbay/store/internal/policysql"
	"github.com/patchbay/patchbay/store/internal/rolloutsql"
)

// policyDialect is SQLite's SQL for policy documents.
var policyDialect = &policysql.Dialect{
	History:        `SELECT kind, name, version, action, doc, applied_at, applied_by FROM policy_versions WHERE kind = ? ORDER BY seq`,
	HistoryOf:      `SELECT kind, name, version, action, doc, applied_at, applied_by FROM policy_versions WHERE kind = ? AND name = ? ORDER BY seq`,
	InsertDocument: `INSERT INTO policy_documents(kind, name, version, doc, applied_at, applied_by) VALUES(?,?,?,?,?,?) ON CONFLICT DO NOTHING`,
	UpdateDocument: `UPDATE policy_documents SET version = ?, doc = ?, applied_at = ?, applied_by = ? WHERE kind = ? AND name = ? AND version = ?`,
	DeleteDocument: `DELETE FROM policy_documents WHERE kind = ? AND name = ? AND version = ?`,
	InsertVersion:  `INSERT INTO policy_versions(kind, name, version, action, doc, applied_at, applied_by) VALUES(?,?,?,?,?,?,?)`,
	SetDecided:     `UPDATE policy_decided SET revision = ? WHERE id = 1 AND revision < ?`,
}

// rolloutDialect is SQLite's SQL for plans, rollouts and notifications.
var rolloutDialect = &rolloutsql.Dialect{
	Key:                `SELECT private_key FROM server_keys WHERE name = ?`,
	InsertKey:          `INSERT INTO server_keys(name, private_key, created_at) VALUES(?,?,?) ON CONFLICT DO NOTHING`,
	SwapKey:            `UPDATE server_keys SET private_key = ? WHERE name = ? AND private_key = ?`,
	InsertNotification: `INSERT INTO notifications(event, subject, target, payload, created_at, next_at) VALUES(?,?,?,?,?,?)`,
	InsertPlan:         `INSERT INTO plans(id, state, plan, version, created_at, updated_at) VALUES(?,?,?,1,?,?)`,
	InsertPlanHost:     `INSERT INTO plan_hosts(plan_id, host_id, seq, ring, host) VALUES(?,?,?,?,?)`,
	Plan:               `SELECT plan, machine, version FROM plans WHERE id = ?`,
	Plans:              `SELECT plan, machine, version FROM plans ORDER BY created_at DESC, id LIMIT ?`,
	Hosts:              `SELECT host, attempt, started_at, outcome, result, reported_at FROM plan_hosts WHERE plan_id = ? ORDER BY seq`,
	Jobs:               `SELECT host_id, ring, attempt, started_at, outcome FROM plan_hosts WHERE plan_id = ? ORDER BY seq`,
	UpdatePlan:         `UPDATE plans SET state = ?, plan = ?, machine = ?, machine_state = ?, version = version + 1, updated_at = ? WHERE id = ? AND version = ?`,
	StepPlan:           `UPDATE plans SET machine = ?, machine_state = ?, version = version + 1, updated_at = ? WHERE id = ? AND version = ?`,
	StartJob:           `UPDATE plan_hosts SET attempt = ?, started_at = ?, job = ?, dispatch_seq = ? WHERE plan_id = ? AND host_id = ? AND attempt = 0 AND outcome = ''`,
	Alert: rolloutsql.AlertDialect{
		UpsertAlert: `INSERT INTO alerts(fingerprint, starts_at, ends_at, status, name, labels, host_id, hostname, plan_id, job_started, received_at) VALUES(?,?,?,?,?,?,?,?,?,?,?)
			ON CONFLICT (fingerprint, starts_at) DO UPDATE SET ends_at = excluded.ends_at, status = excluded.status, received_at = excluded.received_at`,
		AlertsOfHost: `SELECT id, fingerprint, starts_at, ends_at, status, name, labels, host_id, hostname, plan_id, job_started, received_at FROM alerts WHERE host_id = ? AND starts_at >= ? ORDER BY starts_at DESC, id DESC LIMIT ?`,
		AlertsOfPlan: `SELECT id, fingerprint, starts_at, ends_at, status, name, labels, host_id, hostname, plan_id, job_started, received_at FROM alerts WHERE plan_id = ? AND starts_at >= ? ORDER BY starts_at DESC, id DESC LIMIT ?`,
		Alerts:       `SELECT id, fingerprint, starts_at, ends_at, status, name, labels, host_id, hostname, plan_id, job_started, received_at FROM alerts WHERE starts_at >= ? ORDER BY starts_at DESC, id DESC LIMIT ?`,
		HostJobs:     `SELECT plan_id, host_id, attempt, started_at, outcome, reported_at, result, revert FROM plan_hosts WHERE host_id = ? AND started_at >= ? AND attempt > 0 ORDER BY started_at`,
		PlanJobs:     `SELECT plan_id, host_id, attempt, started_at, outcome, reported_at, result, revert FROM plan_hosts WHERE plan_id = ? AND attempt > 0 ORDER BY started_at`,
	},
	RevertJob: `UPDATE plan_hosts SET attempt = ?, job = ?, dispatch_seq = ?, outcome = '', revert = 1 WHERE plan_id = ? AND host_id = ? AND attempt = ? - 1 AND revert = 0 AND outcome IN ('succeeded', 'succeeded_reboot_required')`,
	SettleJob: `UPDATE plan_hosts SET outcome = ?, attempt = ?, reported_at = ? WHERE plan_id = ? AND host_id = ? AND attempt = ? AND outcome = ''`,
	ReportJob: `UPDATE plan_hosts SET outcome = ?, result = ?, reported_at = ? WHERE plan_id = ? AND host_id = ? AND attempt = ? AND attempt > 0 AND outcome = ''`,
	Pending: `SELECT ph.plan_id, ph.job FROM plan_hosts ph JOIN plans p ON p.id = ph.plan_id
		WHERE ph.host_id = ? AND ph.job <> '' AND ph.outcome = '' AND (p.machine_state NOT IN ('halted', 'aborted') OR ph.revert = 1) ORDER BY ph.dispatch_seq`,
	DispatchedSince: `SELECT host_id, dispatch_seq FROM plan_hosts WHERE dispatch_seq > ? AND outcome = ''`,
	SeeUpdate:       `INSERT INTO update_releases(ecosystem, name, version, first_seen) VALUES(?,?,?,?) ON CONFLICT DO NOTHING`,
	Released:        `SELECT name, version, first_seen FROM update_releases WHERE ecosystem = ?`,
	Notifications:   `SELECT ` + rolloutsql.NotificationColumns + ` FROM notifications ORDER BY id DESC LIMIT ?`,
	NotificationsOf: `SELECT ` + rolloutsql.NotificationColumns + ` FROM notifications WHERE subject = ? ORDER BY id DESC LIMIT ?`,
	Due:             `SELECT ` + rolloutsql.NotificationColumns + ` FROM notifications WHERE delivered_at = 0 AND failed_at = 0 AND next_at <= ? ORDER BY id LIMIT ?`,
	Delivered:       `UPDATE notifications SET attempts = attempts + 1, last_status = ?, last_error = ?, delivered_at = ? WHERE id = ?`,
	Failed:          `UPDATE notifications SET attempts = attempts + 1, last_status = ?, last_error = ?, failed_at = ? WHERE id = ?`,
	Retry:           `UPDATE notifications SET attempts = attempts + 1, last_status = ?, last_error = ?, next_at = ? WHERE id = ?`,
}

// scheduleDialect is SQLite's SQL for schedule runs and pauses.
var scheduleDialect = &rolloutsql.ScheduleDialect{
	InsertRun:   `INSERT INTO schedule_runs(schedule, opening, plan_id, created_at) VALUES(?,?,?,?) ON CONFLICT DO NOTHING`,
	Ran:         `SELECT plan_id FROM schedule_runs WHERE schedule = ? AND opening = ?`,
	Runs:        `SELECT opening, plan_id, created_at FROM schedule_runs WHERE schedule = ? ORDER BY created_at DESC, opening LIMIT ?`,
	InsertPause: `INSERT INTO schedule_pauses(schedule, reason, paused_by, paused_at) VALUES(?,?,?,?) ON CONFLICT DO NOTHING`,
	DeletePause: `DELETE FROM schedule_pauses WHERE schedule = ?`,
	Ended:       `SELECT id FROM plans WHERE machine_state IN ('completed', 'aborted') AND updated_at >= ? ORDER BY created_at`,
}
