//! The charts a training run stores as artifacts, as SVG: the ROC curve and the confusion
//! matrix of a classifier, predicted against actual values and residuals of a regressor, and
//! feature importance.

use keel_data::charts::{BAR, HEIGHT, LABEL_FONT, WIDTH, bars};
use keel_data::rules::num;
use plotters::prelude::*;

/// Points drawn at most in a scatter plot (a seeded choice of rows beyond).
pub const MAX_POINTS: usize = 5_000;

/// The ROC curve (points from [`keel_stats::classification::roc_curve`]) with the diagonal
/// of a random score, titled with the AUC.
pub fn roc(curve: &[(f64, f64, f64)], auc: f64) -> Option<String> {
    if curve.is_empty() {
        return None;
    }
    let side = HEIGHT + 120;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (side + 40, side)).into_drawing_area();
        root.fill(&WHITE).ok()?;
        let mut chart = ChartBuilder::on(&root)
            .margin(12)
            .caption(format!("ROC curve, AUC {}", num(auc)), ("sans-serif", 14))
            .x_label_area_size(36)
            .y_label_area_size(48)
            .build_cartesian_2d(0.0..1.0, 0.0..1.0)
            .ok()?;
        chart
            .configure_mesh()
            .x_desc("false positive rate")
            .y_desc("true positive rate")
            .label_style(LABEL_FONT)
            .axis_desc_style(LABEL_FONT)
            .draw()
            .ok()?;
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(0.0, 0.0), (1.0, 1.0)],
                ShapeStyle::from(&RGBColor(0xaa, 0xaa, 0xaa)).stroke_width(1),
            )))
            .ok()?;
        chart
            .draw_series(std::iter::once(PathElement::new(
                curve.iter().map(|(f, t, _)| (*f, *t)).collect::<Vec<_>>(),
                ShapeStyle::from(&BAR).stroke_width(2),
            )))
            .ok()?;
        root.present().ok()?;
    }
    Some(svg)
}

/// The confusion matrix as a grid of counts, true classes down, predicted across, each cell
/// shaded by its share of its row.
pub fn confusion(matrix: &[Vec<u64>], labels: &[String]) -> Option<String> {
    let n = matrix.len();
    if n == 0 || labels.len() != n {
        return None;
    }
    let cell = (360 / n as u32).clamp(24, 90);
    let left = 16 + 8 * labels.iter().map(|l| l.chars().count().min(16)).max()? as u32;
    let (w, h) = (left + cell * n as u32 + 24, 56 + cell * n as u32 + 16);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area();
        root.fill(&WHITE).ok()?;
        let font = ("sans-serif", 12).into_font();
        root.draw(&Text::new(
            "confusion matrix (rows: true, columns: predicted)",
            (8, 8),
            ("sans-serif", 13).into_font(),
        ))
        .ok()?;
        let top: u32 = 56;
        for (j, l) in labels.iter().enumerate() {
            let name: String = l.chars().take(16).collect();
            let x = (left + cell * j as u32 + 4) as i32;
            root.draw(&Text::new(name, (x, top as i32 - 18), font.clone()))
                .ok()?;
        }
        for (i, row) in matrix.iter().enumerate() {
            let total: u64 = row.iter().sum();
            let y = (top + cell * i as u32) as i32;
            let name: String = labels[i].chars().take(16).collect();
            root.draw(&Text::new(name, (8, y + cell as i32 / 2 - 6), font.clone()))
                .ok()?;
            for (j, count) in row.iter().enumerate() {
                let share = if total > 0 {
                    *count as f64 / total as f64
                } else {
                    0.0
                };
                let x = (left + cell * j as u32) as i32;
                let shade = BAR.mix(0.1 + 0.9 * share);
                root.draw(&Rectangle::new(
                    [(x, y), (x + cell as i32 - 2, y + cell as i32 - 2)],
                    shade.filled(),
                ))
                .ok()?;
                let ink = if share > 0.5 { WHITE } else { BLACK };
                root.draw(&Text::new(
                    count.to_string(),
                    (x + 6, y + cell as i32 / 2 - 6),
                    font.clone().color(&ink),
                ))
                .ok()?;
            }
        }
        root.present().ok()?;
    }
    Some(svg)
}

