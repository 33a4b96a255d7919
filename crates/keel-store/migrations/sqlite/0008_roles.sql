-- Roles (groups): users assigned to one inherit its permissions, each on one experiment or
-- registered model (its id or name) or, with the pattern '*', on every one of the kind.
CREATE TABLE roles (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    description TEXT
);
CREATE TABLE role_permissions (
    id INTEGER PRIMARY KEY,
    role_id INTEGER NOT NULL REFERENCES roles(id) ON DELETE CASCADE,
    resource_type TEXT NOT NULL,
    resource_pattern TEXT NOT NULL,
    permission TEXT NOT NULL,
    UNIQUE (role_id, resource_type, resource_pattern)
);
CREATE INDEX role_permissions_by_resource ON role_permissions(resource_type, resource_pattern, role_id);
CREATE TABLE role_members (
    id INTEGER PRIMARY KEY,
    role_id INTEGER NOT NULL REFERENCES roles(id) ON DELETE CASCADE,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    UNIQUE (role_id, user_id)
);
CREATE INDEX role_members_by_user ON role_members(user_id, role_id);
