-- +goose Up
-- Scorecard results (package scorecard): a row for each evaluation that
-- changed a (scorecard, service)'s result, kept as its history.
CREATE TABLE scorecard_scores (
    id        INTEGER PRIMARY KEY,
    scorecard TEXT NOT NULL,
    entity    TEXT NOT NULL,
    at        BIGINT NOT NULL,    -- unix nanoseconds
    level     TEXT NOT NULL,
    score     REAL NOT NULL,
    result    TEXT NOT NULL       -- the Result's JSON (every rule)
);
CREATE INDEX scorecard_scores_entity ON scorecard_scores (scorecard, entity, id);
CREATE INDEX scorecard_scores_at ON scorecard_scores (scorecard, at);

-- Custom facts pushed for services (from CI), every push kept.
CREATE TABLE scorecard_facts (
    id      INTEGER PRIMARY KEY,
    service TEXT NOT NULL,
    name    TEXT NOT NULL,
    value   TEXT NOT NULL,
    at      BIGINT NOT NULL,
    actor   TEXT NOT NULL
);
CREATE INDEX scorecard_facts_service ON scorecard_facts (service, name, id);

-- Notices queued once (an initiative's start, each reminder per team).
CREATE TABLE scorecard_notices (
    key TEXT PRIMARY KEY,
    at  BIGINT NOT NULL
);

-- Marks: what changed since the leader last scored (inventory, findings,
-- policy, rollout results, pushed facts); the leader scores when there
-- are marks and deletes those it has seen.
CREATE TABLE scorecard_marks (
    id     INTEGER PRIMARY KEY,
    reason TEXT NOT NULL,
    at     BIGINT NOT NULL
);

-- +goose Down
DROP TABLE scorecard_marks;
DROP TABLE scorecard_notices;
DROP TABLE scorecard_facts;
DROP TABLE scorecard_scores;
