//! The report's charts as inline SVG (plotters, no fonts or system libraries needed): a
//! column's reference and current distributions over the same bins or categories, and a
//! score's course over the window.

use keel_data::profile::Sample;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

const WIDTH: u32 = 520;
const HEIGHT: u32 = 240;
const FONT: (&str, u32) = ("sans-serif", 12);
/// The reference's colour.
pub const REFERENCE: RGBColor = RGBColor(0x3b, 0x6e, 0xa8);
/// The current window's colour.
pub const CURRENT: RGBColor = RGBColor(0xd9, 0x6a, 0x1c);
/// Bins of a numeric column's chart.
const BINS: usize = 30;
/// Categories shown (the most frequent on either side).
const TOP: usize = 12;

/// Reference against current for one column: overlaid histograms of a numeric column over
/// shared bins, paired bars of a categorical column's most frequent values; shares of rows on
/// y, so sides of different sizes compare. `None` when there is nothing to draw.
pub fn distributions(reference: &Sample, current: &Sample) -> Option<String> {
    match (reference, current) {
        (Sample::Numeric(r), Sample::Numeric(c)) => numeric(r, c),
        (Sample::Counts(r), Sample::Counts(c)) => categories(r, c),
        _ => None,
    }
}

/// Shares of `sorted` in `BINS` equal bins over `[lo, hi]`.
fn shares(sorted: &[f64], lo: f64, hi: f64) -> Vec<f64> {
    let mut counts = vec![0u64; BINS];
    let width = (hi - lo) / BINS as f64;
    for v in sorted {
        let i = if width > 0.0 {
            (((v - lo) / width) as usize).min(BINS - 1)
        } else {
            0
        };
        counts[i] += 1;
    }
    let n = sorted.len().max(1) as f64;
    counts.into_iter().map(|c| c as f64 / n).collect()
}

fn numeric(r: &[f64], c: &[f64]) -> Option<String> {
    let lo = r.first()?.min(*c.first()?);
    let hi = r.last()?.max(*c.last()?);
    let (lo, hi) = if hi > lo {
        (lo, hi)
    } else {
        (lo - 0.5, hi + 0.5)
    };
    let (rs, cs) = (shares(r, lo, hi), shares(c, lo, hi));
    let top = rs.iter().chain(&cs).copied().fold(0.0, f64::max).max(1e-9) * 1.1;
    let width = (hi - lo) / BINS as f64;
    draw(|root| {
        let mut chart = ChartBuilder::on(root)
            .margin(8)
            .x_label_area_size(28)
            .y_label_area_size(52)
            .build_cartesian_2d(lo..hi, 0.0..top)
            .ok()?;
        chart
            .configure_mesh()
            .light_line_style(WHITE)
            .disable_x_mesh()
            .x_labels(6)
            .y_labels(5)
            .x_label_formatter(&|v| short(*v))
            .y_label_formatter(&|v| format!("{:.0}%", v * 100.0))
            .y_desc("rows")
            .label_style(FONT)
            .axis_desc_style(FONT)
            .draw()
            .ok()?;
        for (values, colour) in [(&rs, REFERENCE), (&cs, CURRENT)] {
            chart
                .draw_series(values.iter().enumerate().map(|(i, s)| {
                    let x0 = lo + width * i as f64;
                    let mut bar =
                        Rectangle::new([(x0, 0.0), (x0 + width, *s)], colour.mix(0.45).filled());
                    bar.set_margin(0, 0, 1, 1);
                    bar
                }))
                .ok()?;
        }
        Some(())
    })
}

