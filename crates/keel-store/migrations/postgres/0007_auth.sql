-- Users, their permissions on experiments and registered models, and their access tokens
-- (`keel server --auth`). Passwords and tokens are kept only as argon2 hashes; a user without a
-- password is a service account, which acts through its tokens alone. Grants go with their
-- experiment, registered model (renames included) or user.
CREATE TABLE users (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username TEXT COLLATE "C" NOT NULL UNIQUE,
    password_hash TEXT,
    is_admin BOOLEAN NOT NULL DEFAULT FALSE,
    creation_time BIGINT NOT NULL
);
CREATE TABLE experiment_permissions (
    experiment_id BIGINT NOT NULL REFERENCES experiments(experiment_id) ON DELETE CASCADE,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    permission TEXT NOT NULL,
    PRIMARY KEY (experiment_id, user_id)
);
CREATE INDEX experiment_permissions_by_user ON experiment_permissions(user_id, experiment_id);
CREATE TABLE registered_model_permissions (
    name TEXT COLLATE "C" NOT NULL REFERENCES registered_models(name) ON UPDATE CASCADE ON DELETE CASCADE,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    permission TEXT NOT NULL,
    PRIMARY KEY (name, user_id)
);
CREATE INDEX registered_model_permissions_by_user ON registered_model_permissions(user_id, name);
CREATE TABLE access_tokens (
    id TEXT COLLATE "C" PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    hash TEXT NOT NULL,
    scope TEXT NOT NULL,
    creation_time BIGINT NOT NULL,
    expiration_time BIGINT,
    revoked_time BIGINT
);
CREATE INDEX access_tokens_by_user ON access_tokens(user_id, creation_time);
