-- +goose Up
-- Policy as code: the applied documents (one row per kind and name, the
-- current version) and every version ever applied or deleted.
CREATE TABLE policy_documents (
    kind       TEXT NOT NULL,
    name       TEXT NOT NULL,
    version    INTEGER NOT NULL,
    doc        TEXT NOT NULL,      -- policy.Canonical JSON
    applied_at BIGINT NOT NULL,    -- unix nanoseconds
    applied_by TEXT NOT NULL,
    PRIMARY KEY (kind, name)
);
CREATE TABLE policy_versions (
    seq        BIGSERIAL PRIMARY KEY,
    kind       TEXT NOT NULL,
    name       TEXT NOT NULL,
    version    INTEGER NOT NULL,
    action     TEXT NOT NULL,      -- created, changed, deleted
    doc        TEXT NOT NULL,      -- '' when deleted
    applied_at BIGINT NOT NULL,
    applied_by TEXT NOT NULL
);
CREATE INDEX policy_versions_doc ON policy_versions(kind, name, version);
-- The policy revision (policy_versions.seq) the findings were last all
-- decided with: the leader decides them again when it moves.
CREATE TABLE policy_decided (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    revision BIGINT NOT NULL
);
INSERT INTO policy_decided(id, revision) VALUES (1, 0);

-- The decision of every finding: its state (open, accepted, not_affected),
-- the exception that decided it, its lane, and the inputs a new policy,
-- label or exploitation evidence re-decides it from without a rematch.
ALTER TABLE host_findings ADD COLUMN state TEXT NOT NULL DEFAULT 'open';
ALTER TABLE host_findings ADD COLUMN exception TEXT NOT NULL DEFAULT '';
ALTER TABLE host_findings ADD COLUMN lane TEXT NOT NULL DEFAULT '';
ALTER TABLE host_findings ADD COLUMN exploitation TEXT NOT NULL DEFAULT 'none';
ALTER TABLE host_findings ADD COLUMN automatable BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE host_findings ADD COLUMN impact TEXT NOT NULL DEFAULT 'partial';
ALTER TABLE host_findings ADD COLUMN cycle TEXT NOT NULL DEFAULT 'system';
ALTER TABLE host_findings ADD COLUMN kev_due BIGINT NOT NULL DEFAULT 0;
-- Open findings by due date: the overdue ones come first in the default
-- order, and sort=due.
CREATE INDEX host_findings_open_due ON host_findings(due) WHERE remediated_at = 0;

-- Every change of a finding's priority or state, with its cause.
CREATE TABLE finding_events (
    id            BIGSERIAL PRIMARY KEY,
    finding_id    BIGINT NOT NULL REFERENCES host_findings(id) ON DELETE CASCADE,
    at            BIGINT NOT NULL,
    priority_from TEXT NOT NULL,
    priority_to   TEXT NOT NULL,
    state_from    TEXT NOT NULL,
    state_to      TEXT NOT NULL,
    cause         TEXT NOT NULL,
    reasons       TEXT NOT NULL    -- JSON array: the decision's reasons after the change
);
CREATE INDEX finding_events_finding ON finding_events(finding_id, at);

-- +goose Down
DROP TABLE finding_events;
DROP INDEX host_findings_open_due;
ALTER TABLE host_findings DROP COLUMN kev_due;
ALTER TABLE host_findings DROP COLUMN cycle;
ALTER TABLE host_findings DROP COLUMN impact;
ALTER TABLE host_findings DROP COLUMN automatable;
ALTER TABLE host_findings DROP COLUMN exploitation;
ALTER TABLE host_findings DROP COLUMN lane;
ALTER TABLE host_findings DROP COLUMN exception;
ALTER TABLE host_findings DROP COLUMN state;
DROP TABLE policy_decided;
DROP TABLE policy_versions;
DROP TABLE policy_documents;