fn categories(
    r: &std::collections::BTreeMap<String, u64>,
    c: &std::collections::BTreeMap<String, u64>,
) -> Option<String> {
    let (nr, nc) = (
        r.values().sum::<u64>().max(1) as f64,
        c.values().sum::<u64>().max(1) as f64,
    );
    let mut all: Vec<(&String, f64, f64)> = r
        .keys()
        .chain(c.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .map(|k| {
            (
                k,
                *r.get(k).unwrap_or(&0) as f64 / nr,
                *c.get(k).unwrap_or(&0) as f64 / nc,
            )
        })
        .collect();
    if all.is_empty() {
        return None;
    }
    all.sort_by(|a, b| (b.1.max(b.2)).total_cmp(&a.1.max(a.2)).then(a.0.cmp(b.0)));
    all.truncate(TOP);
    let names: Vec<String> = all.iter().map(|(k, _, _)| cut(k, 12)).collect();
    let top = all
        .iter()
        .map(|(_, a, b)| a.max(*b))
        .fold(0.0, f64::max)
        .max(1e-9)
        * 1.1;
    let n = all.len() as f64;
    draw(|root| {
        let mut chart = ChartBuilder::on(root)
            .margin(8)
            .x_label_area_size(28)
            .y_label_area_size(52)
            .build_cartesian_2d(0.0..n, 0.0..top)
            .ok()?;
        chart
            .configure_mesh()
            .light_line_style(WHITE)
            .disable_x_mesh()
            .x_labels(0)
            .y_labels(5)
            .y_label_formatter(&|v| format!("{:.0}%", v * 100.0))
            .y_desc("rows")
            .label_style(FONT)
            .axis_desc_style(FONT)
            .draw()
            .ok()?;
        for (side, colour) in [(0usize, REFERENCE), (1, CURRENT)] {
            chart
                .draw_series(all.iter().enumerate().map(|(i, (_, a, b))| {
                    let x0 = i as f64 + 0.1 + 0.4 * side as f64;
                    let v = if side == 0 { *a } else { *b };
                    Rectangle::new([(x0, 0.0), (x0 + 0.4, v)], colour.mix(0.8).filled())
                }))
                .ok()?;
        }
        // Each category's name under its pair of bars.
        let style = TextStyle::from(FONT.into_font()).pos(Pos::new(HPos::Center, VPos::Top));
        for (i, name) in names.iter().enumerate() {
            let (x, y) = chart.backend_coord(&(i as f64 + 0.5, 0.0));
            root.draw(&Text::new(name.clone(), (x, y + 6), style.clone()))
                .ok()?;
        }
        Some(())
    })
}

/// A score over the window: points `(time in ms, value)` joined by a line, with the threshold
/// it is held against as a dashed level when given.
pub fn timeline(points: &[(i64, f64)], threshold: Option<f64>, y_desc: &str) -> Option<String> {
    lines(&[(CURRENT, points)], threshold, y_desc)
}

/// Several series over the same times, each in its colour, with an optional dashed level.
pub fn lines(
    series: &[(RGBColor, &[(i64, f64)])],
    threshold: Option<f64>,
    y_desc: &str,
) -> Option<String> {
    let all = || series.iter().flat_map(|(_, s)| s.iter());
    let first = all().map(|p| p.0).min()?;
    let last = all().map(|p| p.0).max()?;
    let (x0, x1) = if last > first {
        (first, last)
    } else {
        (first - 1, last + 1)
    };
    let top = all()
        .map(|p| p.1)
        .chain(threshold)
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max)
        .max(1e-9)
        * 1.15;
    let span = x1 - x0;
    draw(|root| {
        let mut chart = ChartBuilder::on(root)
            .margin(8)
            .x_label_area_size(28)
            .y_label_area_size(52)
            .build_cartesian_2d(x0..x1, 0.0..top)
            .ok()?;
        chart
            .configure_mesh()
            .light_line_style(WHITE)
            .x_labels(5)
            .y_labels(5)
            .x_label_formatter(&|ms| clock(*ms, span))
            .y_label_formatter(&|v| short(*v))
            .y_desc(y_desc)
            .label_style(FONT)
            .axis_desc_style(FONT)
            .draw()
            .ok()?;
        if let Some(t) = threshold {
            chart
                .draw_series(dashes(x0, x1).map(|(a, b)| {
                    PathElement::new(
                        vec![(a, t), (b, t)],
                        RGBColor(0xb0, 0x30, 0x30).stroke_width(1),
                    )
                }))
                .ok()?;
        }
        for (colour, points) in series {
            let line: Vec<(i64, f64)> =
                points.iter().copied().filter(|p| p.1.is_finite()).collect();
            chart
                .draw_series(std::iter::once(PathElement::new(
                    line.clone(),
                    colour.stroke_width(2),
                )))
                .ok()?;
            chart
                .draw_series(line.into_iter().map(|p| Circle::new(p, 3, colour.filled())))
                .ok()?;
        }
        Some(())
    })
}

/// Pieces of a dashed level from `x0` to `x1`.
fn dashes(x0: i64, x1: i64) -> impl Iterator<Item = (i64, i64)> {
    let step = ((x1 - x0) / 40).max(1);
    (0..20).map(move |k| (x0 + 2 * k * step, (x0 + (2 * k + 1) * step).min(x1)))
}

fn draw(
    f: impl FnOnce(&DrawingArea<SVGBackend<'_>, plotters::coord::Shift>) -> Option<()>,
) -> Option<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).ok()?;
        f(&root)?;
        root.present().ok()?;
    }
    Some(svg)
}

/// A number in at most about six characters.
fn short(v: f64) -> String {
    let a = v.abs();
    if a != 0.0 && !(1e-3..1e6).contains(&a) {
        format!("{v:.1e}")
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// A time on the x axis: the clock to the second within an hour, to the minute within two
/// days, the date beyond.
fn clock(ms: i64, span_ms: i64) -> String {
    let t = crate::window::rfc3339(ms);
    let part = if span_ms <= 3_600_000 {
        11..19
    } else if span_ms <= 2 * 86_400_000 {
        11..16
    } else {
        5..16
    };
    t.get(part).unwrap_or(&t).replace('T', " ")
}

fn cut(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n - 1).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_sides_are_drawn_over_the_same_bins() {
        let r: Vec<f64> = (0..100).map(|i| i as f64 / 100.0).collect();
        let c: Vec<f64> = (0..100).map(|i| 0.5 + i as f64 / 100.0).collect();
        let svg = distributions(&Sample::Numeric(r), &Sample::Numeric(c)).unwrap();
        assert!(svg.starts_with("<svg"), "{svg}");
        let shares_r = shares(&[0.0, 0.5, 1.0, 1.0], 0.0, 1.0);
        assert_eq!(shares_r.len(), BINS);
        assert_eq!(shares_r[0], 0.25);
        assert_eq!(shares_r[BINS - 1], 0.5);
        assert!((shares_r.iter().sum::<f64>() - 1.0).abs() < 1e-12);

        let counts = |kv: &[(&str, u64)]| {
            Sample::Counts(kv.iter().map(|(k, v)| (k.to_string(), *v)).collect())
        };
        let svg = distributions(&counts(&[("a", 3), ("b", 1)]), &counts(&[("c", 2)])).unwrap();
        let label = |s: &str| format!("\n{s}\n</text>");
        assert!(
            svg.contains(&label("a")) && svg.contains(&label("c")),
            "{svg}"
        );
        assert!(distributions(&Sample::None, &counts(&[("a", 1)])).is_none());
        let t = timeline(&[(0, 0.1), (3_600_000, 0.3)], Some(0.1), "score").unwrap();
        assert!(t.contains(&label("00:00:00")), "{t}");
        let t = timeline(&[(0, 0.1), (7_200_000, 0.3)], Some(0.1), "score").unwrap();
        assert!(t.contains(&label("00:00")), "{t}");
    }
}
