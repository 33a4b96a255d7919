//! keel-data: datasets as versions keel can name, restore and compare.
//!
//! A file or folder is hashed with BLAKE3 ([`hash`]), its content stored once in the artifact
//! store ([`objects`]), read and profiled with polars ([`profile`]) and recorded as a
//! version in the metadata store ([`add`]); the local [`workspace`] remembers what was added
//! from where and which file states were already hashed, for `keel data status`. Tables are
//! read batch by batch ([`read`]), checked against [`rules`] ([`validate`]), compared
//! ([`diff`]) and shown as an HTML page ([`report`]).

pub mod add;
pub mod backend;
pub mod charts;
pub mod columns;
pub mod diff;
pub mod error;
pub mod format;
pub mod hash;
pub mod locate;
pub mod objects;
pub mod profile;
pub mod read;
pub mod report;
pub mod rules;
pub mod validate;
pub mod workspace;

pub use add::{AddRequest, Added, Progress, Quiet, add};
pub use backend::{DataBackend, LocalBackend};
pub use error::{DataError, Result};
pub use format::Format;
