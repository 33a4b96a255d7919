//! keel's statistics against scipy's, and its model metrics against scikit-learn's, on the
//! same data: every figure within 1e-6 (metrics within 1e-9).
//!
//! Needs a Python with scipy and scikit-learn: `KEEL_PYTHON` (set by `scripts/test`), else the
//! test prints that it was skipped and why.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

/// A small deterministic generator (xorshift64*), so the cases are the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Roughly normal (sum of uniforms), scaled and shifted.
    fn normal(&mut self, mean: f64, sd: f64) -> f64 {
        let s: f64 = (0..12).map(|_| self.next()).sum::<f64>() - 6.0;
        mean + sd * s
    }

    fn sample(&mut self, n: usize, mean: f64, sd: f64) -> Vec<f64> {
        (0..n).map(|_| self.normal(mean, sd)).collect()
    }
}

fn reference(cases: &Value) -> Option<Vec<Value>> {
    let python = keel_testenv::python("keel-stats reference comparisons", &["scipy", "sklearn"])?;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/reference.py");
    let mut child = Command::new(python)
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start python");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(cases.to_string().as_bytes())
        .expect("send cases");
    let out = child.wait_with_output().expect("python runs");
    assert!(out.status.success(), "reference.py failed");
    Some(serde_json::from_slice(&out.stdout).expect("json answer"))
}

fn close(what: &str, keel: f64, scipy: &Value) {
    let s = scipy
        .as_f64()
        .unwrap_or_else(|| panic!("{what}: no number in {scipy}"));
    assert!(
        (keel - s).abs() <= 1e-6,
        "{what}: keel {keel} vs scipy {s} (difference {})",
        (keel - s).abs()
    );
}

/// Compares keel's answer for one case with scipy's.
type Check = Box<dyn Fn(&Value)>;

#[test]
fn statistics_agree_with_scipy() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut cases = Vec::new();
    let mut expect: Vec<Check> = Vec::new();

    // KS: equal and unequal sizes, with and without a shift, ties from rounding, and one
    // pair past the exact range.
    let ks_pairs: Vec<(Vec<f64>, Vec<f64>)> = vec![
        (rng.sample(200, 0.0, 1.0), rng.sample(200, 0.0, 1.0)),
        (rng.sample(300, 0.0, 1.0), rng.sample(250, 0.3, 1.0)),
        (rng.sample(37, 0.0, 1.0), rng.sample(1000, 0.1, 1.2)),
        (
            rng.sample(500, 0.0, 1.0)
                .iter()
                .map(|x| (x * 4.0).round())
                .collect(),
            rng.sample(700, 0.2, 1.0)
                .iter()
                .map(|x| (x * 4.0).round())
                .collect(),
        ),
        (rng.sample(1000, 0.0, 1.0), rng.sample(999, 0.05, 1.0)),
        (vec![1.0, 2.0, 3.0], vec![4.0, 5.0, 6.0, 7.0]),
    ];
    for (a, b) in ks_pairs {
        let r = keel_stats::ks_2samp(&a, &b).unwrap();
        cases.push(json!({"kind": "ks", "a": a, "b": b}));
        expect.push(Box::new(move |s| {
            close("ks statistic", r.statistic, &s["statistic"]);
            close("ks pvalue", r.pvalue, &s["pvalue"]);
        }));
    }

    for (n, m, shift) in [(100, 100, 0.0), (1000, 700, 0.4), (5000, 20000, 1.5)] {
        let (a, b) = (rng.sample(n, 0.0, 1.0), rng.sample(m, shift, 2.0));
        let d = keel_stats::wasserstein_distance(&a, &b).unwrap();
        cases.push(json!({"kind": "wasserstein", "a": a, "b": b}));
        expect.push(Box::new(move |s| close("wasserstein", d, &s["distance"])));
    }

    for (p, q) in [
        (vec![1.0, 2.0, 3.0, 0.0], vec![3.0, 2.0, 1.0, 4.0]),
        (vec![0.25; 4], vec![0.25; 4]),
        (vec![10.0, 0.0, 5.0], vec![0.0, 7.0, 5.0]),
    ] {
        let d = keel_stats::jensen_shannon(&p, &q).unwrap();
        cases.push(json!({"kind": "jensenshannon", "p": p, "q": q}));
        expect.push(Box::new(move |s| close("jensenshannon", d, &s["distance"])));
    }

    for table in [
        vec![vec![10.0, 20.0], vec![20.0, 10.0]],
        vec![vec![12.0, 5.0, 30.0, 7.0], vec![9.0, 11.0, 25.0, 2.0]],
        vec![vec![100.0, 3.0], vec![98.0, 9.0]],
        vec![
            vec![5.0, 6.0, 7.0],
            vec![5.0, 6.0, 7.0],
            vec![1.0, 20.0, 3.0],
        ],
    ] {
        let r = keel_stats::chi2_contingency(&table).unwrap();
        cases.push(json!({"kind": "chi2", "table": table}));
        expect.push(Box::new(move |s| {
            close("chi2 statistic", r.statistic, &s["statistic"]);
            close("chi2 pvalue", r.pvalue, &s["pvalue"]);
            assert_eq!(Some(r.dof as u64), s["dof"].as_u64(), "chi2 dof");
        }));
    }

    // Challenger against champion: McNemar's exact test, paired and Welch t-tests (one-sided),
    // better, equal and worse.
    for (b, c) in [
        (3u64, 12u64),
        (40, 55),
        (20, 20),
        (9, 1),
        (0, 4),
        (150, 190),
    ] {
        let r = keel_stats::compare::mcnemar_greater(b, c);
        cases.push(json!({"kind": "mcnemar", "b": b, "c": c}));
        expect.push(Box::new(move |s| {
            close("mcnemar pvalue", r.pvalue, &s["pvalue"])
        }));
    }
    for (n, shift) in [(30, 0.5), (400, 0.05), (1000, 0.0), (250, -0.2)] {
        let champion = rng.sample(n, 1.0, 1.0);
        let challenger: Vec<f64> = champion
            .iter()
            .map(|x| x - shift + rng.normal(0.0, 0.5))
            .collect();
        let paired = keel_stats::compare::paired_t_greater(&champion, &challenger).unwrap();
        let other = rng.sample(n + 17, 1.0 - shift, 1.5);
        let welch = keel_stats::compare::welch_t_greater(&champion, &other).unwrap();
        cases.push(json!({"kind": "ttest_rel", "a": champion, "b": challenger}));
        expect.push(Box::new(move |s| {
            close("paired t statistic", paired.statistic, &s["statistic"]);
            close("paired t pvalue", paired.pvalue, &s["pvalue"]);
        }));
        cases.push(json!({"kind": "ttest_welch", "a": champion, "b": other}));
        expect.push(Box::new(move |s| {
            close("welch t statistic", welch.statistic, &s["statistic"]);
            close("welch t pvalue", welch.pvalue, &s["pvalue"]);
        }));
    }

    let Some(answers) = reference(&Value::Array(cases)) else {
        return;
    };
    assert_eq!(answers.len(), expect.len());
    for (check, answer) in expect.iter().zip(&answers) {
        check(answer);
    }
}

