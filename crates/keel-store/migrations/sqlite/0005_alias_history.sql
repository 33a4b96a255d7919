-- Every change of a registered model's aliases, oldest first: set or moved to a version, or
-- removed (version NULL: deleted, or its version was deleted). A rename or delete of the model
-- carries its history along or away.
CREATE TABLE registered_model_alias_history (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL REFERENCES registered_models(name) ON UPDATE CASCADE ON DELETE CASCADE,
    alias TEXT NOT NULL,
    version INTEGER,
    time INTEGER NOT NULL
);
CREATE INDEX alias_history_by_model ON registered_model_alias_history(name, id);
