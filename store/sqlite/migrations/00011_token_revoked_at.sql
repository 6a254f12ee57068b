-- +goose Up
-- When a token was revoked (unix nanoseconds; 0: not revoked, or revoked
-- before this was kept), so a second revocation says when the first was.
ALTER TABLE tokens ADD COLUMN revoked_at BIGINT NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE tokens DROP COLUMN revoked_at;
