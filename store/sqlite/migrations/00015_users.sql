-- +goose Up
-- People who log in to the web UI (package auth): local users keep an
-- argon2id hash of their password; single sign-on users none.
CREATE TABLE users (
    name     TEXT PRIMARY KEY,
    role     TEXT NOT NULL,
    password TEXT NOT NULL,   -- PHC string; '' for single sign-on users
    source   TEXT NOT NULL,   -- local or oidc
    created  BIGINT NOT NULL  -- unix nanoseconds
);

-- Their web sessions, by the SHA-256 of the cookie's secret.
CREATE TABLE sessions (
    hash      TEXT PRIMARY KEY,
    username  TEXT NOT NULL,
    role      TEXT NOT NULL,
    csrf      TEXT NOT NULL,
    created   BIGINT NOT NULL,  -- unix nanoseconds
    last_seen BIGINT NOT NULL,
    expires   BIGINT NOT NULL   -- the absolute end
);
CREATE INDEX sessions_username ON sessions (username);

-- The web UI's findings lists walk a priority's open findings by due date
-- or first sight, a page at a time (the planner otherwise reads every open
-- finding of the priority and sorts them).
CREATE INDEX host_findings_open_priority_due ON host_findings (priority, due, id) WHERE remediated_at = 0;
CREATE INDEX host_findings_open_priority_seen ON host_findings (priority, first_seen, id) WHERE remediated_at = 0;

-- +goose Down
DROP INDEX host_findings_open_priority_seen;
DROP INDEX host_findings_open_priority_due;
DROP TABLE sessions;
DROP TABLE users;
