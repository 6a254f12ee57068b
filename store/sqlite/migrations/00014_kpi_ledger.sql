-- +goose Up
-- The exposure ledger: one interval per (asset, vulnerability, package)
-- for each time it was exposed (open): from its first sight or its reopen
-- to its close, with why it closed (remediated, accepted, not_affected).
-- Triggers on host_findings and finding_events keep it in step with the
-- findings whoever writes them; the rows outlive the findings (a deleted
-- host keeps its past). KPIs and "as of DATE" views read it (package kpi).
CREATE TABLE exposure_ledger (
    id            INTEGER NOT NULL,  -- assigned in order: MAX(id) + 1
    finding_id    BIGINT NOT NULL,   -- host_findings.id (no reference: the ledger keeps the past)
    host_id       TEXT NOT NULL,
    ecosystem     TEXT NOT NULL,
    package       TEXT NOT NULL,
    vulnerability TEXT NOT NULL,
    priority      TEXT NOT NULL,     -- the finding's last while the interval was open
    cycle         TEXT NOT NULL,
    fixed         TEXT NOT NULL,     -- '' when no fix exists
    opened_at     BIGINT NOT NULL,   -- unix nanoseconds
    due           BIGINT NOT NULL,   -- 0: no SLA
    closed_at     BIGINT NOT NULL DEFAULT 0,  -- 0 while open
    close_reason  TEXT NOT NULL DEFAULT '',   -- remediated, accepted, not_affected
    reopen_of     BIGINT NOT NULL DEFAULT 0,  -- the interval of the same key before this one
    -- Clustered by close: what is open, and what closed after a date,
    -- are ranges of the table itself (the KPIs read them whole).
    PRIMARY KEY (closed_at, id)
) WITHOUT ROWID;
CREATE UNIQUE INDEX exposure_ledger_id ON exposure_ledger(id);
CREATE INDEX exposure_ledger_open_finding ON exposure_ledger(finding_id) WHERE closed_at = 0;
CREATE INDEX exposure_ledger_key ON exposure_ledger(host_id, ecosystem, package, vulnerability);
CREATE INDEX exposure_ledger_due ON exposure_ledger(due) WHERE closed_at <> 0;

-- Check-in gaps of 15 minutes or more (a host's downtime is read from
-- them): written by a trigger on hosts.last_seen, whichever code moves it.
CREATE TABLE host_gaps (
    host_id TEXT NOT NULL,
    from_at BIGINT NOT NULL,  -- the last check-in before the gap
    to_at   BIGINT NOT NULL,  -- the check-in that ended it
    PRIMARY KEY (host_id, from_at)
);
CREATE INDEX host_gaps_to ON host_gaps(to_at);

-- Daily snapshots: per day (UTC midnight, unix nanoseconds) and group,
-- the counts of the fleet as it was; the snapshot job writes them and
-- prunes them, the ledger and the gaps past the retention.
CREATE TABLE kpi_snapshots (
    day      BIGINT NOT NULL,
    priority TEXT NOT NULL,
    cycle    TEXT NOT NULL,
    open     BIGINT NOT NULL,
    overdue  BIGINT NOT NULL,
    accepted BIGINT NOT NULL,
    hosts    BIGINT NOT NULL,   -- hosts with an open finding of the group
    PRIMARY KEY (day, priority, cycle)
);

-- backfill begin
-- The past, from what the store kept: every finding row starts an
-- interval at its first sight (closed at once when it was first seen
-- accepted or not affected), every event back to open starts another;
-- each open interval ends at the first event that moves the finding out
-- of open (closed with that state as its reason), else at its
-- remediation.
INSERT INTO exposure_ledger(id, finding_id, host_id, ecosystem, package, vulnerability, priority, cycle, fixed, opened_at, due, closed_at, close_reason)
SELECT ROW_NUMBER() OVER (ORDER BY f.host_id, f.ecosystem, f.package, f.vulnerability, s.at, s.ev), f.id, f.host_id, f.ecosystem, f.package, f.vulnerability, f.priority, f.cycle, f.fixed, s.at, f.due,
    CASE WHEN s.state <> 'open' THEN s.at
         WHEN s.close_ev IS NOT NULL THEN (SELECT e.at FROM finding_events e WHERE e.id = s.close_ev)
         ELSE f.remediated_at END,
    CASE WHEN s.state <> 'open' THEN s.state
         WHEN s.close_ev IS NOT NULL THEN (SELECT e.state_to FROM finding_events e WHERE e.id = s.close_ev)
         WHEN f.remediated_at <> 0 THEN 'remediated'
         ELSE '' END
