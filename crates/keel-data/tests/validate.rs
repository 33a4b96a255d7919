//! Validation rules on real files the tests write: every rule type passing on good data and
//! failing on bad data with the right observed value and failing rows, and inferred rules.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use keel_data::Format;
use keel_data::profile::{Table, profile_files};
use keel_data::rules::{RuleSet, infer, unique_candidates};
use keel_data::validate::{Files, Report, unique_columns, validate};

/// 200 rows: id 1..=200 (unique), age 20..=69 (repeating), city in {Paris, Lyon, Nice},
/// email `user<id>@example.com`, score = id / 2, seen = a date in 2026-11.
fn good_csv() -> String {
    let mut s = String::from("id,age,city,email,score,seen\n");
    for i in 1..=200 {
        s.push_str(&format!(
            "{i},{},{},user{i}@example.com,{},2026-11-{:02}\n",
            20 + i % 50,
            ["Paris", "Lyon", "Nice"][i % 3],
            i as f64 / 2.0,
            1 + i % 28
        ));
    }
    s
}

/// The same columns with one fault per row rule: a repeated id (row 3), an age of 130
/// (row 5), a missing city (row 7) and a city Berlin (row 8), an email without '@' (row 9).
fn bad_csv() -> String {
    let mut s = String::from("id,age,city,email,score,seen\n");
    for i in 1..=200usize {
        let id = if i == 3 { 2 } else { i };
        let age = if i == 5 { 130 } else { 20 + i % 50 };
        let city = match i {
            7 => "",
            8 => "Berlin",
            _ => ["Paris", "Lyon", "Nice"][i % 3],
        };
        let email = if i == 9 {
            "nobody".to_string()
        } else {
            format!("user{i}@example.com")
        };
        s.push_str(&format!(
            "{id},{age},{city},{email},{},2026-11-{:02}\n",
            i as f64 / 2.0,
            1 + i % 28
        ));
    }
    s
}

struct Data {
    _dir: tempfile::TempDir,
    files: Files,
    table: Table,
}

fn data(csv: &str) -> Data {
    let dir = tempfile::tempdir().unwrap();
    let p: PathBuf = dir.path().join("people.csv");
    std::fs::write(&p, csv).unwrap();
    let table = profile_files(Format::Csv, &[p.as_path()]).unwrap();
    Data {
        files: Files {
            format: Format::Csv,
            files: vec![("people.csv".into(), p)],
        },
        table,
        _dir: dir,
    }
}

fn rules(body: &str) -> RuleSet {
    RuleSet::from_yaml(&format!("format: keel.rules/v1\nrules:\n{body}")).unwrap()
}

fn check(d: &Data, r: &RuleSet, now: SystemTime) -> Report {
    validate("people", r, &d.table, Some(&d.files), now).unwrap()
}

/// One of each rule, written so that the good data pass every one.
const EVERY_RULE: &str = "
  - rule: schema
    columns:
      - {name: id, type: integer}
      - {name: age, type: integer}
      - {name: city, type: string}
      - {name: email, type: string}
      - {name: score, type: float}
      - {name: seen, type: date}
  - rule: row_count
    min: 100
    max: 1000
  - rule: not_null
    column: city
  - rule: unique
    column: id
  - rule: range
    column: age
    min: 18
    max: 100
  - rule: allowed_values
    column: city
    values: [Paris, Lyon, Nice]
  - rule: regex
    column: email
    pattern: '^[a-z0-9]+@example\\.com$'
  - rule: mean
    column: score
    expected: 50.25
    tolerance: 0.01
  - rule: quantile
    column: score
    q: 0.5
    expected: 50.25
    tolerance: 0.5
  - rule: freshness
    column: seen
    max_age: 10days
";

fn at(date: &str) -> SystemTime {
    humantime::parse_rfc3339(date).unwrap()
}

#[test]
fn every_rule_passes_on_good_data() {
    let d = data(&good_csv());
    let r = check(&d, &rules(EVERY_RULE), at("2026-12-01T00:00:00Z"));
    let failed: Vec<_> = r.results.iter().filter(|x| !x.passed).collect();
    assert!(failed.is_empty(), "{failed:#?}");
    assert!(r.passed);
    assert_eq!(r.results.len(), 10);
    assert_eq!(r.row_count, 200);
    let unique = &r.results[3];
    assert_eq!(
        (unique.failing_rows, unique.checked_rows),
        (Some(0), Some(200))
    );
}

