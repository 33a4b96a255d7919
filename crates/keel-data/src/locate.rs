//! Finding where a file that could not be read goes wrong: the first line with invalid
//! UTF-8, a different number of fields than the header (CSV), or invalid JSON (JSON lines),
//! named by line and column.

use std::io::{BufRead, BufReader};
use std::path::Path;

use crate::error::DataError;
use crate::format::Format;

/// The first problem in `path`, if one of the known kinds is found.
pub fn first_problem(format: Format, path: &Path) -> Option<DataError> {
    let file = std::fs::File::open(path).ok()?;
    let reader = BufReader::with_capacity(1 << 20, file);
    match format {
        Format::Csv => csv_problem(path, reader),
        Format::Jsonl => jsonl_problem(path, reader),
        _ => None,
    }
}

fn problem(path: &Path, line: u64, column: Option<String>, message: String) -> DataError {
    DataError::Content {
        path: path.to_path_buf(),
        line: Some(line),
        column,
        message,
    }
}

/// Checks a CSV file's structure in one pass over its bytes: valid UTF-8, and every record
/// with as many fields as the header (quotes may hold commas and line breaks). polars reads a
/// short row as missing values, so this runs before every CSV read, not only after a failure.
pub fn check_csv(path: &Path) -> Result<(), DataError> {
    let file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    match csv_problem(path, BufReader::with_capacity(1 << 22, file)) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn csv_problem(path: &Path, mut reader: impl BufRead) -> Option<DataError> {
    let mut line = 1u64; // line of the current byte
    let mut record_line = 1u64; // line where the current record started
    let mut field = 0usize; // field index within the current record
    let mut in_quotes = false;
    let mut header: Option<Vec<String>> = None;
    let mut first = Vec::new(); // the header's bytes, until it ends
    let mut pending: Vec<u8> = Vec::new(); // an incomplete UTF-8 sequence from the last chunk
    let mut record_empty = true;
    loop {
        let chunk = match reader.fill_buf() {
            Ok([]) => break,
            Ok(c) => c,
            Err(_) => return None,
        };
        let n = chunk.len();
        // UTF-8: find the first invalid byte of this chunk (with the carried-over start).
        let mut data = std::mem::take(&mut pending);
        data.extend_from_slice(chunk);
        let bad_at = match std::str::from_utf8(&data) {
            Ok(_) => None,
            Err(e) if e.error_len().is_none() => {
                // Cut mid-character: keep the tail for the next chunk.
                pending = data[e.valid_up_to()..].to_vec();
                data.truncate(e.valid_up_to());
                None
            }
            Err(e) => Some(e.valid_up_to()),
        };
        let mut i = 0;
        while i < data.len() {
            // Fast path: a whole record on one line without quotes, checked by counting its
            // commas (the common case, and much faster than the byte-wise state machine).
            if header.is_some() && field == 0 && record_empty && !in_quotes {
                let rest = &data[i..];
                if let Some(nl) = memchr::memchr(b'\n', rest)
                    && bad_at.is_none_or(|b| b >= i + nl)
                    && memchr::memchr(b'"', &rest[..nl]).is_none()
                {
                    let record = &rest[..nl];
                    let blank = record.iter().all(|&b| b == b'\r');
                    let fields = record.iter().filter(|&&b| b == b',').count() + 1;
                    if let Some(h) = &header
                        && !blank
                        && fields != h.len()
                    {
                        return Some(problem(
                            path,
                            line,
                            None,
                            format!("{fields} fields where the header has {}", h.len()),
                        ));
                    }
                    line += 1;
                    record_line = line;
                    i += nl + 1;
                    continue;
                }
            }
            let b = data[i];
            if bad_at == Some(i) {
                let column = header
                    .as_ref()
                    .and_then(|h| h.get(field).cloned())
                    .unwrap_or_else(|| format!("#{}", field + 1));
                return Some(problem(
                    path,
                    line,
                    Some(column),
                    "invalid UTF-8".to_string(),
                ));
            }
            i += 1;
            if header.is_none() {
                first.push(b);
            }
            match b {
                b'"' => in_quotes = !in_quotes,
                b',' if !in_quotes => {
                    field += 1;
                    record_empty = false;
                }
                b'\n' => {
                    line += 1;
                    if in_quotes {
                        continue;
                    }
                    match &header {
                        None => {
                            let text = String::from_utf8_lossy(&first);
                            header = Some(
                                text.trim_end_matches(['\n', '\r'])
                                    .split(',')
                                    .map(|s| s.trim_matches('"').to_string())
                                    .collect(),
                            );
                        }
                        Some(h) if !record_empty && field + 1 != h.len() => {
                            return Some(problem(
                                path,
                                record_line,
                                None,
                                format!("{} fields where the header has {}", field + 1, h.len()),
                            ));
                        }
                        Some(_) => {}
                    }
                    field = 0;
                    record_empty = true;
                    record_line = line;
                }
                b'\r' => {}
                _ => record_empty = false,
            }
        }
        reader.consume(n);
    }
    // A last record without a final line break.
    if let Some(h) = &header
        && !record_empty
        && field + 1 != h.len()
    {
        return Some(problem(
            path,
            record_line,
            None,
            format!("{} fields where the header has {}", field + 1, h.len()),
        ));
    }
    None
}

fn jsonl_problem(path: &Path, reader: impl BufRead) -> Option<DataError> {
    for (i, line) in reader.split(b'\n').enumerate() {
        let line = line.ok()?;
        let n = i as u64 + 1;
        let text = match std::str::from_utf8(&line) {
            Ok(t) => t,
            Err(e) => {
                return Some(problem(
                    path,
                    n,
                    None,
                    format!("invalid UTF-8 at byte {}", e.valid_up_to() + 1),
                ));
            }
        };
        if text.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<serde_json::Value>(text) {
            Ok(serde_json::Value::Object(_)) => {}
            Ok(_) => {
                return Some(problem(
                    path,
                    n,
                    None,
                    "the line is not a JSON object".into(),
                ));
            }
            Err(e) => {
                return Some(problem(path, n, None, format!("invalid JSON: {e}")));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csv(text: &[u8]) -> Option<String> {
        csv_problem(Path::new("t.csv"), text).map(|e| e.to_string())
    }

    #[test]
    fn ragged_rows_and_bad_bytes_are_found_by_line() {
        assert_eq!(
            csv(b"a,b\n1,2\n3,4,5\n").as_deref(),
            Some("t.csv, line 3: 3 fields where the header has 2")
        );
        assert_eq!(
            csv(b"a,b\n1,\"x\ny\"\n2,\xff\n").as_deref(),
            Some("t.csv, line 4, column 'b': invalid UTF-8")
        );
        assert_eq!(csv(b"a,b\n\"1,5\",2\n"), None);
    }

    #[test]
    fn plain_lines_quoted_lines_and_blank_lines_mix() {
        // CRLF, a blank line, a quoted field with a line break, then plain lines again.
        assert_eq!(
            csv(b"a,b\r\n1,2\r\n\r\n\"x\ny\",3\r\n4,5\r\n").as_deref(),
            None
        );
        assert_eq!(
            csv(b"a,b\n\"x\ny\",3\n4,5\n6\n").as_deref(),
            Some("t.csv, line 5: 1 fields where the header has 2")
        );
        assert_eq!(
            csv(b"a,b,c\n1,2,3\n4,\xc3(,6\n").as_deref(),
            Some("t.csv, line 3, column 'b': invalid UTF-8")
        );
        // A last line without a line break is checked too.
        assert_eq!(
            csv(b"a,b\n1,2\n3").as_deref(),
            Some("t.csv, line 3: 1 fields where the header has 2")
        );
    }

    #[test]
    fn bad_json_lines_are_found() {
        let e = jsonl_problem(Path::new("t.jsonl"), &b"{\"a\": 1}\n[1]\n"[..]).unwrap();
        assert_eq!(
            e.to_string(),
            "t.jsonl, line 2: the line is not a JSON object"
        );
    }
}
