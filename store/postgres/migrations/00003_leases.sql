-- +goose Up
-- Leader leases (see package leader): one row per job that must run once.
-- term grows by one at every change of holder and fences the leader's writes.
CREATE TABLE leases (
    name       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    term       BIGINT NOT NULL,
    expires_at BIGINT NOT NULL -- unix nanoseconds
);

-- +goose Down
DROP TABLE leases;
