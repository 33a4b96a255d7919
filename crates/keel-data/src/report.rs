//! A dataset version's profile as one self-contained HTML page: a summary, then per column its
//! statistics and a chart (histogram of a numeric column, most frequent values of a text one),
//! drawn as inline SVG so the file opens anywhere without network access.

use maud::{DOCTYPE, Markup, PreEscaped, html};

use crate::charts;
use crate::profile::{ColumnProfile, ColumnStats, NumericStats, Schema, StringStats};
use crate::profile::{Profile, TimeStats};
use crate::rules::num;

/// The page for a table titled `title`, with `facts` (label, value) shown above the columns.
pub fn html(title: &str, facts: &[(&str, String)], schema: &Schema, profile: &Profile) -> String {
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { (title) " · keel" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                h1 { (title) }
                table.facts {
                    @for (label, value) in facts {
                        tr { th { (label) } td { (value) } }
                    }
                    tr { th { "rows" } td { (profile.row_count) } }
                    tr { th { "columns" } td { (profile.columns.len()) } }
                    @if !profile.exact {
                        tr { th { "note" } td { "quantiles and histograms estimated from a uniform sample" } }
                    }
                }
                @for (c, s) in profile.columns.iter().zip(&schema.columns) {
                    (column(c, &s.dtype, profile.row_count))
                }
            }
        }
    };
    page.into_string()
}

fn column(c: &ColumnProfile, dtype: &str, rows: u64) -> Markup {
    let missing = if rows > 0 {
        format!(
            "{} ({}%)",
            c.nulls,
            num(c.nulls as f64 * 100.0 / rows as f64)
        )
    } else {
        "0".into()
    };
    let (kind, stats, chart): (&str, Vec<(&str, String)>, Option<String>) = match &c.stats {
        ColumnStats::Numeric(n) => (
            "numeric",
            numeric_stats(n),
            charts::histogram(&n.histogram, &|v| num(*v)),
        ),
        ColumnStats::Categorical(s) => ("categorical", string_stats(s), top_svg(&s.top, s)),
        ColumnStats::Text(s) => ("text", string_stats(s), top_svg(&s.top, s)),
        ColumnStats::Time(t) => (
            "time",
            time_stats(t),
            t.histogram
                .as_ref()
                .and_then(|h| charts::histogram(h, &|v| day(*v as i64))),
        ),
        ColumnStats::Empty => ("empty", Vec::new(), None),
    };
    html! {
        section.column {
            h2 { (c.name) span.kind { (dtype) " · " (kind) } }
            div.body {
                table.stats {
                    tr { th { "present" } td { (c.count) } }
                    tr { th { "missing" } td { (missing) } }
                    @for (label, value) in &stats {
                        tr { th { (label) } td { (value) } }
                    }
                }
                @if let Some(svg) = chart {
                    div.chart { (PreEscaped(svg)) }
                }
            }
        }
    }
}

fn numeric_stats(n: &NumericStats) -> Vec<(&'static str, String)> {
    let q = |p: usize| n.quantiles.get(p - 1).map_or("-".into(), |v| num(*v));
    let mut out = vec![
        ("mean", num(n.mean)),
        ("std", num(n.std)),
        ("min", num(n.min)),
        ("p5", q(5)),
        ("p25", q(25)),
        ("median", q(50)),
        ("p75", q(75)),
        ("p95", q(95)),
        ("max", num(n.max)),
    ];
    if n.nan_count > 0 {
        out.push(("NaN", n.nan_count.to_string()));
    }
    out
}

fn string_stats(s: &StringStats) -> Vec<(&'static str, String)> {
    vec![
        (
            "distinct",
            if s.capped {
                format!("more than {}", s.cardinality)
            } else {
                s.cardinality.to_string()
            },
        ),
        ("length min", s.min_length.to_string()),
        ("length mean", num(s.mean_length)),
        ("length max", s.max_length.to_string()),
    ]
}

fn time_stats(t: &TimeStats) -> Vec<(&'static str, String)> {
    vec![
        ("earliest", rfc3339(t.min_ms)),
        ("latest", rfc3339(t.max_ms)),
    ]
}

/// `2026-11-30T08:00:00Z` from epoch milliseconds.
pub fn rfc3339(ms: i64) -> String {
    let d = std::time::Duration::from_millis(ms.unsigned_abs());
    let t = if ms >= 0 {
        std::time::UNIX_EPOCH + d
    } else {
        std::time::UNIX_EPOCH - d
    };
    humantime::format_rfc3339_seconds(t).to_string()
}

/// `2026-11-30` from epoch milliseconds.
fn day(ms: i64) -> String {
    rfc3339(ms).chars().take(10).collect()
}

/// Horizontal bars of the most frequent values, most frequent on top.
fn top_svg(top: &[(String, u64)], s: &StringStats) -> Option<String> {
    let shown: Vec<(String, f64)> = top
        .iter()
        .take(12)
        .map(|(v, c)| (v.clone(), *c as f64))
        .collect();
    let caption = if s.cardinality as usize > shown.len() {
        format!("{} most frequent of {}", shown.len(), s.cardinality)
    } else {
        "every value".to_string()
    };
    charts::bars(&shown, &caption, "rows")
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1100px;color:#1d2733;padding:0 1rem}\
h1{font-size:1.5rem}h2{font-size:1.1rem;margin:0 0 .5rem}\
.kind{font-weight:normal;color:#5b6b7c;margin-left:.6rem;font-size:.9rem}\
table{border-collapse:collapse}th{text-align:left;font-weight:600;padding:2px 12px 2px 0;color:#3d4b59}\
td{padding:2px 0;font-variant-numeric:tabular-nums}\
.facts{margin-bottom:1.5rem}.column{border-top:1px solid #d8dee6;padding:1rem 0}\
.body{display:flex;gap:2rem;align-items:flex-start;flex-wrap:wrap}.stats{min-width:220px}";
