//! The feature pipeline: fitted on the training rows only, stored with the model
//! (`keel.pipeline/v1`, JSON of [`Pipeline`]), applied unchanged to held-out rows and at
//! serving time.
//!
//! Per numeric column: missing values take the training mean (scikit-learn's
//! `SimpleImputer`), then, when scaling, `(x - mean) / std` with the population standard
//! deviation (`StandardScaler`; a constant column is only centred). Per text column: missing
//! values take the most frequent training value (the smallest on ties), then one-hot encoding
//! over the sorted training values, an unseen value giving all zeros (`OneHotEncoder` with
//! `handle_unknown="ignore"`), or ordinal encoding by that sorted order, an unseen value giving
//! -1.

use keel_core::table::{Columns, Values};
use serde::{Deserialize, Serialize};

use crate::error::{Result, invalid};
use crate::matrix::Matrix;

/// The pipeline layout written by this version of keel.
pub const PIPELINE_FORMAT: &str = "keel.pipeline/v1";

/// How text columns become numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    /// One 0/1 column per training value (for linear models and neighbours).
    OneHot,
    /// One column holding the value's rank among the sorted training values (for trees).
    Ordinal,
}

/// What to fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PipelineSpec {
    /// Text columns' encoding.
    pub encoding: Encoding,
    /// Whether numeric columns are standardised.
    pub scale: bool,
}

/// One input column's fitted step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Step {
    /// A numeric column.
    Numeric {
        /// Column name.
        column: String,
        /// Value for missing entries (the training mean; 0 when all were missing).
        fill: f64,
        /// `(mean, std)` to standardise with, when scaling.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        scale: Option<(f64, f64)>,
    },
    /// A text column.
    Text {
        /// Column name.
        column: String,
        /// Value for missing entries (the most frequent training value).
        fill: String,
        /// The training values, sorted.
        categories: Vec<String>,
        /// How they become numbers.
        encoding: Encoding,
    },
}

/// A fitted pipeline: the input columns, in order, and how each becomes features.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pipeline {
    /// `keel.pipeline/v1`.
    pub format: String,
    /// One step per input column.
    pub steps: Vec<Step>,
}

impl Step {
    /// The input column.
    pub fn column(&self) -> &str {
        match self {
            Step::Numeric { column, .. } | Step::Text { column, .. } => column,
        }
    }

    /// Features this step writes.
    fn width(&self) -> usize {
        match self {
            Step::Text {
                categories,
                encoding: Encoding::OneHot,
                ..
            } => categories.len(),
            _ => 1,
        }
    }
}

