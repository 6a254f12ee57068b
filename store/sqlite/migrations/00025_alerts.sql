-- +goose Up
-- Alerts Alertmanager sent to patchbay's receiver (POST /api/v1/alerts),
-- one row per alert occurrence (fingerprint, start), linked to the job
-- that preceded it on its host (plan_id, host_id, job_started; '' and 0
-- when none).
CREATE TABLE alerts (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    fingerprint TEXT NOT NULL,
    starts_at   BIGINT NOT NULL,   -- unix nanoseconds
    ends_at     BIGINT NOT NULL,   -- 0 while firing without an end
    status      TEXT NOT NULL,     -- firing or resolved
    name        TEXT NOT NULL,
    labels      TEXT NOT NULL,     -- JSON object
    host_id     TEXT NOT NULL,
    hostname    TEXT NOT NULL,
    plan_id     TEXT NOT NULL,
    job_started BIGINT NOT NULL,
    received_at BIGINT NOT NULL,
    UNIQUE (fingerprint, starts_at)
);
CREATE INDEX alerts_host ON alerts(host_id, starts_at);
CREATE INDEX alerts_plan ON alerts(plan_id, starts_at);
CREATE INDEX plan_hosts_host_started ON plan_hosts(host_id, started_at);

-- +goose Down
DROP INDEX plan_hosts_host_started;
DROP TABLE alerts;
