-- +goose Up
-- Hosts and their inventories: every distinct package version is stored
-- once (software) and linked to the hosts that have it.
CREATE TABLE hosts (
    id             TEXT PRIMARY KEY,
    machine_id     TEXT NOT NULL,
    hostname       TEXT NOT NULL,
    ecosystem      TEXT NOT NULL,
    labels         TEXT NOT NULL,  -- JSON object
    last_seen      BIGINT NOT NULL, -- unix nanoseconds
    inventory_hash TEXT NOT NULL
);
CREATE INDEX hosts_machine_id ON hosts(machine_id);

CREATE TABLE software (
    id             INTEGER PRIMARY KEY,
    ecosystem      TEXT NOT NULL,
    name           TEXT NOT NULL,
    version        TEXT NOT NULL,
    source_name    TEXT NOT NULL,
    source_version TEXT NOT NULL,
    match_name     TEXT NOT NULL, -- the name advisories use, normalised (match.KeyOf)
    UNIQUE (ecosystem, name, version, source_name, source_version)
);
CREATE INDEX software_match ON software(match_name, ecosystem);

CREATE TABLE host_software (
    host_id     TEXT NOT NULL REFERENCES hosts(id) ON DELETE CASCADE,
    software_id INTEGER NOT NULL REFERENCES software(id),
    location    TEXT NOT NULL,
    PRIMARY KEY (host_id, software_id, location)
);
CREATE INDEX host_software_software ON host_software(software_id);

-- +goose Down
DROP TABLE host_software;
DROP TABLE software;
DROP TABLE hosts;
