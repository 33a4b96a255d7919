//! A dataset version's profile as one self-contained HTML page: a summary, then per column its
//! statistics and a chart (histogram of a numeric column, most frequent values of a text one),
//! drawn as inline SVG so the file opens anywhere without network access.

use maud::{DOCTYPE, Markup, PreEscaped, html};
use plotters::prelude::*;

use crate::profile::{ColumnProfile, ColumnStats, Histogram, NumericStats, Schema, StringStats};
use crate::profile::{Profile, TimeStats};
use crate::rules::num;

const WIDTH: u32 = 520;
const HEIGHT: u32 = 260;
const BAR: RGBColor = RGBColor(0x3b, 0x6e, 0xa8);

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
            histogram_svg(&n.histogram, &|v| num(*v)),
        ),
        ColumnStats::Categorical(s) => ("categorical", string_stats(s), top_svg(&s.top, s)),
        ColumnStats::Text(s) => ("text", string_stats(s), top_svg(&s.top, s)),
        ColumnStats::Time(t) => (
            "time",
            time_stats(t),
            t.histogram
                .as_ref()
                .and_then(|h| histogram_svg(h, &|v| day(*v as i64))),
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

/// Bars of a histogram, value on x (labelled by `label`), count on y.
fn histogram_svg(h: &Histogram, label: &dyn Fn(&f64) -> String) -> Option<String> {
    let (lo, hi) = (*h.edges.first()?, *h.edges.last()?);
    let top = h.counts.iter().copied().max()?.max(1);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).ok()?;
        let mut chart = ChartBuilder::on(&root)
            .margin(8)
            .x_label_area_size(28)
            .y_label_area_size(56)
            .build_cartesian_2d(lo..hi, 0u64..top + top / 10 + 1)
            .ok()?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(6)
            .y_labels(5)
            .x_label_formatter(label)
            .y_desc("rows")
            .label_style(("sans-serif", 12))
            .axis_desc_style(("sans-serif", 12))
            .draw()
            .ok()?;
        chart
            .draw_series(h.counts.iter().enumerate().map(|(i, c)| {
                let mut bar = Rectangle::new([(h.edges[i], 0), (h.edges[i + 1], *c)], BAR.filled());
                bar.set_margin(0, 0, 1, 1);
                bar
            }))
            .ok()?;
        root.present().ok()?;
    }
    Some(svg)
}

/// Horizontal bars of the most frequent values, most frequent on top.
fn top_svg(top: &[(String, u64)], s: &StringStats) -> Option<String> {
    if top.is_empty() {
        return None;
    }
    let shown: Vec<&(String, u64)> = top.iter().take(12).collect();
    let most = shown.iter().map(|(_, c)| *c).max()?.max(1);
    let longest = shown
        .iter()
        .map(|(v, _)| v.chars().count().min(24))
        .max()
        .unwrap_or(1) as u32;
    let height = (HEIGHT / 2).max(40 + 20 * shown.len() as u32);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE).ok()?;
        let n = shown.len();
        // Bars run bottom to top: segment i shows the (n - 1 - i)th most frequent value.
        let label = |i: &usize| -> String {
            n.checked_sub(1 + *i)
                .and_then(|k| shown.get(k))
                .map_or(String::new(), |(v, _)| v.chars().take(24).collect())
        };
        let mut chart = ChartBuilder::on(&root)
            .margin(8)
            .x_label_area_size(28)
            .y_label_area_size(16 + 8 * longest)
            .caption(
                if s.cardinality as usize > shown.len() {
                    format!("{} most frequent of {}", shown.len(), s.cardinality)
                } else {
                    "every value".to_string()
                },
                ("sans-serif", 13),
            )
            .build_cartesian_2d(0u64..most + most / 10 + 1, (0..n).into_segmented())
            .ok()?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(n)
            .y_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => label(i),
                SegmentValue::Last => String::new(),
            })
            .x_labels(5)
            .x_desc("rows")
            .label_style(("sans-serif", 12))
            .axis_desc_style(("sans-serif", 12))
            .draw()
            .ok()?;
        chart
            .draw_series(shown.iter().enumerate().map(|(k, (_, c))| {
                let i = n - 1 - k;
                let mut bar = Rectangle::new(
                    [
                        (0, SegmentValue::Exact(i)),
                        (*c, SegmentValue::Exact(i + 1)),
                    ],
                    BAR.filled(),
                );
                bar.set_margin(2, 2, 0, 0);
                bar
            }))
            .ok()?;
        root.present().ok()?;
    }
    Some(svg)
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1100px;color:#1d2733;padding:0 1rem}\
h1{font-size:1.5rem}h2{font-size:1.1rem;margin:0 0 .5rem}\
.kind{font-weight:normal;color:#5b6b7c;margin-left:.6rem;font-size:.9rem}\
table{border-collapse:collapse}th{text-align:left;font-weight:600;padding:2px 12px 2px 0;color:#3d4b59}\
td{padding:2px 0;font-variant-numeric:tabular-nums}\
.facts{margin-bottom:1.5rem}.column{border-top:1px solid #d8dee6;padding:1rem 0}\
.body{display:flex;gap:2rem;align-items:flex-start;flex-wrap:wrap}.stats{min-width:220px}";
