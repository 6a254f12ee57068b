-- +goose Up
-- Findings per host with their history: closed findings keep the time they
-- were remediated.
CREATE TABLE host_findings (
    id            BIGSERIAL PRIMARY KEY,
    host_id       TEXT NOT NULL REFERENCES hosts(id) ON DELETE CASCADE,
    ecosystem     TEXT NOT NULL,
    package       TEXT NOT NULL,
    vulnerability TEXT NOT NULL,
    version       TEXT NOT NULL,
    priority      TEXT NOT NULL,
    fixed         TEXT NOT NULL,
    first_seen    BIGINT NOT NULL, -- unix nanoseconds
    remediated_at BIGINT NOT NULL  -- unix nanoseconds; 0 while open
);
CREATE INDEX host_findings_open ON host_findings(host_id, remediated_at);

-- +goose Down
DROP TABLE host_findings;