FROM host_findings f JOIN (
    SELECT st.fid, st.at, st.ev, st.state,
        (SELECT MIN(e.id) FROM finding_events e WHERE e.finding_id = st.fid AND e.id > st.ev AND e.state_from = 'open' AND e.state_to <> 'open') AS close_ev
    FROM (
        SELECT f2.id AS fid, f2.first_seen AS at, 0 AS ev,
            COALESCE((SELECT e.state_from FROM finding_events e WHERE e.finding_id = f2.id AND e.state_from <> e.state_to ORDER BY e.id LIMIT 1), f2.state) AS state
        FROM host_findings f2
        UNION ALL
        SELECT e.finding_id, e.at, e.id, 'open' FROM finding_events e WHERE e.state_to = 'open' AND e.state_from <> 'open'
    ) st
) s ON s.fid = f.id
ORDER BY 1;
UPDATE exposure_ledger SET reopen_of = COALESCE((SELECT MAX(p.id) FROM exposure_ledger p WHERE p.host_id = exposure_ledger.host_id
    AND p.ecosystem = exposure_ledger.ecosystem AND p.package = exposure_ledger.package AND p.vulnerability = exposure_ledger.vulnerability
    AND p.id < exposure_ledger.id), 0);
-- backfill end

-- +goose StatementBegin
CREATE TRIGGER exposure_open AFTER INSERT ON host_findings
BEGIN
    INSERT INTO exposure_ledger(id, finding_id, host_id, ecosystem, package, vulnerability, priority, cycle, fixed, opened_at, due, closed_at, close_reason, reopen_of)
    VALUES ((SELECT COALESCE(MAX(id), 0) + 1 FROM exposure_ledger), NEW.id, NEW.host_id, NEW.ecosystem, NEW.package, NEW.vulnerability, NEW.priority, NEW.cycle, NEW.fixed, NEW.first_seen, NEW.due,
        CASE WHEN NEW.state = 'open' THEN 0 ELSE NEW.first_seen END,
        CASE WHEN NEW.state = 'open' THEN '' ELSE NEW.state END,
        COALESCE((SELECT MAX(id) FROM exposure_ledger WHERE host_id = NEW.host_id AND ecosystem = NEW.ecosystem AND package = NEW.package AND vulnerability = NEW.vulnerability), 0));
END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER exposure_remediated AFTER UPDATE OF remediated_at ON host_findings
WHEN OLD.remediated_at = 0 AND NEW.remediated_at <> 0
BEGIN
    UPDATE exposure_ledger SET closed_at = NEW.remediated_at, close_reason = 'remediated' WHERE finding_id = NEW.id AND closed_at = 0;
END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER exposure_changed AFTER UPDATE OF priority, due, fixed, cycle ON host_findings
WHEN OLD.priority <> NEW.priority OR OLD.due <> NEW.due OR OLD.fixed <> NEW.fixed OR OLD.cycle <> NEW.cycle
BEGIN
    UPDATE exposure_ledger SET priority = NEW.priority, due = NEW.due, fixed = NEW.fixed, cycle = NEW.cycle WHERE finding_id = NEW.id AND closed_at = 0;
END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER exposure_state AFTER INSERT ON finding_events
WHEN NEW.state_from <> NEW.state_to
BEGIN
    UPDATE exposure_ledger SET closed_at = NEW.at, close_reason = NEW.state_to
        WHERE NEW.state_from = 'open' AND finding_id = NEW.finding_id AND closed_at = 0;
    INSERT INTO exposure_ledger(id, finding_id, host_id, ecosystem, package, vulnerability, priority, cycle, fixed, opened_at, due, closed_at, close_reason, reopen_of)
    SELECT (SELECT COALESCE(MAX(id), 0) + 1 FROM exposure_ledger), f.id, f.host_id, f.ecosystem, f.package, f.vulnerability, f.priority, f.cycle, f.fixed, NEW.at, f.due, 0, '',
        COALESCE((SELECT MAX(id) FROM exposure_ledger WHERE host_id = f.host_id AND ecosystem = f.ecosystem AND package = f.package AND vulnerability = f.vulnerability), 0)
    FROM host_findings f WHERE NEW.state_to = 'open' AND f.id = NEW.finding_id AND f.remediated_at = 0;
END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER host_gap AFTER UPDATE OF last_seen ON hosts
WHEN OLD.last_seen > 0 AND NEW.last_seen - OLD.last_seen >= 900000000000
BEGIN
    INSERT OR IGNORE INTO host_gaps(host_id, from_at, to_at) VALUES (NEW.id, OLD.last_seen, NEW.last_seen);
END;
-- +goose StatementEnd

-- +goose Down
DROP TRIGGER host_gap;
DROP TRIGGER exposure_state;
DROP TRIGGER exposure_changed;
DROP TRIGGER exposure_remediated;
DROP TRIGGER exposure_open;
DROP TABLE kpi_snapshots;
DROP TABLE host_gaps;
DROP TABLE exposure_ledger;
