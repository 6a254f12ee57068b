-- +goose Up
-- Credentials (see package auth): only the SHA-256 of each secret is kept.
CREATE TABLE tokens (
    id        TEXT PRIMARY KEY,
    hash      TEXT NOT NULL UNIQUE,
    kind      TEXT NOT NULL,
    role      TEXT NOT NULL,
    name      TEXT NOT NULL,
    created   BIGINT NOT NULL,  -- unix nanoseconds
    expires   BIGINT NOT NULL,  -- unix nanoseconds; 0: never
    uses_left INTEGER NOT NULL, -- enrollment tokens; -1: unlimited
    revoked   BOOLEAN NOT NULL,
    subject   TEXT NOT NULL
);

-- +goose Down
DROP TABLE tokens;
