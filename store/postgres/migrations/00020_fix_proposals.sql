-- +goose Up
-- Fix proposals (package remedy, docs/fix.md): a service's fix branch and
-- its merge request, one row per (service, branch), updated by later
-- fixes of the same group.
CREATE TABLE fix_proposals (
    id BIGSERIAL PRIMARY KEY,
    service   TEXT NOT NULL,
    branch    TEXT NOT NULL,
    forge     TEXT NOT NULL,           -- github, gitlab or none
    mr_number BIGINT NOT NULL,         -- 0 without a forge
    mr_url    TEXT NOT NULL,
    commit_id TEXT NOT NULL,
    state     TEXT NOT NULL,           -- proposed, merged, deployed, closed
    created   BIGINT NOT NULL,         -- unix nanoseconds
    updated   BIGINT NOT NULL,
    merged    BIGINT NOT NULL,         -- 0: not yet
    deployed  BIGINT NOT NULL,
    UNIQUE (service, branch)
);

-- The findings each proposal closes, and when an inventory of the service
-- showed each fixed.
CREATE TABLE fix_proposal_fixes (
    proposal_id   BIGINT NOT NULL REFERENCES fix_proposals (id) ON DELETE CASCADE,
    ecosystem     TEXT NOT NULL,
    package       TEXT NOT NULL,
    from_version  TEXT NOT NULL,
    to_version    TEXT NOT NULL,
    vulnerability TEXT NOT NULL,
    priority      INTEGER NOT NULL,
    due           BIGINT NOT NULL,
    deployed      BIGINT NOT NULL,
    PRIMARY KEY (proposal_id, ecosystem, package, vulnerability)
);

-- +goose Down
DROP TABLE fix_proposal_fixes;
DROP TABLE fix_proposals;
