-- +goose Up
-- Compact host-to-software links: a fleet has ~1,500 links per host, so
-- each row is three integers — the host's integer key, the software, the
-- location (file paths are stored once, in locations) — in a WITHOUT
-- ROWID table (no separate rowid b-tree). Ingest writes a fifth of the
-- bytes it did.
CREATE TABLE host_keys (
    seq     INTEGER PRIMARY KEY,
    host_id TEXT NOT NULL UNIQUE REFERENCES hosts(id) ON DELETE CASCADE
);
CREATE TABLE locations (
    id   INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE
);
CREATE TABLE host_links (
    host_seq    INTEGER NOT NULL REFERENCES host_keys(seq) ON DELETE CASCADE,
    software_id INTEGER NOT NULL REFERENCES software(id),
    location_id INTEGER NOT NULL REFERENCES locations(id),
    PRIMARY KEY (host_seq, software_id, location_id)
) WITHOUT ROWID;
INSERT INTO host_keys(host_id) SELECT DISTINCT host_id FROM host_software;
INSERT INTO locations(path) SELECT DISTINCT location FROM host_software;
INSERT INTO host_links SELECT k.seq, l.software_id, loc.id FROM host_software l
    JOIN host_keys k ON k.host_id = l.host_id JOIN locations loc ON loc.path = l.location;
DROP TABLE host_software;
CREATE INDEX host_links_software ON host_links(software_id);

-- +goose Down
CREATE TABLE host_software (
    host_id     TEXT NOT NULL REFERENCES hosts(id) ON DELETE CASCADE,
    software_id INTEGER NOT NULL REFERENCES software(id),
    location    TEXT NOT NULL,
    PRIMARY KEY (host_id, software_id, location)
);
INSERT INTO host_software SELECT k.host_id, l.software_id, loc.path FROM host_links l
    JOIN host_keys k ON k.seq = l.host_seq JOIN locations loc ON loc.id = l.location_id;
CREATE INDEX host_software_software ON host_software(software_id);
DROP TABLE host_links;
DROP TABLE locations;
DROP TABLE host_keys;
