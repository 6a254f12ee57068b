-- +goose Up
-- Rollouts: the server's job-signing key, patch plans and the rollouts
-- they become (one row each), every host's job in them, when each update
-- was first seen in the fleet (its release age), and webhook deliveries.
CREATE TABLE server_keys (
    name        TEXT PRIMARY KEY,
    private_key TEXT NOT NULL,     -- base64 Ed25519 seed
    created_at  BIGINT NOT NULL
);
CREATE TABLE plans (
    id            TEXT PRIMARY KEY,
    state         TEXT NOT NULL,   -- awaiting_approval, approved, rejected, started
    plan          TEXT NOT NULL,   -- rollout.Plan JSON without its hosts
    machine       TEXT NOT NULL DEFAULT '',  -- rollout.Machine JSON without its jobs, once started
    machine_state TEXT NOT NULL DEFAULT '',
    version       BIGINT NOT NULL, -- every change moves it (compare and swap)
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
CREATE INDEX plans_active ON plans(machine_state) WHERE machine_state IN ('running', 'baking', 'awaiting_promotion', 'paused');
CREATE TABLE plan_hosts (
    plan_id      TEXT NOT NULL,
    host_id      TEXT NOT NULL,
    seq          INTEGER NOT NULL, -- dispatch order
    ring         INTEGER NOT NULL,
    host         TEXT NOT NULL,    -- rollout.PlanHost JSON
    attempt      INTEGER NOT NULL DEFAULT 0,
    started_at   BIGINT NOT NULL DEFAULT 0,
    outcome      TEXT NOT NULL DEFAULT '',
    job          TEXT NOT NULL DEFAULT '',   -- the signed job, once dispatched
    dispatch_seq BIGINT NOT NULL DEFAULT 0,  -- orders dispatches fleet-wide
    result       TEXT NOT NULL DEFAULT '',   -- the agent's report
    reported_at  BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (plan_id, host_id)
);
CREATE INDEX plan_hosts_pending ON plan_hosts(host_id) WHERE job <> '' AND outcome = '';
CREATE INDEX plan_hosts_dispatch ON plan_hosts(dispatch_seq) WHERE dispatch_seq > 0;
CREATE TABLE update_releases (
    ecosystem  TEXT NOT NULL,
    name       TEXT NOT NULL,
    version    TEXT NOT NULL,
    first_seen BIGINT NOT NULL,
    PRIMARY KEY (ecosystem, name, version)
);
CREATE TABLE notifications (
    id           BIGSERIAL PRIMARY KEY,
    event        TEXT NOT NULL,    -- plan.awaiting_approval, rollout.ring_promoted, rollout.halted, rollout.completed
    subject      TEXT NOT NULL,    -- the plan
    target       TEXT NOT NULL,    -- the webhook's name
    payload      TEXT NOT NULL,    -- the event's JSON
    created_at   BIGINT NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_at      BIGINT NOT NULL,
    delivered_at BIGINT NOT NULL DEFAULT 0,
    failed_at    BIGINT NOT NULL DEFAULT 0,  -- gave up
    last_status  INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT NOT NULL DEFAULT ''
);
CREATE INDEX notifications_due ON notifications(next_at) WHERE delivered_at = 0 AND failed_at = 0;

-- +goose Down
DROP TABLE notifications;
DROP TABLE update_releases;
DROP TABLE plan_hosts;
DROP TABLE plans;
DROP TABLE server_keys;
