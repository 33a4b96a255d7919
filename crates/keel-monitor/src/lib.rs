//! keel-monitor: what a served model sees, against what it learned on.
//!
//! `keel serve` writes every prediction to the prediction log (see [`keel_core::predlog`]).
//! This crate reads a window of it ([`window`], [`log`]) and compares the logged inputs and
//! outputs against a reference table, column by column, with the drift statistics
//! `keel data diff` uses ([`drift`]): Evidently's defaults, PSI beside them, and the dataset
//! drifted when a share of its columns did. A check is a [`report::Report`]: JSON, or one
//! HTML page with each column's two distributions ([`charts`]) and its course over the window,
//! with the live performance beside it ([`performance`]: realised on the rows with ground
//! truth, estimated from the probabilities on every row, latency). [`sketch`] answers the same
//! checks from the hourly sketches `keel serve` keeps beside the log; [`compare`] tests a
//! challenger against the champion on live traffic, and [`labelled`] turns the log's labelled
//! rows into training rows, for the retraining loop. Ground truth comes from `/feedback` or
//! from a labelled dataset version ([`truth`]).

pub mod charts;
pub mod compare;
pub mod drift;
pub mod error;
pub mod gauges;
pub mod labelled;
pub mod log;
pub mod performance;
pub mod report;
pub mod rules;
pub mod sketch;
pub mod truth;
pub mod window;

pub use error::{MonitorError, Result};
pub use window::Window;
