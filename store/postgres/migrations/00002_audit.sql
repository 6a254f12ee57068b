-- +goose Up
-- The tamper-evident audit log (see package audit): one row per state
-- change, each hashing the one before.
CREATE TABLE audit_log (
    seq    BIGINT PRIMARY KEY,
    time   TEXT NOT NULL,
    actor  TEXT NOT NULL,
    action TEXT NOT NULL,
    object TEXT NOT NULL,
    digest TEXT NOT NULL,
    prev   TEXT NOT NULL,
    hash   TEXT NOT NULL
);

-- +goose Down
DROP TABLE audit_log;
