//! keel-ml: training on dataset versions.
//!
//! A table's columns ([`keel_core::table`]) become a numeric matrix through a [`pipeline`]
//! fitted on the training rows only (imputation, one-hot or ordinal encoding, scaling) and
//! stored with the model; rows are divided by seeded, optionally stratified [`split`]s.

#[cfg(feature = "charts")]
pub mod charts;
pub mod clustering;
pub mod error;
pub mod linear;
pub mod logistic;
pub mod matrix;
pub mod model_dir;
pub mod neighbours;
pub mod onnx;
pub mod params;
pub mod pipeline;
pub mod rng;
pub mod search;
pub mod split;
pub mod train;
pub mod trees;

pub use error::{MlError, Result};
pub use matrix::Matrix;
pub use pipeline::{Encoding, Pipeline, PipelineSpec};
