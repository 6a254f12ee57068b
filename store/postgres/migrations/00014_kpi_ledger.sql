-- +goose Up
-- The exposure ledger: one interval per (asset, vulnerability, package)
-- for each time it was exposed (open): from its first sight or its reopen
-- to its close, with why it closed (remediated, accepted, not_affected).
-- Triggers on host_findings and finding_events keep it in step with the
-- findings whoever writes them; the rows outlive the findings (a deleted
-- host keeps its past). KPIs and "as of DATE" views read it (package kpi).
CREATE TABLE exposure_ledger (
    id            BIGSERIAL PRIMARY KEY,
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
    reopen_of     BIGINT NOT NULL DEFAULT 0   -- the interval of the same key before this one
);
CREATE INDEX exposure_ledger_open_finding ON exposure_ledger(finding_id) WHERE closed_at = 0;
CREATE INDEX exposure_ledger_key ON exposure_ledger(host_id, ecosystem, package, vulnerability);
CREATE INDEX exposure_ledger_closed ON exposure_ledger(closed_at);
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
INSERT INTO exposure_ledger(finding_id, host_id, ecosystem, package, vulnerability, priority, cycle, fixed, opened_at, due, closed_at, close_reason)
SELECT f.id, f.host_id, f.ecosystem, f.package, f.vulnerability, f.priority, f.cycle, f.fixed, s.at, f.due,
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
ORDER BY f.host_id, f.ecosystem, f.package, f.vulnerability, s.at, s.ev;
UPDATE exposure_ledger SET reopen_of = COALESCE((SELECT MAX(p.id) FROM exposure_ledger p WHERE p.host_id = exposure_ledger.host_id
    AND p.ecosystem = exposure_ledger.ecosystem AND p.package = exposure_ledger.package AND p.vulnerability = exposure_ledger.vulnerability
    AND p.id < exposure_ledger.id), 0);
-- backfill end

-- +goose StatementBegin
CREATE FUNCTION exposure_open() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO exposure_ledger(finding_id, host_id, ecosystem, package, vulnerability, priority, cycle, fixed, opened_at, due, closed_at, close_reason, reopen_of)
    VALUES (NEW.id, NEW.host_id, NEW.ecosystem, NEW.package, NEW.vulnerability, NEW.priority, NEW.cycle, NEW.fixed, NEW.first_seen, NEW.due,
        CASE WHEN NEW.state = 'open' THEN 0 ELSE NEW.first_seen END,
        CASE WHEN NEW.state = 'open' THEN '' ELSE NEW.state END,
        COALESCE((SELECT MAX(id) FROM exposure_ledger WHERE host_id = NEW.host_id AND ecosystem = NEW.ecosystem AND package = NEW.package AND vulnerability = NEW.vulnerability), 0));
    RETURN NULL;
END $$;
-- +goose StatementEnd
CREATE TRIGGER exposure_open AFTER INSERT ON host_findings FOR EACH ROW EXECUTE FUNCTION exposure_open();
-- +goose StatementBegin
CREATE FUNCTION exposure_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.remediated_at = 0 AND NEW.remediated_at <> 0 THEN
        UPDATE exposure_ledger SET closed_at = NEW.remediated_at, close_reason = 'remediated' WHERE finding_id = NEW.id AND closed_at = 0;
    END IF;
    IF OLD.priority <> NEW.priority OR OLD.due <> NEW.due OR OLD.fixed <> NEW.fixed OR OLD.cycle <> NEW.cycle THEN
        UPDATE exposure_ledger SET priority = NEW.priority, due = NEW.due, fixed = NEW.fixed, cycle = NEW.cycle WHERE finding_id = NEW.id AND closed_at = 0;
    END IF;
    RETURN NULL;
END $$;
-- +goose StatementEnd
CREATE TRIGGER exposure_updated AFTER UPDATE ON host_findings FOR EACH ROW
    WHEN (OLD.remediated_at <> NEW.remediated_at OR OLD.priority <> NEW.priority OR OLD.due <> NEW.due OR OLD.fixed <> NEW.fixed OR OLD.cycle <> NEW.cycle)
    EXECUTE FUNCTION exposure_updated();
-- +goose StatementBegin
CREATE FUNCTION exposure_state() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.state_from = 'open' THEN
        UPDATE exposure_ledger SET closed_at = NEW.at, close_reason = NEW.state_to WHERE finding_id = NEW.finding_id AND closed_at = 0;
    END IF;
    IF NEW.state_to = 'open' THEN
        INSERT INTO exposure_ledger(finding_id, host_id, ecosystem, package, vulnerability, priority, cycle, fixed, opened_at, due, closed_at, close_reason, reopen_of)
        SELECT f.id, f.host_id, f.ecosystem, f.package, f.vulnerability, f.priority, f.cycle, f.fixed, NEW.at, f.due, 0, '',
            COALESCE((SELECT MAX(l.id) FROM exposure_ledger l WHERE l.host_id = f.host_id AND l.ecosystem = f.ecosystem AND l.package = f.package AND l.vulnerability = f.vulnerability), 0)
        FROM host_findings f WHERE f.id = NEW.finding_id AND f.remediated_at = 0;
    END IF;
    RETURN NULL;
END $$;
-- +goose StatementEnd
CREATE TRIGGER exposure_state AFTER INSERT ON finding_events FOR EACH ROW WHEN (NEW.state_from <> NEW.state_to) EXECUTE FUNCTION exposure_state();
-- +goose StatementBegin
CREATE FUNCTION host_gap() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO host_gaps(host_id, from_at, to_at) VALUES (NEW.id, OLD.last_seen, NEW.last_seen) ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;
-- +goose StatementEnd
CREATE TRIGGER host_gap AFTER UPDATE OF last_seen ON hosts FOR EACH ROW
    WHEN (OLD.last_seen > 0 AND NEW.last_seen - OLD.last_seen >= 900000000000) EXECUTE FUNCTION host_gap();

-- +goose Down
DROP TRIGGER host_gap ON hosts;
DROP TRIGGER exposure_state ON finding_events;
DROP TRIGGER exposure_updated ON host_findings;
DROP TRIGGER exposure_open ON host_findings;
DROP FUNCTION host_gap();
DROP FUNCTION exposure_state();
DROP FUNCTION exposure_updated();
DROP FUNCTION exposure_open();
DROP TABLE kpi_snapshots;
DROP TABLE host_gaps;
DROP TABLE exposure_ledger;
