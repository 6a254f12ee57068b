-- +goose Up
-- Severity enrichment of CVEs, as in the SQLite schema: NVD CVE records,
-- vendor ratings, and which advisories name which CVE.
CREATE TABLE cve_records (
    cve           TEXT PRIMARY KEY,
    last_modified TEXT NOT NULL,
    doc           BYTEA NOT NULL
);

CREATE TABLE vendor_ratings (
    cve       TEXT NOT NULL,
    vendor    TEXT NOT NULL,
    ecosystem TEXT NOT NULL,
    package   TEXT NOT NULL,
    rating    TEXT NOT NULL,
    PRIMARY KEY (cve, vendor, ecosystem, package)
);
CREATE INDEX vendor_ratings_vendor ON vendor_ratings(vendor);

CREATE TABLE advisory_cves (
    advisory_id TEXT NOT NULL REFERENCES advisories(id) ON DELETE CASCADE,
    cve         TEXT NOT NULL
);
CREATE INDEX advisory_cves_cve ON advisory_cves(cve);
CREATE INDEX advisory_cves_advisory ON advisory_cves(advisory_id);

INSERT INTO advisory_cves(advisory_id, cve)
    SELECT DISTINCT a.id, j.value FROM advisories a,
        jsonb_array_elements_text(CASE WHEN jsonb_typeof(convert_from(a.doc, 'UTF8')::jsonb -> 'aliases') = 'array'
            THEN convert_from(a.doc, 'UTF8')::jsonb -> 'aliases' ELSE '[]'::jsonb END) AS j(value)
    WHERE j.value LIKE 'CVE-%'
    UNION
    SELECT id, id FROM advisories WHERE id LIKE 'CVE-%';

-- +goose Down
DROP TABLE advisory_cves;
DROP TABLE vendor_ratings;
DROP TABLE cve_records;
