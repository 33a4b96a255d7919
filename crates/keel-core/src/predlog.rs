//! The prediction log's layout, shared by its writer (`keel serve`) and its readers
//! (monitoring): where a model's rows of one hour are, and how logged columns are named.
//!
//! ```text
//! DIR/predictions/model=NAME/hour=2026-12-02T14/part-<millis>-<uuid>.parquet
//! DIR/feedback/hour=2026-12-02T14/part-<millis>-<uuid>.parquet
//! DIR/errors/model=NAME/hour=2026-12-02T14/part-<millis>-<uuid>.parquet
//! ```
//!
//! Hours are UTC civil hours. Files appear only when finished (written elsewhere, then moved
//! into place), so a reader takes every `part-*.parquet` it finds.

/// The folder of logged predictions under the log's root.
pub const PREDICTIONS: &str = "predictions";
/// The folder of ground-truth records under the log's root.
pub const FEEDBACK: &str = "feedback";
/// The folder of the requests answered with an error (`errors/model=NAME/hour=.../`).
pub const ERRORS: &str = "errors";
/// A logged input column is `in_<column>`.
pub const INPUT_PREFIX: &str = "in_";
/// A logged output column is `out_<name>` (`out_<name>_<k>`, `out_<name>_<class>`).
pub const OUTPUT_PREFIX: &str = "out_";
/// Milliseconds in a partition's hour.
pub const HOUR_MS: i64 = 3_600_000;

/// `name` with every character but ASCII letters, digits, `-`, `_` and `.` as `_`: safe as
/// one folder name.
pub fn safe_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The folder name of one model's predictions: `model=<safe name>`.
pub fn model_partition(model: &str) -> String {
    format!("model={}", safe_name(model))
}

/// Whether `name` is a finished log file's name.
pub fn is_log_file(name: &str) -> bool {
    name.starts_with("part-") && name.ends_with(".parquet")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_safe_folder_names() {
        assert_eq!(safe_name("churn/v2 model"), "churn_v2_model");
        assert_eq!(model_partition("a.b-c_d"), "model=a.b-c_d");
        assert!(is_log_file("part-1-x.parquet"));
        assert!(!is_log_file(".part-1-x.staging"));
        assert!(!is_log_file("part-1-x.parquet.tmp"));
    }
}
