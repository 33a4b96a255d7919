-- Roles (groups): users assigned to one inherit its permissions, each on one experiment or
-- registered model (its id or name) or, with the pattern '*', on every one of the kind.
CREATE TABLE roles (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name TEXT COLLATE "C" NOT NULL UNIQUE,
    description TEXT
);
CREATE TABLE role_permissions (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    role_id BIGINT NOT NULL REFERENCES roles(id) ON DELETE CASCADE,
    resource_type TEXT NOT NULL,
    resource_pattern TEXT COLLATE "C" NOT NULL,
    permission TEXT NOT NULL,
    UNIQUE (role_id, resource_type, resource_pattern)
);
CREATE INDEX role_permissions_by_resource ON role_permissions(resource_type, resource_pattern, role_id);
CREATE TABLE role_members (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    role_id BIGINT NOT NULL REFERENCES roles(id) ON DELETE CASCADE,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    UNIQUE (role_id, user_id)
);
CREATE INDEX role_members_by_user ON role_members(user_id, role_id);
