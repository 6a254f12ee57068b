-- +goose Up
-- What agents report: host facts, the package manager's available updates,
-- enrollment and clone flags; due dates and severities of findings.
ALTER TABLE hosts ADD COLUMN facts TEXT NOT NULL DEFAULT '{}';        -- JSON fleet.Facts
ALTER TABLE hosts ADD COLUMN enrolled_at BIGINT NOT NULL DEFAULT 0;   -- unix nanoseconds
ALTER TABLE hosts ADD COLUMN clone_of TEXT NOT NULL DEFAULT '';       -- another host with the same machine-id
ALTER TABLE hosts ADD COLUMN updates_hash TEXT NOT NULL DEFAULT '';
ALTER TABLE hosts ADD COLUMN updates TEXT NOT NULL DEFAULT '[]';      -- JSON []scan.Update
ALTER TABLE hosts ADD COLUMN updates_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE hosts ADD COLUMN open_counts TEXT NOT NULL DEFAULT '{}';  -- JSON {"P1": n, …}, kept by every findings sync
ALTER TABLE host_findings ADD COLUMN due BIGINT NOT NULL DEFAULT 0;   -- unix nanoseconds; 0: no SLA
ALTER TABLE host_findings ADD COLUMN severity TEXT NOT NULL DEFAULT '';
CREATE INDEX host_findings_open_package ON host_findings(host_id, package, ecosystem) WHERE remediated_at = 0;
-- The partial index serves every look-up of a host's open findings. There
-- is no index by vulnerability: every host would touch it in hundreds of
-- places at each ingest (a quarter of ingest time on SQLite); looking one
-- vulnerability up across the fleet scans the findings instead.
-- Open findings by priority: the default order of the findings list (new
-- rows land at the end of one of four runs, so the index is cheap to keep).
CREATE INDEX host_findings_open_priority ON host_findings(priority, id) WHERE remediated_at = 0;
DROP INDEX host_findings_open;

-- +goose Down
DROP INDEX host_findings_open_priority;
CREATE INDEX host_findings_open ON host_findings(host_id, remediated_at);
DROP INDEX host_findings_open_package;
ALTER TABLE host_findings DROP COLUMN severity;
ALTER TABLE host_findings DROP COLUMN due;
ALTER TABLE hosts DROP COLUMN open_counts;
ALTER TABLE hosts DROP COLUMN updates_count;
ALTER TABLE hosts DROP COLUMN updates;
ALTER TABLE hosts DROP COLUMN updates_hash;
ALTER TABLE hosts DROP COLUMN clone_of;
ALTER TABLE hosts DROP COLUMN enrolled_at;
ALTER TABLE hosts DROP COLUMN facts;
