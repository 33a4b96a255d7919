//! keel-core: the domain of keel, free of I/O.
//!
//! It holds the entities the tracking server and model registry speak about (experiments, runs,
//! metrics, logged models, registered models, model versions), the [`MetadataStore`] and
//! [`ArtifactStore`] traits that storage backends implement, MLflow's search-filter grammar
//! ([`filter`]), MLflow's input limits ([`validate`]) and the one error type whose codes map to
//! MLflow's `error_code` and HTTP statuses ([`Error`], [`ErrorCode`]).

pub mod approval;
pub mod artifact;
pub mod audit;
pub mod auth;
pub mod buckets;
pub mod card;
pub mod data;
pub mod entities;
pub mod error;
pub mod fairness;
pub mod filter;
pub mod page;
pub mod predlog;
pub mod pyjson;
pub mod service;
pub mod sketch;
pub mod store;
pub mod table;
pub mod validate;
pub mod version_source;

pub use artifact::{ArtifactPath, ArtifactStore, FileInfo};
pub use error::{Error, ErrorCode, Result};
pub use store::{
    DataStore, ExperimentStore, ImportStore, LoggedModelStore, MetadataStore, RegistryStore,
    RunStore,
};

/// Milliseconds since the Unix epoch, as MLflow timestamps are.
pub fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
