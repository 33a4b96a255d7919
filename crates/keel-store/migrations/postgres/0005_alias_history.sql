-- Every change of a registered model's aliases, oldest first: set or moved to a version, or
-- removed (version NULL: deleted, or its version was deleted). A rename or delete of the model
-- carries its history along or away.
CREATE TABLE registered_model_alias_history (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name TEXT COLLATE "C" NOT NULL REFERENCES registered_models(name) ON UPDATE CASCADE ON DELETE CASCADE,
    alias TEXT COLLATE "C" NOT NULL,
    version BIGINT,
    time BIGINT NOT NULL
);
CREATE INDEX alias_history_by_model ON registered_model_alias_history(name, id);
