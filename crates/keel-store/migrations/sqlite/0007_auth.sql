-- Users, their permissions on experiments and registered models, and their access tokens
-- (`keel server --auth`). Passwords and tokens are kept only as argon2 hashes; a user without a
-- password is a service account, which acts through its tokens alone. Grants go with their
-- experiment, registered model (renames included) or user.
CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    password_hash TEXT,
    is_admin INTEGER NOT NULL DEFAULT 0,
    creation_time INTEGER NOT NULL
);
CREATE TABLE experiment_permissions (
    experiment_id INTEGER NOT NULL REFERENCES experiments(experiment_id) ON DELETE CASCADE,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    permission TEXT NOT NULL,
    PRIMARY KEY (experiment_id, user_id)
);
CREATE INDEX experiment_permissions_by_user ON experiment_permissions(user_id, experiment_id);
CREATE TABLE registered_model_permissions (
    name TEXT NOT NULL REFERENCES registered_models(name) ON UPDATE CASCADE ON DELETE CASCADE,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    permission TEXT NOT NULL,
    PRIMARY KEY (name, user_id)
);
CREATE INDEX registered_model_permissions_by_user ON registered_model_permissions(user_id, name);
CREATE TABLE access_tokens (
    id TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    hash TEXT NOT NULL,
    scope TEXT NOT NULL,
    creation_time INTEGER NOT NULL,
    expiration_time INTEGER,
    revoked_time INTEGER
);
CREATE INDEX access_tokens_by_user ON access_tokens(user_id, creation_time);