#[test]
fn row_rules_fail_with_counts_and_failing_rows() {
    let d = data(&bad_csv());
    let r = check(&d, &rules(EVERY_RULE), at("2026-12-01T00:00:00Z"));
    let by_kind = |k: &str| r.results.iter().find(|x| x.rule.kind() == k).unwrap();
    assert!(!r.passed);
    for kind in ["schema", "row_count", "mean", "quantile", "freshness"] {
        assert!(by_kind(kind).passed, "{kind}: {:?}", by_kind(kind));
    }

    let not_null = by_kind("not_null");
    assert!(!not_null.passed);
    assert_eq!(not_null.failing_rows, Some(1));
    assert_eq!(not_null.samples[0].row, 7);
    assert_eq!(not_null.samples[0].value, None);

    let unique = by_kind("unique");
    assert!(!unique.passed);
    assert_eq!(unique.failing_rows, Some(1));
    assert_eq!(unique.samples[0].row, 3);
    assert_eq!(unique.samples[0].value.as_deref(), Some("2"));

    let range = by_kind("range");
    assert_eq!(range.failing_rows, Some(1));
    assert_eq!(range.samples[0].row, 5);
    assert_eq!(range.samples[0].value.as_deref(), Some("130"));
    assert_eq!(range.observed, "1 of 200 rows fail (0.5%)");

    // The missing city is left to not_null; Berlin fails.
    let allowed = by_kind("allowed_values");
    assert_eq!(
        (allowed.failing_rows, allowed.checked_rows),
        (Some(1), Some(199))
    );
    assert_eq!(allowed.samples[0].row, 8);
    assert_eq!(allowed.samples[0].value.as_deref(), Some("Berlin"));
    assert_eq!(allowed.samples[0].file, "people.csv");

    let regex = by_kind("regex");
    assert_eq!(regex.failing_rows, Some(1));
    assert_eq!(regex.samples[0].value.as_deref(), Some("nobody"));
    assert_eq!(r.failed, 5);
}

#[test]
fn mostly_lets_a_share_of_rows_fail() {
    let d = data(&bad_csv());
    let lenient = rules(
        "  - rule: range\n    column: age\n    max: 100\n    mostly: 0.99\n  - rule: not_null\n    column: city\n    mostly: 0.999\n",
    );
    let r = check(&d, &lenient, SystemTime::now());
    assert!(r.results[0].passed, "{:?}", r.results[0]);
    // 1 missing of 200 is more than 0.1%.
    assert!(!r.results[1].passed);
}

#[test]
fn table_rules_fail_from_the_profile() {
    let d = data(&good_csv());
    let strict = rules(
        "
  - rule: schema
    columns: [{name: id, type: string}, {name: age}, {name: zip}]
    exact: true
  - rule: schema
    columns: [{name: age}, {name: id}]
    exact: false
  - rule: row_count
    min: 500
  - rule: mean
    column: score
    expected: 60
    tolerance: 1
  - rule: quantile
    column: score
    q: 0.9
    expected: 50
    tolerance: 1
  - rule: freshness
    column: seen
    max_age: 24h
  - rule: freshness
    column: city
    max_age: 24h
  - rule: mean
    column: nowhere
    expected: 1
    tolerance: 1
  - rule: range
    column: city
    min: 0
",
    );
    let r = check(&d, &strict, at("2026-12-10T00:00:00Z"));
    let passed: Vec<bool> = r.results.iter().map(|x| x.passed).collect();
    assert_eq!(
        passed,
        [false, true, false, false, false, false, false, false, false]
    );
    let observed: Vec<&str> = r.results.iter().map(|x| x.observed.as_str()).collect();
    assert_eq!(
        observed[0],
        "id is integer not string; missing zip; extra city; extra email; extra score; extra seen"
    );
    assert_eq!(observed[2], "200 rows");
    assert_eq!(observed[3], "mean 50.25 (off by 9.75, 1 allowed)");
    assert_eq!(observed[4], "p90 90.05 (off by 40.05)");
    assert_eq!(observed[5], "newest 2026-11-28T00:00:00Z, 12days old");
    assert_eq!(observed[6], "'city' is string, not a date or datetime");
    assert_eq!(observed[7], "no column 'nowhere'");
    assert_eq!(observed[8], "'city' is string, not numeric");
}

#[test]
fn columns_in_another_order_fail_an_exact_schema() {
    let d = data(&good_csv());
    let r = check(
        &d,
        &rules(
            "  - rule: schema\n    columns: [{name: age}, {name: id}, {name: city}, {name: email}, {name: score}, {name: seen}]\n",
        ),
        SystemTime::now(),
    );
    assert!(!r.passed);
    assert_eq!(r.results[0].observed, "columns in another order");
    // Whole numbers satisfy a float column; text does not.
    let r = check(
        &d,
        &rules(
            "  - rule: schema\n    exact: false\n    columns: [{name: id, type: float}]\n  - rule: schema\n    exact: false\n    columns: [{name: city, type: float}]\n",
        ),
        SystemTime::now(),
    );
    assert!(r.results[0].passed, "{:?}", r.results[0]);
    assert_eq!(r.results[1].observed, "city is string not float");
}

