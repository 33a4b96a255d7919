//! keel's inference server: loads models (keel's own format natively, ONNX through
//! `keel-onnx`, any MLflow `python_function` model in Python worker processes), answers MLflow's scoring protocol and the Open Inference Protocol, batches
//! concurrent requests, routes canary and shadow traffic, exposes Prometheus metrics and logs
//! every prediction to Parquet.

pub mod access;
pub mod batch;
pub mod error;
mod logfile;
pub mod metrics;
pub mod mlflow;
pub mod mlmodel;
pub mod payload;
pub mod predictor;
pub mod predlog;
pub mod python;
pub mod route;
pub mod server;
pub mod source;
mod state;
mod status;
pub mod supervisor;
pub mod v2;

pub use error::ServeError;
