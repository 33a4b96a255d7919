-- Validation reports recorded against dataset versions (`keel data validate NAME@VERSION`),
-- kept whole as JSON beside the figures the UI lists.
CREATE TABLE data_validations (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    time INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    passed INTEGER NOT NULL,
    rules INTEGER NOT NULL,
    failed INTEGER NOT NULL,
    report TEXT NOT NULL,
    FOREIGN KEY (name, version) REFERENCES data_versions(name, version)
);
CREATE INDEX data_validations_by_version ON data_validations(name, version, id);
