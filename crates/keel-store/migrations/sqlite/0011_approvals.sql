-- Protected aliases (moving one takes an approved request; the gates are JSON) and the
-- requests to move them. Both follow their model's renames.
CREATE TABLE protected_aliases (
    name TEXT NOT NULL REFERENCES registered_models(name) ON UPDATE CASCADE ON DELETE CASCADE,
    alias TEXT NOT NULL,
    gates TEXT NOT NULL,
    created_by TEXT NOT NULL,
    creation_time INTEGER NOT NULL,
    PRIMARY KEY (name, alias)
);
CREATE TABLE alias_requests (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL REFERENCES registered_models(name) ON UPDATE CASCADE ON DELETE CASCADE,
    alias TEXT NOT NULL,
    version INTEGER NOT NULL,
    requested_by TEXT NOT NULL,
    reason TEXT NOT NULL,
    creation_time INTEGER NOT NULL,
    state TEXT NOT NULL,
    decided_by TEXT,
    decision_time INTEGER,
    gates TEXT,
    comment TEXT NOT NULL DEFAULT ''
);
CREATE INDEX alias_requests_by_model ON alias_requests(name, state);
