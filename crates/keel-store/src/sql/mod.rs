//! The metadata store written once for both SQL dialects: each module holds one entity's
//! statements, row mapping and messages, over the primitive in [`crate::db`].

pub(crate) mod data;
pub(crate) mod experiments;
pub(crate) mod logged_models;
mod paging;
pub(crate) mod registry;

use crate::db::Db;

/// What every statement of the store runs against.
pub(crate) struct Core {
    pub db: Db,
    /// The URI prefix new experiments get their artifact location under.
    pub artifact_root: String,
}
