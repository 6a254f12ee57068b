-- +goose Up
-- The advisory index: one row per OSV record, its affected packages keyed for
-- look-up by (ecosystem, normalised name), and the exploitation data.
CREATE TABLE advisories (
    id         TEXT PRIMARY KEY,
    collection TEXT NOT NULL,          -- where it came from: "osv/Debian", "osv/local"
    modified   TEXT NOT NULL,          -- RFC 3339, from the record
    hash       BLOB NOT NULL,          -- SHA-256 of the record as imported
    doc        BLOB NOT NULL           -- advisory.Advisory as JSON
);
CREATE INDEX advisories_collection ON advisories(collection);

CREATE TABLE affected (
    advisory_id TEXT NOT NULL REFERENCES advisories(id) ON DELETE CASCADE,
    ecosystem   TEXT NOT NULL,
    name        TEXT NOT NULL
);
CREATE INDEX affected_key ON affected(ecosystem, name);
CREATE INDEX affected_advisory ON affected(advisory_id);

CREATE TABLE kev (
    cve        TEXT PRIMARY KEY,
    vendor     TEXT NOT NULL,
    product    TEXT NOT NULL,
    name       TEXT NOT NULL,
    date_added TEXT NOT NULL,
    due_date   TEXT NOT NULL,
    ransomware INTEGER NOT NULL
);

CREATE TABLE epss (
    cve         TEXT PRIMARY KEY,
    probability REAL NOT NULL,
    percentile  REAL NOT NULL
);

-- One row per feed source: what was imported, when, and the HTTP validators
-- used for conditional requests by `feeds sync`.
CREATE TABLE feed_sources (
    source        TEXT PRIMARY KEY,    -- "osv/Go", "kev", "epss", "osv/local"
    origin        TEXT NOT NULL,       -- path or URL last imported from
    imported_at   TEXT NOT NULL,
    data_time     TEXT NOT NULL,       -- newest record time, catalog or score date
    records       INTEGER NOT NULL,
    etag          TEXT NOT NULL DEFAULT '',
    last_modified TEXT NOT NULL DEFAULT '',
    version       TEXT NOT NULL DEFAULT ''
);

-- +goose Down
DROP TABLE feed_sources;
DROP TABLE epss;
DROP TABLE kev;
DROP TABLE affected;
DROP TABLE advisories;