#[test]
fn table_rules_alone_do_not_read_rows() {
    let d = data(&good_csv());
    let r = validate(
        "people",
        &rules("  - rule: row_count\n    max: 10\n"),
        &d.table,
        None,
        SystemTime::now(),
    )
    .unwrap();
    assert!(!r.passed);
    assert!(
        validate(
            "people",
            &rules("  - rule: unique\n    column: id\n"),
            &d.table,
            None,
            SystemTime::now()
        )
        .is_err()
    );
}

#[test]
fn inferred_rules_pass_on_their_reference_and_catch_the_faults() {
    let good = data(&good_csv());
    let unique = unique_columns(&good.files, &unique_candidates(&good.table)).unwrap();
    // id and email never repeat; age repeats.
    assert_eq!(unique, ["id", "email"]);
    let inferred = infer(&good.table, &unique);
    let yaml = inferred.to_yaml().unwrap();
    let again = RuleSet::from_yaml(&yaml).unwrap();
    assert_eq!(again, inferred);
    assert!(yaml.contains("rule: allowed_values"), "{yaml}");
    let now = SystemTime::now() + Duration::from_secs(3600);
    let r = check(&good, &inferred, now);
    let failed: Vec<_> = r.results.iter().filter(|x| !x.passed).collect();
    assert!(failed.is_empty(), "{failed:#?}");

    let bad = data(&bad_csv());
    let r = check(&bad, &inferred, now);
    let failed: Vec<(String, Option<String>)> = r
        .results
        .iter()
        .filter(|x| !x.passed)
        .map(|x| (x.rule.kind().to_string(), x.rule.column().map(String::from)))
        .collect();
    let named = |k: &str, c: &str| (k.to_string(), Some(c.to_string()));
    for want in [
        named("not_null", "city"),
        named("unique", "id"),
        named("range", "age"),
        named("allowed_values", "city"),
    ] {
        assert!(failed.contains(&want), "{want:?} not in {failed:?}");
    }
}

#[test]
fn folders_report_the_file_of_a_failing_row() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, body: &str| -> (String, PathBuf) {
        let p = dir.path().join(name);
        std::fs::write(&p, body).unwrap();
        (name.to_string(), p)
    };
    let files = vec![
        write("a.csv", "x,y\n1,a\n2,b\n"),
        write("b.csv", "x,y\n3,c\n-4,d\n"),
    ];
    let paths: Vec<&Path> = files.iter().map(|(_, p)| p.as_path()).collect();
    let table = profile_files(Format::Csv, &paths).unwrap();
    let files = Files {
        format: Format::Csv,
        files,
    };
    let r = validate(
        "parts",
        &rules("  - rule: range\n    column: x\n    min: 0\n"),
        &table,
        Some(&files),
        SystemTime::now(),
    )
    .unwrap();
    let s = &r.results[0].samples[0];
    assert_eq!(
        (s.file.as_str(), s.row, s.value.as_deref()),
        ("b.csv", 2, Some("-4"))
    );
}

#[test]
fn numeric_allowed_values_and_parquet_rows() {
    use polars::prelude::*;
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("t.parquet");
    let mut df = df!(
        "grade" => [1i64, 2, 3, 2, 5],
        "ok" => [true, true, false, true, true],
    )
    .unwrap();
    ParquetWriter::new(std::fs::File::create(&p).unwrap())
        .finish(&mut df)
        .unwrap();
    let table = profile_files(Format::Parquet, &[p.as_path()]).unwrap();
    let files = Files {
        format: Format::Parquet,
        files: vec![("t.parquet".into(), p.clone())],
    };
    let r = validate(
        "t",
        &rules(
            "  - rule: allowed_values\n    column: grade\n    values: [1, 2.0, '3']\n  - rule: allowed_values\n    column: ok\n    values: [true]\n  - rule: allowed_values\n    column: grade\n    values: [one]\n",
        ),
        &table,
        Some(&files),
        SystemTime::now(),
    )
    .unwrap();
    assert_eq!(r.results[0].samples[0].value.as_deref(), Some("5"));
    assert_eq!(r.results[0].samples[0].row, 5);
    assert_eq!(r.results[1].samples[0].row, 3);
    assert_eq!(
        r.results[2].observed,
        "'grade' is numeric but 'one' is not a number"
    );
}

/// SplitMix64: a seeded stream of uniform numbers in (0, 1).
struct Stream(u64);

impl Stream {
    fn uniform(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64 + 0.5 / (1u64 << 53) as f64
    }

    fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

/// `n` rows of five differently shaped columns: normal, skewed (log-normal), small counts
/// (many ties), a 0/1 flag and uniform; `shift` is added to the normal column.
fn shaped_csv(n: usize, seed: u64, shift: f64) -> Vec<[f64; 5]> {
    let mut s = Stream(seed);
    (0..n)
        .map(|_| {
            let counts = (0..8).filter(|_| s.uniform() < 0.3).count() as f64;
            [
                50.0 + 10.0 * s.normal() + shift,
                (s.normal() * 0.8).exp(),
                counts,
                f64::from(u8::from(s.uniform() < 0.35)),
                s.uniform() * 100.0,
            ]
        })
        .collect()
}

fn rows_csv(rows: &[[f64; 5]]) -> String {
    let mut s = String::from("height,income,visits,churned,score\n");
    for r in rows {
        s.push_str(&format!(
            "{},{},{},{},{}\n",
            r[0], r[1], r[2] as i64, r[3] as i64, r[4]
        ));
    }
    s
}

/// The mean and quantile rules that failed, as (kind, column).
fn failed_statistics(r: &Report) -> Vec<(String, String)> {
    r.results
        .iter()
        .filter(|x| !x.passed && matches!(x.rule.kind(), "mean" | "quantile"))
        .map(|x| {
            (
                format!("{} ({})", x.rule.kind(), x.observed),
                x.rule.column().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[test]
fn inferred_statistics_allow_for_sampling_so_samples_pass_and_shifts_fail() {
    let reference_rows = shaped_csv(4000, 1, 0.0);
    let reference = data(&rows_csv(&reference_rows));
    let inferred = infer(&reference.table, &[]);
    let yaml = inferred.to_yaml().unwrap();
    assert!(yaml.contains("rows: 4000"), "{yaml}");
    assert_eq!(RuleSet::from_yaml(&yaml).unwrap(), inferred);
    let now = SystemTime::now();
    // Random samples of the reference's own rows (70%, and 5%) pass every rule.
    let mut pick = Stream(99);
    for (round, share) in [0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.05, 0.05]
        .into_iter()
        .enumerate()
    {
        let sample: Vec<[f64; 5]> = reference_rows
            .iter()
            .filter(|_| pick.uniform() < share)
            .copied()
            .collect();
        let r = check(&data(&rows_csv(&sample)), &inferred, now);
        let failed: Vec<String> = r
            .results
            .iter()
            // A 5% sample has fewer rows than the row-count rule allows, rightly.
            .filter(|x| !x.passed)
            .filter(|x| share > 0.5 || x.rule.kind() != "row_count")
            .map(|x| format!("{} {:?}: {}", x.rule.kind(), x.rule.column(), x.observed))
            .collect();
        assert!(
            failed.is_empty(),
            "sample {round} ({} rows): {failed:#?}",
            sample.len()
        );
    }
    // A fresh draw from the same distributions passes the statistics too.
    let fresh = check(&data(&rows_csv(&shaped_csv(4000, 2, 0.0))), &inferred, now);
    assert!(
        failed_statistics(&fresh).is_empty(),
        "{:#?}",
        failed_statistics(&fresh)
    );
    // The same rows with one column shifted by a third of its standard deviation fail its
    // mean and middle quantiles, and nothing else's.
    let shifted = check(
        &data(&rows_csv(&shaped_csv(4000, 1, 10.0 / 3.0))),
        &inferred,
        now,
    );
    let failed = failed_statistics(&shifted);
    assert!(
        failed.iter().all(|(_, c)| c == "height"),
        "only the shifted column fails: {failed:#?}"
    );
    for kind in ["mean", "quantile"] {
        assert!(
            failed.iter().any(|(k, _)| k.starts_with(kind)),
            "{kind} of height fails: {failed:#?}"
        );
    }
    assert!(failed.len() >= 4, "{failed:#?}");
}

#[test]
fn sampling_rules_need_rows_or_a_tolerance_and_say_so() {
    for (body, says) in [
        (
            "  - {rule: mean, column: x, expected: 1}",
            "give either tolerance or rows",
        ),
        (
            "  - {rule: mean, column: x, expected: 1, tolerance: 1, rows: 10}",
            "give either tolerance or rows",
        ),
        (
            "  - {rule: mean, column: x, expected: 1, rows: 10}",
            "give std",
        ),
        (
            "  - {rule: quantile, column: x, q: 0.5, expected: 1, rows: 10, z: 0}",
            "z must be above 0",
        ),
    ] {
        let e = RuleSet::from_yaml(&format!("format: keel.rules/v1\nrules:\n{body}"))
            .unwrap_err()
            .to_string();
        assert!(e.contains(says) && e.contains("rule 1"), "{body}: {e}");
    }
}
