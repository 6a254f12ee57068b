-- +goose Up
-- PatchSchedules: one run per (schedule, window opening) — the key that
-- keeps restarts, replicas and leader changes from planning an opening
-- twice (plan_id is '' when the opening planned nothing) — and the
-- schedules people paused, with why.
CREATE TABLE schedule_runs (
    schedule   TEXT NOT NULL,
    opening    TEXT NOT NULL,   -- WINDOW@START (RFC 3339), or emergency:DIGEST
    plan_id    TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (schedule, opening)
);
CREATE TABLE schedule_pauses (
    schedule  TEXT PRIMARY KEY,
    reason    TEXT NOT NULL,
    paused_by TEXT NOT NULL,
    paused_at BIGINT NOT NULL
);

-- +goose Down
DROP TABLE schedule_pauses;
DROP TABLE schedule_runs;
