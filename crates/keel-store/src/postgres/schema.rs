//! Versioned migrations for the PostgreSQL schema, embedded in the binary. They run in the
//! connection's `search_path` schema, so several keel stores can share one database.

use crate::schema::Migrations;

/// The migrations this build knows, oldest first: (version, description, SQL).
pub const MIGRATIONS: Migrations = &[
    (
        1,
        "init",
        include_str!("../../migrations/postgres/0001_init.sql"),
    ),
    (
        2,
        "kv value indexes",
        include_str!("../../migrations/postgres/0002_kv_value_indexes.sql"),
    ),
    (
        3,
        "data versions",
        include_str!("../../migrations/postgres/0003_data_versions.sql"),
    ),
    (
        4,
        "metric rollups",
        include_str!("../../migrations/postgres/0004_metric_rollups.sql"),
    ),
    (
        5,
        "alias history",
        include_str!("../../migrations/postgres/0005_alias_history.sql"),
    ),
    (
        6,
        "data validations",
        include_str!("../../migrations/postgres/0006_data_validations.sql"),
    ),
    (
        7,
        "auth",
        include_str!("../../migrations/postgres/0007_auth.sql"),
    ),
    (
        8,
        "roles",
        include_str!("../../migrations/postgres/0008_roles.sql"),
    ),
    (
        9,
        "sessions",
        include_str!("../../migrations/postgres/0009_sessions.sql"),
    ),
    (
        10,
        "audit log",
        include_str!("../../migrations/postgres/0010_audit.sql"),
    ),
    (
        11,
        "approvals",
        include_str!("../../migrations/postgres/0011_approvals.sql"),
    ),
];
