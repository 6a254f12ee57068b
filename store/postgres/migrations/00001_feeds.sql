-- +goose Up
-- The advisory index, as in the SQLite schema. Times are kept as RFC 3339
-- text with nanoseconds, exactly as imported, so that "unchanged" compares
-- equal on both backends.
CREATE TABLE advisories (
    id         TEXT PRIMARY KEY,
    collection TEXT NOT NULL,
    modified   TEXT NOT NULL,
    hash       BYTEA NOT NULL,
    doc        BYTEA NOT NULL
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
    ransomware BOOLEAN NOT NULL
);

CREATE TABLE epss (
    cve         TEXT PRIMARY KEY,
    probability DOUBLE PRECISION NOT NULL,
    percentile  DOUBLE PRECISION NOT NULL
);

CREATE TABLE feed_sources (
    source        TEXT PRIMARY KEY,
    origin        TEXT NOT NULL,
    imported_at   TEXT NOT NULL,
    data_time     TEXT NOT NULL,
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
