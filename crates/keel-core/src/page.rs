//! Page tokens: base64 of `{"offset": N}`, as MLflow writes them.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::error::{Error, Result};

/// Encodes the offset of the next page.
pub fn encode(offset: u64) -> String {
    STANDARD.encode(format!("{{\"offset\": {offset}}}"))
}

/// Decodes a page token; an empty or absent token is offset 0.
pub fn decode(token: Option<&str>) -> Result<u64> {
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return Ok(0);
    };
    let bad = || {
        Error::invalid(format!(
            "Invalid page token '{token}': it could not be decoded"
        ))
    };
    let bytes = STANDARD.decode(token.trim()).map_err(|_| bad())?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    v.get("offset").and_then(|o| o.as_u64()).ok_or_else(bad)
}

/// The token for the page after `offset + returned` when more rows remain.
pub fn next(offset: u64, returned: usize, limit: usize, more: bool) -> Option<String> {
    (more && returned == limit).then(|| encode(offset + returned as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_garbage() {
        assert_eq!(decode(Some(&encode(1234))).unwrap(), 1234);
        assert_eq!(decode(None).unwrap(), 0);
        assert_eq!(decode(Some("")).unwrap(), 0);
        for bad in ["garbage".to_string(), STANDARD.encode("{\"x\":1}")] {
            let e = decode(Some(&bad)).unwrap_err();
            assert_eq!(e.code, crate::ErrorCode::InvalidParameterValue);
            assert!(e.message.starts_with("Invalid page token"), "{e}");
        }
    }
}
