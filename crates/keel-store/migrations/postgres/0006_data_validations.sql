-- Validation reports recorded against dataset versions (`keel data validate NAME@VERSION`),
-- kept whole as JSON beside the figures the UI lists.
CREATE TABLE data_validations (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name TEXT COLLATE "C" NOT NULL,
    version BIGINT NOT NULL,
    time BIGINT NOT NULL,
    created_by TEXT COLLATE "C" NOT NULL,
    passed SMALLINT NOT NULL,
    rules BIGINT NOT NULL,
    failed BIGINT NOT NULL,
    report TEXT NOT NULL,
    FOREIGN KEY (name, version) REFERENCES data_versions(name, version)
);
CREATE INDEX data_validations_by_version ON data_validations(name, version, id);
