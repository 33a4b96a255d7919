//! Printing for people: tables and times.

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{ContentArrangement, Table};

/// A table with keel's look and the given header.
pub fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header.to_vec());
    t
}

/// `2026-11-23 15:04:05` (UTC) from epoch milliseconds; `-` for none.
pub fn time(ms: Option<i64>) -> String {
    let Some(ms) = ms.filter(|m| *m > 0) else {
        return "-".into();
    };
    chrono::DateTime::from_timestamp_millis(ms)
        .map_or_else(|| "-".into(), |t| t.format("%Y-%m-%d %H:%M:%S").to_string())
}

/// `1h 02m`, `3m 05s`, `4.2s` from a span in milliseconds.
pub fn duration(start: Option<i64>, end: Option<i64>) -> String {
    match (start, end) {
        (Some(s), Some(e)) if e >= s => {
            let ms = e - s;
            if ms < 60_000 {
                format!("{:.1}s", ms as f64 / 1000.0)
            } else if ms < 3_600_000 {
                format!("{}m {:02}s", ms / 60_000, ms % 60_000 / 1000)
            } else {
                format!("{}h {:02}m", ms / 3_600_000, ms % 3_600_000 / 60_000)
            }
        }
        _ => "-".into(),
    }
}

/// A metric value as people read it.
pub fn number(v: &serde_json::Value) -> String {
    match v.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{f:.0}"),
        Some(f) => format!("{f:.4}"),
        None => v.as_str().unwrap_or("-").to_string(),
    }
}

/// `text` broken into lines of at most `width` characters (at spaces where it can) and cut
/// after `max_lines` lines with a note of how much was left out, so one long cell does not
/// widen a whole table.
pub fn fold(text: &str, width: usize, max_lines: usize) -> String {
    let width = width.max(8);
    let mut lines: Vec<String> = Vec::new();
    let mut rest: Vec<char> = text.chars().collect();
    while !rest.is_empty() {
        if lines.len() == max_lines {
            let left = rest.len();
            if let Some(last) = lines.last_mut() {
                last.push_str(&format!(" ... ({left} more characters)"));
            }
            break;
        }
        let take = if rest.len() <= width {
            rest.len()
        } else {
            rest[..width]
                .iter()
                .rposition(|c| *c == ' ')
                .filter(|&i| i > width / 2)
                .map_or(width, |i| i + 1)
        };
        let line: String = rest.drain(..take).collect();
        lines.push(line.trim_end().to_string());
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(time(Some(0)), "-");
        assert_eq!(time(Some(1_700_000_000_000)), "2023-11-14 22:13:20");
        assert_eq!(duration(Some(0), Some(4_200)), "4.2s");
        assert_eq!(duration(Some(0), Some(185_000)), "3m 05s");
        assert_eq!(duration(Some(0), Some(3_720_000)), "1h 02m");
        assert_eq!(number(&serde_json::json!(0.123456)), "0.1235");
        assert_eq!(number(&serde_json::json!("NaN")), "NaN");
    }

    #[test]
    fn long_cells_fold_and_are_cut() {
        assert_eq!(fold("short", 20, 3), "short");
        let long = "alpha beta gamma delta epsilon zeta eta theta iota kappa";
        let folded = fold(long, 20, 10);
        assert!(folded.lines().all(|l| l.chars().count() <= 20), "{folded}");
        assert_eq!(folded.replace('\n', " "), long);
        let cut = fold(&"x".repeat(900), 60, 3);
        assert_eq!(cut.lines().count(), 3);
        assert!(cut.ends_with("(720 more characters)"), "{cut}");
    }
}
