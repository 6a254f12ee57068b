-- +goose Up
-- Severity enrichment of CVEs: NVD CVE records (scores by NVD, the CNA and
-- ADPs, CWEs, dates), vendor ratings (Debian urgency, …) and which
-- advisories name which CVE (so that a changed enrichment rematches only
-- the packages of its advisories).
CREATE TABLE cve_records (
    cve           TEXT PRIMARY KEY,
    last_modified TEXT NOT NULL,       -- RFC 3339, from the record
    doc           BLOB NOT NULL        -- advisory.CVERecord as JSON
);

CREATE TABLE vendor_ratings (
    cve       TEXT NOT NULL,
    vendor    TEXT NOT NULL,           -- "Debian"
    ecosystem TEXT NOT NULL,           -- "Debian:12"
    package   TEXT NOT NULL,           -- source package
    rating    TEXT NOT NULL,           -- "unimportant", "low", "medium", "high"
    PRIMARY KEY (cve, vendor, ecosystem, package)
);
CREATE INDEX vendor_ratings_vendor ON vendor_ratings(vendor);

CREATE TABLE advisory_cves (
    advisory_id TEXT NOT NULL REFERENCES advisories(id) ON DELETE CASCADE,
    cve         TEXT NOT NULL
);
CREATE INDEX advisory_cves_cve ON advisory_cves(cve);
CREATE INDEX advisory_cves_advisory ON advisory_cves(advisory_id);

-- The advisories already imported: their CVE id and CVE aliases.
INSERT INTO advisory_cves(advisory_id, cve)
    SELECT DISTINCT a.id, j.value FROM advisories a, json_each(CAST(a.doc AS TEXT), '$.aliases') j
    WHERE j.value LIKE 'CVE-%'
    UNION
    SELECT id, id FROM advisories WHERE id LIKE 'CVE-%';

-- +goose Down
DROP TABLE advisory_cves;
DROP TABLE vendor_ratings;
DROP TABLE cve_records;
