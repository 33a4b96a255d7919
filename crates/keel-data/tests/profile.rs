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

/// A seeded stream of uniform numbers in [0, 1) (SplitMix64).
struct Uniform(u64);

impl Uniform {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn close(what: &str, got: f64, want: f64, rel: f64) {
    let scale = want.abs().max(1.0);
    assert!(
        (got - want).abs() <= rel * scale,
        "{what}: keel {got}, numpy {want}"
    );
}

#[test]
fn profiles_match_numpy_and_pandas_on_nulls_ties_and_extremes() {
    let Some(python) = keel_testenv::python(
        "profiles_match_numpy_and_pandas_on_nulls_ties_and_extremes",
        &["numpy", "pandas"],
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut u = Uniform(3);
    let mut csv = String::from("gauss,ties,extreme,skew,colour,flag\n");
    for i in 0..5000 {
        let gauss = if i % 9 == 0 {
            String::new()
        } else {
            let (a, b) = (u.next().max(1e-12), u.next());
            format!(
                "{}",
                10.0 * (-2.0 * a.ln()).sqrt() * (std::f64::consts::TAU * b).cos()
            )
        };
        // Integers 0..4 (every value a tie, some right on histogram edges).
        let ties = (u.next() * 5.0).floor() as i64;
        let extreme = match i % 7 {
            0 => "1e15".to_string(),
            1 => "-2.5e14".to_string(),
            2 => "1e-15".to_string(),
            3 => "0".to_string(),
            _ => format!("{}", u.next() * 1000.0),
        };
        let skew = (u.next() * 3.0).exp().powi(2);
        let colour = ["red", "green", "green", "blue", "blue", "blue"][(u.next() * 6.0) as usize];
        let colour = if i % 13 == 0 { "" } else { colour };
        let flag = if u.next() < 0.3 { "true" } else { "false" };
        csv.push_str(&format!(
            "{gauss},{ties},{extreme},{skew},{colour},{flag}\n"
        ));
    }
    let p = write(dir.path(), "mixed.csv", csv.as_bytes());
    let t = profile_files(Format::Csv, &[&p]).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/profile_reference.py");
    let out = std::process::Command::new(python)
        .arg(script)
        .arg(&p)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let want: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for c in &t.profile.columns {
        let w = &want[&c.name];
        assert_eq!(c.count, w["count"].as_u64().unwrap(), "{}: count", c.name);
        assert_eq!(c.nulls, w["nulls"].as_u64().unwrap(), "{}: nulls", c.name);
        match &c.stats {
            ColumnStats::Numeric(st) => {
                assert_eq!(w["kind"], "numeric", "{}", c.name);
                close(
                    &format!("{} mean", c.name),
                    st.mean,
                    w["mean"].as_f64().unwrap(),
                    1e-9,
                );
                close(
                    &format!("{} std", c.name),
                    st.std,
                    w["std"].as_f64().unwrap(),
                    1e-9,
                );
                assert_eq!(st.min, w["min"].as_f64().unwrap(), "{}", c.name);
                assert_eq!(st.max, w["max"].as_f64().unwrap(), "{}", c.name);
                for (k, (g, q)) in st
                    .quantiles
                    .iter()
                    .zip(w["quantiles"].as_array().unwrap())
                    .enumerate()
                {
                    close(
                        &format!("{} p{}", c.name, k + 1),
                        *g,
                        q.as_f64().unwrap(),
                        1e-12,
                    );
                }
                let counts: Vec<u64> = w["histogram"]["counts"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_u64().unwrap())
                    .collect();
                assert_eq!(st.histogram.counts, counts, "{} histogram", c.name);
                for (g, e) in st
                    .histogram
                    .edges
                    .iter()
                    .zip(w["histogram"]["edges"].as_array().unwrap())
                {
                    close(&format!("{} edge", c.name), *g, e.as_f64().unwrap(), 1e-12);
                }
            }
            ColumnStats::Categorical(st) | ColumnStats::Text(st) => {
                assert_eq!(w["kind"], "text", "{}", c.name);
                assert_eq!(
                    st.cardinality,
                    w["cardinality"].as_u64().unwrap(),
                    "{}",
                    c.name
                );
                for (value, n) in &st.top {
                    assert_eq!(
                        Some(*n),
                        w["counts"][value].as_u64(),
                        "{}: count of {value}",
                        c.name
                    );
                }
                let mut top: Vec<u64> = st.top.iter().map(|(_, n)| *n).collect();
                let mut sorted = top.clone();
                sorted.sort_unstable_by(|a, b| b.cmp(a));
                assert_eq!(top, sorted, "{}: most frequent first", c.name);
                top.clear();
            }
            other => panic!("{}: unexpected {other:?}", c.name),
        }
    }
}