#[test]
fn ks_past_the_exact_range_stays_close_to_scipy() {
    let mut rng = Rng(42);
    let (a, b) = (rng.sample(12_000, 0.0, 1.0), rng.sample(15_000, 0.02, 1.0));
    let r = keel_stats::ks_2samp(&a, &b).unwrap();
    let Some(answers) = reference(&json!([{"kind": "ks", "a": a, "b": b}])) else {
        return;
    };
    close("ks statistic", r.statistic, &answers[0]["statistic"]);
    let p = answers[0]["pvalue"].as_f64().unwrap();
    assert!(
        (r.pvalue - p).abs() < 1e-3,
        "asymptotic p {} vs scipy {p}",
        r.pvalue
    );
}

fn near(what: &str, keel: f64, reference: &Value) {
    let r = reference
        .as_f64()
        .unwrap_or_else(|| panic!("{what}: no number in {reference}"));
    assert!(
        (keel - r).abs() <= 1e-9 * r.abs().max(1.0),
        "{what}: keel {keel} vs scikit-learn {r}"
    );
}

#[test]
fn metrics_agree_with_scikit_learn() {
    let mut rng = Rng(7);
    let mut cases = Vec::new();
    let mut expect: Vec<Check> = Vec::new();
    // Binary and three-class problems with an informative, noisy score; scores rounded to two
    // decimals so that ties occur.
    for (n, k) in [(500usize, 2usize), (40, 2), (400, 3)] {
        let y: Vec<usize> = (0..n).map(|_| (rng.next() * k as f64) as usize).collect();
        let proba: Vec<Vec<f64>> = y
            .iter()
            .map(|t| {
                let raw: Vec<f64> = (0..k)
                    .map(|c| {
                        let signal = if c == *t { 1.0 } else { 0.0 };
                        ((signal + rng.normal(0.0, 1.0)).exp() * 100.0).round() / 100.0 + 0.01
                    })
                    .collect();
                let sum: f64 = raw.iter().sum();
                raw.iter().map(|v| v / sum).collect()
            })
            .collect();
        let m = keel_stats::classification(&y, &proba, k).unwrap();
        cases.push(json!({"kind": "classification", "y": y, "proba": proba, "n_classes": k}));
        expect.push(Box::new(move |s| {
            near("accuracy", m.accuracy, &s["accuracy"]);
            near("precision", m.precision, &s["precision"]);
            near("recall", m.recall, &s["recall"]);
            near("f1", m.f1, &s["f1"]);
            near("roc_auc", m.roc_auc.unwrap(), &s["roc_auc"]);
            near("log_loss", m.log_loss, &s["log_loss"]);
            assert_eq!(json!(m.confusion), s["confusion"], "confusion matrix");
        }));
    }
    for n in [300usize, 7] {
        let y_true = rng.sample(n, 10.0, 4.0);
        let y_pred: Vec<f64> = y_true.iter().map(|t| t + rng.normal(0.0, 1.5)).collect();
        let m = keel_stats::regression(&y_true, &y_pred).unwrap();
        cases.push(json!({"kind": "regression", "y_true": y_true, "y_pred": y_pred}));
        expect.push(Box::new(move |s| {
            near("rmse", m.rmse, &s["rmse"]);
            near("mae", m.mae, &s["mae"]);
            near("r2", m.r2, &s["r2"]);
            near("mape", m.mape, &s["mape"]);
        }));
    }
    let Some(answers) = reference(&Value::Array(cases)) else {
        return;
    };
    assert_eq!(answers.len(), expect.len());
    for (check, answer) in expect.iter().zip(&answers) {
        check(answer);
    }
}
