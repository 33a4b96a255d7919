//! Which rows of the prediction log a check reads: a half-open time window
//! `[since, until)` in milliseconds since the epoch (UTC).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use keel_core::predlog::HOUR_MS;

use crate::error::{MonitorError, Result};

/// A time window: rows logged at or after `since_ms` and before `until_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Window {
    /// First millisecond in the window.
    pub since_ms: i64,
    /// First millisecond after it.
    pub until_ms: i64,
}

impl Window {
    /// `[since, until)`; fails unless `since < until`.
    pub fn new(since_ms: i64, until_ms: i64) -> Result<Self> {
        if since_ms >= until_ms {
            return Err(MonitorError::Invalid(format!(
                "the window's start ({}) is not before its end ({})",
                rfc3339(since_ms),
                rfc3339(until_ms)
            )));
        }
        Ok(Window { since_ms, until_ms })
    }

    /// The `span` (`1h`, `30min`, `7d`) up to `now_ms`.
    pub fn last(span: &str, now_ms: i64) -> Result<Self> {
        let d = humantime::parse_duration(span).map_err(|e| {
            MonitorError::Invalid(format!(
                "--window '{span}' is not a duration (1h, 30min, 7d): {e}"
            ))
        })?;
        let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        Window::new(now_ms.saturating_sub(ms), now_ms)
    }

    /// From `since` (default: the beginning) to `until` (default: `now_ms`), each an RFC 3339
    /// time (`2026-12-02T14:00:00Z`; no zone means UTC) or milliseconds since the epoch.
    pub fn between(since: Option<&str>, until: Option<&str>, now_ms: i64) -> Result<Self> {
        Window::between_named(("--since", since), ("--until", until), now_ms)
    }

    /// As [`Window::between`], naming the options the times came from in errors.
    pub fn between_named(
        since: (&str, Option<&str>),
        until: (&str, Option<&str>),
        now_ms: i64,
    ) -> Result<Self> {
        let (since_flag, since) = since;
        let (until_flag, until) = until;
        let since = since.map(|s| parse_time(since_flag, s)).transpose()?;
        let until = until.map(|s| parse_time(until_flag, s)).transpose()?;
        Window::new(since.unwrap_or(0), until.unwrap_or(now_ms))
    }

    /// Whether any of the hour starting at `hour_start_ms` is in the window.
    pub fn overlaps_hour(&self, hour_start_ms: i64) -> bool {
        hour_start_ms < self.until_ms && hour_start_ms.saturating_add(HOUR_MS) > self.since_ms
    }

    /// Whether `ms` is in the window.
    pub fn contains(&self, ms: i64) -> bool {
        (self.since_ms..self.until_ms).contains(&ms)
    }
}

impl std::fmt::Display for Window {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} .. {}",
            rfc3339(self.since_ms),
            rfc3339(self.until_ms)
        )
    }
}

/// A time given on the command line: RFC 3339 (UTC when no zone is given) or epoch
/// milliseconds. `what` names the option in the error.
pub fn parse_time(what: &str, s: &str) -> Result<i64> {
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    let t = humantime::parse_rfc3339_weak(s.trim_end_matches('Z')).map_err(|_| {
        MonitorError::Invalid(format!(
            "{what} '{s}' is not a time (2026-12-02T14:00:00Z or milliseconds since the epoch)"
        ))
    })?;
    Ok(millis(t))
}

/// The start of a log partition's hour from its folder name (`hour=2026-12-02T14`).
pub fn hour_start(folder: &str) -> Option<i64> {
    let hour = folder.strip_prefix("hour=")?;
    if hour.len() != 13 {
        return None;
    }
    humantime::parse_rfc3339(&format!("{hour}:00:00Z"))
        .ok()
        .map(millis)
}

fn millis(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

/// `2026-12-02T14:00:00.000Z` for epoch milliseconds (times before 1970 print as 1970).
pub fn rfc3339(ms: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    humantime::format_rfc3339_millis(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: i64 = 1_796_221_800_000; // 2026-12-02T14:30:00Z

    #[test]
    fn windows_parse_and_overlap_hours() {
        let w = Window::last("1h", T).unwrap();
        assert_eq!((w.since_ms, w.until_ms), (T - HOUR_MS, T));
        let h14 = hour_start("hour=2026-12-02T14").unwrap();
        assert_eq!(h14, T - 30 * 60_000);
        assert!(w.overlaps_hour(h14));
        assert!(w.overlaps_hour(h14 - HOUR_MS));
        assert!(!w.overlaps_hour(h14 - 2 * HOUR_MS));
        assert!(!w.overlaps_hour(h14 + HOUR_MS));
        assert!(w.contains(T - 1) && !w.contains(T) && w.contains(T - HOUR_MS));

        let b =
            Window::between(Some("2026-12-02T14:00:00Z"), Some("2026-12-02T15:00:00"), 0).unwrap();
        assert_eq!((b.since_ms, b.until_ms), (h14, h14 + HOUR_MS));
        assert_eq!(
            b.to_string(),
            "2026-12-02T14:00:00.000Z .. 2026-12-02T15:00:00.000Z"
        );
        assert_eq!(
            Window::between(Some("5"), None, 9).unwrap(),
            Window {
                since_ms: 5,
                until_ms: 9
            }
        );
    }

    #[test]
    fn bad_windows_name_what_is_wrong() {
        let e = Window::last("an hour", T).unwrap_err().to_string();
        assert!(e.starts_with("--window 'an hour' is not a duration"), "{e}");
        let e = Window::between(Some("yesterday"), None, T)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("--since 'yesterday' is not a time"), "{e}");
        let e = Window::between(Some("10"), Some("10"), T)
            .unwrap_err()
            .to_string();
        assert!(e.contains("is not before its end"), "{e}");
        assert_eq!(hour_start("hour=2026-12-02"), None);
        assert_eq!(hour_start("day=2026-12-02T14"), None);
    }
}
