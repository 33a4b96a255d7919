//! Profiles of real files the tests write: CSV, Parquet and JSON lines, and the errors for
//! bad input.

use std::path::Path;

use keel_data::profile::{ColumnStats, profile_files};
use keel_data::{DataError, Format};
use polars::prelude::*;

fn write(dir: &Path, name: &str, body: &[u8]) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    p
}

/// 1,000 rows: x = 0..999 (mean 499.5), y with every 10th missing, c in {a, b, c, d},
/// t free text.
fn csv_text() -> String {
    let mut s = String::from("x,y,c,t\n");
    for i in 0..1000 {
        let y = if i % 10 == 0 {
            String::new()
        } else {
            format!("{}", i as f64 * 0.5)
        };
        s.push_str(&format!(
            "{i},{y},{},note number {i}\n",
            ["a", "b", "c", "d"][i % 4]
        ));
    }
    s
}

#[test]
fn csv_profile_has_exact_statistics() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "d.csv", csv_text().as_bytes());
    let t = profile_files(Format::Csv, &[&p]).unwrap();
    assert_eq!(t.row_count, 1000);
    let types: Vec<(&str, &str, bool)> = t
        .schema
        .columns
        .iter()
        .map(|c| (c.name.as_str(), c.dtype.as_str(), c.nullable))
        .collect();
    assert_eq!(
        types,
        [
            ("x", "integer", false),
            ("y", "float", true),
            ("c", "string", false),
            ("t", "string", false)
        ]
    );
    let x = &t.profile.columns[0];
    let ColumnStats::Numeric(n) = &x.stats else {
        panic!("x is numeric: {x:?}")
    };
    assert_eq!((x.count, x.nulls), (1000, 0));
    assert_eq!((n.min, n.max, n.mean), (0.0, 999.0, 499.5));
    // Sample standard deviation of 0..999: sqrt(1000 * 1001 / 12).
    assert!((n.std - (1000.0f64 * 1001.0 / 12.0).sqrt()).abs() < 1e-9);
    assert_eq!(n.quantiles.len(), 99);
    assert_eq!(n.quantiles[49], 499.5);
    assert!(
        (n.quantiles[0] - 9.99).abs() < 1e-9,
        "p1 {}",
        n.quantiles[0]
    );
    assert_eq!(n.histogram.counts.iter().sum::<u64>(), 1000);
    assert_eq!(t.profile.columns[1].nulls, 100);
    let ColumnStats::Categorical(c) = &t.profile.columns[2].stats else {
        panic!("c is categorical")
    };
    assert_eq!(c.cardinality, 4);
    assert_eq!(c.top[0], ("a".to_string(), 250));
    let ColumnStats::Text(s) = &t.profile.columns[3].stats else {
        panic!("t is text")
    };
    assert_eq!((s.min_length, s.max_length), (13, 15));
    assert!(t.profile.exact);
}

#[test]
fn parquet_and_json_lines_give_the_same_profile_as_csv() {
    let dir = tempfile::tempdir().unwrap();
    let csv = write(dir.path(), "d.csv", csv_text().as_bytes());
    let from_csv = profile_files(Format::Csv, &[&csv]).unwrap();

    let mut df = CsvReadOptions::default()
        .with_has_header(true)
        .try_into_reader_with_file_path(Some(csv.clone()))
        .unwrap()
        .finish()
        .unwrap();
    let pq = dir.path().join("d.parquet");
    ParquetWriter::new(std::fs::File::create(&pq).unwrap())
        .finish(&mut df)
        .unwrap();
    let from_parquet = profile_files(Format::Parquet, &[&pq]).unwrap();
    assert_eq!(from_parquet.profile, from_csv.profile);
    assert_eq!(from_parquet.schema, from_csv.schema);

    let mut lines = String::new();
    for i in 0..1000 {
        let y = if i % 10 == 0 {
            "null".to_string()
        } else {
            format!("{:?}", i as f64 * 0.5)
        };
        lines.push_str(&format!(
            "{{\"x\": {i}, \"y\": {y}, \"c\": \"{}\", \"t\": \"note number {i}\"}}\n",
            ["a", "b", "c", "d"][i % 4]
        ));
    }
    let jl = write(dir.path(), "d.jsonl", lines.as_bytes());
    let from_jsonl = profile_files(Format::Jsonl, &[&jl]).unwrap();
    assert_eq!(from_jsonl.profile, from_csv.profile);
}

