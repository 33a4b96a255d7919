//! SVG charts drawn with plotters (no fonts or system libraries needed), returned as strings
//! to inline in HTML or store as artifacts: histograms and horizontal bar charts.

use plotters::prelude::*;

use crate::profile::Histogram;

/// Chart width in pixels.
pub const WIDTH: u32 = 520;
/// Chart height in pixels.
pub const HEIGHT: u32 = 260;
/// The colour of bars.
pub const BAR: RGBColor = RGBColor(0x3b, 0x6e, 0xa8);
/// Axis labels.
pub const LABEL_FONT: (&str, u32) = ("sans-serif", 12);

/// Bars of a histogram, value on x (labelled by `label`), count on y.
pub fn histogram(h: &Histogram, label: &dyn Fn(&f64) -> String) -> Option<String> {
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
            .label_style(LABEL_FONT)
            .axis_desc_style(LABEL_FONT)
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

/// Horizontal bars, the first item on top, each from 0 to its value (values may be negative),
/// labels cut to 24 characters.
pub fn bars(items: &[(String, f64)], caption: &str, x_desc: &str) -> Option<String> {
    if items.is_empty() || items.iter().any(|(_, v)| !v.is_finite()) {
        return None;
    }
    let lo = items.iter().map(|(_, v)| *v).fold(0.0, f64::min);
    let hi = items.iter().map(|(_, v)| *v).fold(0.0, f64::max);
    let pad = ((hi - lo) * 0.1).max(f64::EPSILON);
    let (lo, hi) = (if lo < 0.0 { lo - pad } else { 0.0 }, hi + pad);
    let longest = items
        .iter()
        .map(|(v, _)| v.chars().count().min(24))
        .max()
        .unwrap_or(1) as u32;
    let n = items.len();
    let height = (HEIGHT / 2).max(40 + 20 * n as u32);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE).ok()?;
        // Segment i (bottom to top) shows item n - 1 - i.
        let label = |i: &usize| -> String {
            n.checked_sub(1 + *i)
                .and_then(|k| items.get(k))
                .map_or(String::new(), |(v, _)| v.chars().take(24).collect())
        };
        let mut chart = ChartBuilder::on(&root)
            .margin(8)
            .x_label_area_size(28)
            .y_label_area_size(16 + 8 * longest)
            .caption(caption, ("sans-serif", 13))
            .build_cartesian_2d(lo..hi, (0..n).into_segmented())
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
            .x_label_formatter(&|v| crate::rules::num(*v))
            .x_desc(x_desc)
            .label_style(LABEL_FONT)
            .axis_desc_style(LABEL_FONT)
            .draw()
            .ok()?;
        chart
            .draw_series(items.iter().enumerate().map(|(k, (_, v))| {
                let i = n - 1 - k;
                let mut bar = Rectangle::new(
                    [
                        (0.0, SegmentValue::Exact(i)),
                        (*v, SegmentValue::Exact(i + 1)),
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