/// Predicted against actual values (left) and residuals against predicted values (right),
/// at most [`MAX_POINTS`] rows, chosen evenly.
pub fn residuals(y_true: &[f64], y_pred: &[f64]) -> Option<String> {
    if y_true.is_empty() || y_true.len() != y_pred.len() {
        return None;
    }
    let step = y_true.len().div_ceil(MAX_POINTS);
    let points: Vec<(f64, f64)> = y_true
        .iter()
        .zip(y_pred)
        .step_by(step)
        .map(|(t, p)| (*t, *p))
        .filter(|(t, p)| t.is_finite() && p.is_finite())
        .collect();
    let range = |it: &mut dyn Iterator<Item = f64>| {
        let (lo, hi) = it.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
        let pad = ((hi - lo) * 0.05).max(1e-9);
        (lo - pad)..(hi + pad)
    };
    let values = range(&mut points.iter().flat_map(|(t, p)| [*t, *p]));
    let errors = range(&mut points.iter().map(|(t, p)| t - p));
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (2 * WIDTH, HEIGHT + 60)).into_drawing_area();
        root.fill(&WHITE).ok()?;
        let (left, right) = root.split_horizontally(WIDTH);
        let fitted: Vec<(f64, f64)> = points.iter().map(|(t, p)| (*t, *p)).collect();
        let residual: Vec<(f64, f64)> = points.iter().map(|(t, p)| (*p, t - p)).collect();
        let axes = [("actual", "predicted"), ("predicted", "residual")];
        scatter(
            &left,
            "predicted against actual",
            axes[0],
            (values.clone(), values.clone()),
            &fitted,
            true,
        )?;
        scatter(
            &right,
            "residuals (actual - predicted)",
            axes[1],
            (values, errors),
            &residual,
            false,
        )?;
        root.present().ok()?;
    }
    Some(svg)
}

/// One scatter plot on `area`, with the line y = x when `diagonal`.
fn scatter<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    caption: &str,
    (x_desc, y_desc): (&str, &str),
    (xs, ys): (std::ops::Range<f64>, std::ops::Range<f64>),
    points: &[(f64, f64)],
    diagonal: bool,
) -> Option<()> {
    let mut chart = ChartBuilder::on(area)
        .margin(10)
        .caption(caption, ("sans-serif", 13))
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(xs.clone(), ys)
        .ok()?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .x_label_formatter(&|v| num(*v))
        .y_label_formatter(&|v| num(*v))
        .label_style(LABEL_FONT)
        .axis_desc_style(LABEL_FONT)
        .draw()
        .ok()?;
    if diagonal {
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(xs.start, xs.start), (xs.end, xs.end)],
                ShapeStyle::from(&RGBColor(0xaa, 0xaa, 0xaa)).stroke_width(1),
            )))
            .ok()?;
    }
    chart
        .draw_series(
            points
                .iter()
                .map(|(x, y)| Circle::new((*x, *y), 2, BAR.mix(0.5).filled())),
        )
        .ok()?;
    Some(())
}

/// Feature importance as horizontal bars, largest first, at most `top` features.
pub fn importance(names: &[String], values: &[f64], top: usize) -> Option<String> {
    let mut items: Vec<(String, f64)> = names.iter().cloned().zip(values.iter().copied()).collect();
    items.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()).then_with(|| a.0.cmp(&b.0)));
    items.truncate(top);
    bars(&items, "feature importance", "importance")
}

/// Rows per cluster as horizontal bars, largest first.
pub fn cluster_sizes(sizes: &[u64]) -> Option<String> {
    let mut items: Vec<(String, f64)> = sizes
        .iter()
        .enumerate()
        .map(|(k, n)| (format!("cluster {k}"), *n as f64))
        .collect();
    items.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    bars(&items, "cluster sizes (held-out rows)", "rows")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_draw_their_data() {
        let curve = keel_stats::classification::roc_curve(
            &[true, false, true, false],
            &[0.9, 0.8, 0.7, 0.1],
        );
        let svg = roc(&curve, 0.75).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("AUC 0.75"), "{svg}");
        let svg = confusion(&[vec![5, 1], vec![2, 7]], &["no".into(), "yes".into()]).unwrap();
        for text in ["\n5\n", "\n1\n", "\n2\n", "\n7\n", "\nyes\n"] {
            assert!(svg.contains(text), "{text:?} missing");
        }
        assert!(confusion(&[vec![1]], &[]).is_none());
        let y: Vec<f64> = (0..20_000).map(f64::from).collect();
        let p: Vec<f64> = y.iter().map(|v| v * 1.1).collect();
        let svg = residuals(&y, &p).unwrap();
        assert_eq!(svg.matches("<circle").count(), 2 * MAX_POINTS);
        let svg = importance(&["a".into(), "b".into(), "c".into()], &[0.1, -0.5, 0.3], 2).unwrap();
        assert!(svg.contains("\nb\n") && svg.contains("\nc\n") && !svg.contains("\na\n"));
        let svg = cluster_sizes(&[3, 9]).unwrap();
        assert!(
            svg.contains("\ncluster 1\n") && svg.contains("\ncluster 0\n"),
            "{svg}"
        );
    }
}