impl Pipeline {
    /// Fits a step for each of `features` on the rows `train` of `table`.
    pub fn fit(
        table: &Columns,
        features: &[String],
        train: &[usize],
        spec: PipelineSpec,
    ) -> Result<Pipeline> {
        if train.is_empty() {
            return invalid("no training rows to fit the feature pipeline on");
        }
        let steps = features
            .iter()
            .map(|name| {
                let Some(values) = table.get(name) else {
                    return invalid(format!("no column '{name}' in the data"));
                };
                Ok(match values {
                    Values::Numbers(v) => fit_numeric(name, v, train, spec.scale),
                    Values::Text(v) => fit_text(name, v, train, spec.encoding),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Pipeline {
            format: PIPELINE_FORMAT.into(),
            steps,
        })
    }

    /// The names of the features written, in order (`age`, `city=Paris`, ...).
    pub fn feature_names(&self) -> Vec<String> {
        let mut out = Vec::new();
        for step in &self.steps {
            match step {
                Step::Text {
                    column,
                    categories,
                    encoding: Encoding::OneHot,
                    ..
                } => out.extend(categories.iter().map(|c| format!("{column}={c}"))),
                other => out.push(other.column().to_string()),
            }
        }
        out
    }

    /// The features of rows `rows` of `table`.
    pub fn transform(&self, table: &Columns, rows: &[usize]) -> Result<Matrix> {
        let width: usize = self.steps.iter().map(Step::width).sum();
        let mut m = Matrix::zeros(rows.len(), width);
        let mut at = 0;
        for step in &self.steps {
            let name = step.column();
            let Some(values) = table.get(name) else {
                return invalid(format!("no column '{name}' in the data"));
            };
            match (step, values) {
                (Step::Numeric { fill, scale, .. }, Values::Numbers(v)) => {
                    for (r, &i) in rows.iter().enumerate() {
                        let x = v[i].filter(|x| !x.is_nan()).unwrap_or(*fill);
                        m.row_mut(r)[at] = match scale {
                            Some((mean, std)) => (x - mean) / std,
                            None => x,
                        };
                    }
                }
                (
                    Step::Text {
                        fill,
                        categories,
                        encoding,
                        ..
                    },
                    Values::Text(v),
                ) => {
                    for (r, &i) in rows.iter().enumerate() {
                        let value = v[i].as_deref().unwrap_or(fill);
                        let found = categories.binary_search_by(|c| c.as_str().cmp(value)).ok();
                        let row = m.row_mut(r);
                        match (encoding, found) {
                            (Encoding::OneHot, Some(k)) => row[at + k] = 1.0,
                            (Encoding::OneHot, None) => {}
                            (Encoding::Ordinal, Some(k)) => row[at] = k as f64,
                            (Encoding::Ordinal, None) => row[at] = -1.0,
                        }
                    }
                }
                (Step::Numeric { .. }, Values::Text(_)) => {
                    return invalid(format!(
                        "column '{name}' holds text; the model was trained on numbers there"
                    ));
                }
                (Step::Text { .. }, Values::Numbers(_)) => {
                    return invalid(format!(
                        "column '{name}' holds numbers; the model was trained on text there"
                    ));
                }
            }
            at += step.width();
        }
        Ok(m)
    }
}

fn fit_numeric(name: &str, v: &[Option<f64>], train: &[usize], scale: bool) -> Step {
    let present: Vec<f64> = train
        .iter()
        .filter_map(|&i| v[i])
        .filter(|x| !x.is_nan())
        .collect();
    let fill = if present.is_empty() {
        0.0
    } else {
        present.iter().sum::<f64>() / present.len() as f64
    };
    let scale = scale.then(|| {
        // Statistics of the column after imputation, as a scaler after an imputer sees it.
        let n = train.len() as f64;
        let filled = |i: usize| v[i].filter(|x| !x.is_nan()).unwrap_or(fill);
        let mean = train.iter().map(|&i| filled(i)).sum::<f64>() / n;
        let var = train
            .iter()
            .map(|&i| (filled(i) - mean).powi(2))
            .sum::<f64>()
            / n;
        let std = var.sqrt();
        (mean, if std > 0.0 { std } else { 1.0 })
    });
    Step::Numeric {
        column: name.into(),
        fill,
        scale,
    }
}

fn fit_text(name: &str, v: &[Option<String>], train: &[usize], encoding: Encoding) -> Step {
    let mut counts: std::collections::BTreeMap<&str, u64> = std::collections::BTreeMap::new();
    for &i in train {
        if let Some(s) = &v[i] {
            *counts.entry(s.as_str()).or_default() += 1;
        }
    }
    // Most frequent, the smallest on ties (BTreeMap iterates in order; max_by keeps the last
    // maximum, so compare counts and prefer the earlier key).
    let fill = counts
        .iter()
        .fold(None::<(&str, u64)>, |best, (k, c)| match best {
            Some((_, bc)) if bc >= *c => best,
            _ => Some((k, *c)),
        })
        .map_or(String::new(), |(k, _)| k.to_string());
    let mut categories: Vec<String> = counts.keys().map(|k| k.to_string()).collect();
    if categories.is_empty() {
        categories.push(fill.clone());
    }
    Step::Text {
        column: name.into(),
        fill,
        categories,
        encoding,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Columns {
        Columns {
            names: vec!["x".into(), "c".into()],
            values: vec![
                Values::Numbers(vec![Some(1.0), None, Some(3.0), Some(100.0)]),
                Values::Text(vec![
                    Some("b".into()),
                    Some("a".into()),
                    None,
                    Some("z".into()),
                ]),
            ],
        }
    }

    #[test]
    fn one_hot_and_scaling_fitted_on_training_rows_only() {
        let t = table();
        let p = Pipeline::fit(
            &t,
            &["x".into(), "c".into()],
            &[0, 1, 2],
            PipelineSpec {
                encoding: Encoding::OneHot,
                scale: true,
            },
        )
        .unwrap();
        assert_eq!(p.feature_names(), ["x", "c=a", "c=b"]);
        // x: training mean 2 (row 3's 100 is not seen); filled values 1, 2, 3: std sqrt(2/3).
        let std = (2.0f64 / 3.0).sqrt();
        let m = p.transform(&t, &[0, 1, 2, 3]).unwrap();
        assert_eq!(m.row(0), [-1.0 / std, 0.0, 1.0]);
        assert_eq!(m.row(1), [0.0, 1.0, 0.0]);
        // Missing text takes the most frequent value (a tie of a and b: a).
        assert_eq!(m.row(2), [1.0 / std, 1.0, 0.0]);
        // An unseen value encodes as all zeros.
        assert_eq!(m.row(3), [98.0 / std, 0.0, 0.0]);
        let json = serde_json::to_string(&p).unwrap();
        let back: Pipeline = serde_json::from_str(&json).unwrap();
        assert_eq!(back, p);
    }

    #[test]
    fn ordinal_encoding_and_type_changes() {
        let t = table();
        let spec = PipelineSpec {
            encoding: Encoding::Ordinal,
            scale: false,
        };
        let p = Pipeline::fit(&t, &["c".into(), "x".into()], &[0, 1, 3], spec).unwrap();
        assert_eq!(p.feature_names(), ["c", "x"]);
        let m = p.transform(&t, &[0, 2, 3]).unwrap();
        // Sorted categories a, b, z; row 2's missing value takes a (ties: smallest).
        assert_eq!(m.row(0), [1.0, 1.0]);
        assert_eq!(m.row(1), [0.0, 3.0]);
        assert_eq!(m.row(2), [2.0, 100.0]);
        let mut swapped = table();
        swapped.values.swap(0, 1);
        let e = p.transform(&swapped, &[0]).unwrap_err().to_string();
        assert!(e.contains("column 'c' holds numbers"), "{e}");
        let e = Pipeline::fit(&t, &["nope".into()], &[0], spec)
            .unwrap_err()
            .to_string();
        assert_eq!(e, "no column 'nope' in the data");
    }
}