#[test]
fn folder_of_files_profiles_as_one_table() {
    let dir = tempfile::tempdir().unwrap();
    let a = write(dir.path(), "a.csv", b"x,y\n1,a\n2,b\n");
    let b = write(dir.path(), "b.csv", b"x,y\n3,c\n");
    let t = profile_files(Format::Csv, &[&a, &b]).unwrap();
    assert_eq!(t.row_count, 3);
    let other = write(dir.path(), "c.csv", b"z\n1\n");
    let e = profile_files(Format::Csv, &[&a, &other]).unwrap_err();
    assert!(e.to_string().contains("differ from those of"), "{e}");
}

fn error_of(name: &str, body: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), name, body);
    let format = Format::from_path(&p);
    let e: DataError = profile_files(format, &[&p]).unwrap_err();
    let text = e.to_string();
    assert!(!text.contains('\n'), "one line: {text}");
    assert!(text.contains(name), "names the file: {text}");
    text
}

#[test]
fn bad_input_is_named_by_file_line_and_column() {
    assert!(
        error_of("ragged.csv", b"a,b\n1,2\n3,4,5\n6,7\n")
            .contains("line 3: 3 fields where the header has 2")
    );
    let utf8 = error_of("utf8.csv", b"a,b\n1,x\n2,\xff\xfe\n");
    assert!(utf8.contains("line 3, column 'b': invalid UTF-8"), "{utf8}");
    assert!(error_of("empty.csv", b"").contains("the file is empty"));
    assert!(error_of("bad.jsonl", b"{\"a\": 1}\n{oops\n").contains("line 2: invalid JSON"));
}

#[test]
fn a_column_mixing_numbers_and_text_is_read_as_text() {
    let dir = tempfile::tempdir().unwrap();
    let mut body = String::from("v\n");
    // Past the rows the types are first inferred from, so the read starts again.
    for i in 0..20_000 {
        body.push_str(&format!("{i}\n"));
    }
    body.push_str("n/a\n");
    let p = write(dir.path(), "mixed.csv", body.as_bytes());
    let t = profile_files(Format::Csv, &[&p]).unwrap();
    assert_eq!(t.schema.columns[0].dtype, "string");
    assert_eq!(t.row_count, 20_001);
}

#[test]
fn integers_beyond_64_bits_are_read_as_floats() {
    let dir = tempfile::tempdir().unwrap();
    // Early and late in the file, and in two columns.
    let mut body = String::from("id,big,other\n");
    body.push_str("1,123456789012345678901234567890,5\n");
    for i in 2..20_000 {
        body.push_str(&format!("{i},{i},{i}\n"));
    }
    body.push_str("20000,7,99999999999999999999999\n");
    let p = write(dir.path(), "big.csv", body.as_bytes());
    let t = profile_files(Format::Csv, &[&p]).unwrap();
    assert_eq!(t.row_count, 20_000);
    let types: Vec<&str> = t.schema.columns.iter().map(|c| c.dtype.as_str()).collect();
    assert_eq!(types, ["integer", "float", "float"]);
    let ColumnStats::Numeric(big) = &t.profile.columns[1].stats else {
        panic!("big is numeric")
    };
    assert_eq!(big.max, 1.2345678901234568e29);
}

#[test]
fn whole_tables_load_as_typed_columns() {
    use keel_data::columns::{Values, load_columns};
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "t.csv",
        b"n,s,d,b\n1,x,2026-11-01,true\n,y,2026-11-02,false\n3.5,,,true\n",
    );
    let t = load_columns(Format::Csv, &[&p]).unwrap();
    assert_eq!(t.names, ["n", "s", "d", "b"]);
    assert_eq!(t.rows(), 3);
    assert_eq!(
        t.get("n"),
        Some(&Values::Numbers(vec![Some(1.0), None, Some(3.5)]))
    );
    assert_eq!(
        t.get("s"),
        Some(&Values::Text(vec![
            Some("x".into()),
            Some("y".into()),
            None
        ]))
    );
    // Dates as epoch milliseconds; booleans as text.
    assert_eq!(
        t.get("d"),
        Some(&Values::Numbers(vec![
            Some(1_793_491_200_000.0),
            Some(1_793_577_600_000.0),
            None
        ]))
    );
    assert_eq!(
        t.get("b"),
        Some(&Values::Text(vec![
            Some("true".into()),
            Some("false".into()),
            Some("true".into())
        ]))
    );
}
