//! Reading MLflow requests: the JSON body of POST/PATCH/DELETE or the query string of GET, into
//! typed messages whose numbers may arrive as JSON numbers or strings (proto JSON allows both).

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{Method, header};
use keel_core::Error;
use serde::Deserialize;
use serde::de::{DeserializeOwned, Deserializer, Error as _};

use crate::error::ApiError;

/// The largest JSON request body accepted on the REST API.
pub const MAX_JSON_BODY: usize = 32 * 1024 * 1024;

/// A request message and the size of the body it came from.
pub struct Msg<T> {
    pub body: T,
    pub size: usize,
}

fn describe(e: &serde_path_to_error::Error<impl std::fmt::Display>) -> String {
    let path = e.path().to_string();
    if path == "." || path.is_empty() {
        format!("Invalid request: {}", e.inner())
    } else {
        format!("Invalid value for parameter '{path}': {}", e.inner())
    }
}

/// MLflow's message for a field of the wrong type, naming the value sent and its type as
/// Python would: `Invalid value 123 for parameter 'name' supplied:  Hint: Value was of type
/// 'int'. ...`. `None` when the value cannot be found in the body.
fn wrong_value(body: &[u8], e: &serde_path_to_error::Error<serde_json::Error>) -> Option<String> {
    use serde_path_to_error::Segment;
    let root: serde_json::Value = serde_json::from_slice(body).ok()?;
    let mut value = &root;
    for segment in e.path().iter() {
        value = match segment {
            Segment::Map { key } => value.get(key.as_str())?,
            Segment::Seq { index } => value.get(*index)?,
            _ => return None,
        };
    }
    let ty = match value {
        serde_json::Value::Null => "NoneType",
        serde_json::Value::Bool(_) => "bool",
        serde_json::Value::Number(n) if n.is_i64() || n.is_u64() => "int",
        serde_json::Value::Number(_) => "float",
        serde_json::Value::String(_) => "str",
        serde_json::Value::Array(_) => "list",
        serde_json::Value::Object(_) => "dict",
    };
    Some(format!(
        "Invalid value {value} for parameter '{}' supplied:  Hint: Value was of type '{ty}'. See the API docs for more information about request parameters.",
        e.path()
    ))
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Msg<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if req.method() == Method::GET {
            let q = req.uri().query().unwrap_or("");
            let de = serde_html_form::Deserializer::from_bytes(q.as_bytes());
            let body =
                serde_path_to_error::deserialize(de).map_err(|e| Error::invalid(describe(&e)))?;
            return Ok(Msg {
                body,
                size: q.len(),
            });
        }
        if matches!(*req.method(), Method::POST | Method::PUT) {
            let ct = req
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok());
            match ct {
                None => {
                    return Err(
                        Error::invalid("Bad Request. Content-Type header is missing.").into(),
                    );
                }
                Some(ct) if ct.split(';').next().map(str::trim) != Some("application/json") => {
                    return Err(Error::invalid(
                        "Bad Request. Content-Type must be one of ['application/json'].",
                    )
                    .into());
                }
                _ => {}
            }
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                Error::new(
                    keel_core::ErrorCode::BodyTooLarge,
                    format!("Request body is larger than the limit of {MAX_JSON_BODY} bytes."),
                )
            } else {
                Error::bad_request(format!("Cannot read the request body: {e}"))
            }
        })?;
        let size = bytes.len();
        let text: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            &bytes
        };
        let mut de = serde_json::Deserializer::from_slice(text);
        let body = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            if e.inner().is_syntax() || e.inner().is_eof() {
                Error::invalid(format!("Malformed JSON request body: {}", e.inner()))
            } else {
                Error::invalid(wrong_value(text, &e).unwrap_or_else(|| describe(&e)))
            }
        })?;
        de.end()
            .map_err(|e| Error::invalid(format!("Malformed JSON request body: {e}")))?;
        Ok(Msg { body, size })
    }
}

/// MLflow's error for a required field that was not given.
pub fn missing(name: &str) -> Error {
    Error::invalid(format!(
        "Missing value for required parameter '{name}'. See the API docs for more information about request parameters."
    ))
}

/// A required field: present and, for strings, not empty (as MLflow checks).
pub fn required<T: Presence>(v: Option<T>, name: &str) -> Result<T, Error> {
    match v {
        Some(v) if v.present() => Ok(v),
        _ => Err(missing(name)),
    }
}

/// What counts as "given" for a required field.
pub trait Presence {
    fn present(&self) -> bool;
}
impl Presence for String {
    fn present(&self) -> bool {
        !self.is_empty()
    }
}
impl Presence for f64 {
    fn present(&self) -> bool {
        true
    }
}
impl Presence for i64 {
    fn present(&self) -> bool {
        true
    }
}
impl<T> Presence for Vec<T> {
    fn present(&self) -> bool {
        true
    }
}

/// A scalar JSON value as proto JSON allows it: a number, a string or a boolean. Read with a
/// visitor (no buffering, no trial and error) because metric values are on the hot path.
enum Scalar {
    I(i64),
    F(f64),
    S(String),
    B(bool),
    Null,
}

struct ScalarVisitor;

impl<'de> serde::de::Visitor<'de> for ScalarVisitor {
    type Value = Scalar;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a number, a string or a boolean")
    }
    fn visit_i64<E>(self, v: i64) -> Result<Scalar, E> {
        Ok(Scalar::I(v))
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Scalar, E> {
        i64::try_from(v).map(Scalar::I).or(Ok(Scalar::F(v as f64)))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Scalar, E> {
        Ok(Scalar::F(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Scalar, E> {
        Ok(Scalar::S(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Scalar, E> {
        Ok(Scalar::S(v))
    }
    fn visit_bool<E>(self, v: bool) -> Result<Scalar, E> {
        Ok(Scalar::B(v))
    }
    fn visit_none<E>(self) -> Result<Scalar, E> {
        Ok(Scalar::Null)
    }
    fn visit_unit<E>(self) -> Result<Scalar, E> {
        Ok(Scalar::Null)
    }
}

fn scalar<'de, D: Deserializer<'de>>(d: D) -> Result<Scalar, D::Error> {
    d.deserialize_any(ScalarVisitor)
}

/// A double given as a number or a string (`"0.5"`, `"NaN"`, `"Infinity"`, `"-Infinity"`).
pub fn f64_lenient<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    Ok(match scalar(d)? {
        Scalar::Null => None,
        Scalar::I(i) => Some(i as f64),
        Scalar::F(f) => Some(f),
        Scalar::S(s) => Some(match s.trim() {
            "NaN" | "nan" => f64::NAN,
            "Infinity" | "inf" => f64::INFINITY,
            "-Infinity" | "-inf" => f64::NEG_INFINITY,
            t => t
                .parse()
                .map_err(|_| D::Error::custom(format!("'{s}' is not a number")))?,
        }),
        Scalar::B(b) => {
            return Err(D::Error::custom(format!(
                "expected a number, got the boolean {b}"
            )));
        }
    })
}

/// A 64-bit integer given as a number or a string.
pub fn i64_lenient<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Ok(match scalar(d)? {
        Scalar::Null => None,
        Scalar::I(i) => Some(i),
        Scalar::F(f) if f.fract() == 0.0 && f.abs() < 9.2e18 => Some(f as i64),
        Scalar::F(f) => return Err(D::Error::custom(format!("expected an integer, got {f}"))),
        Scalar::S(s) => Some(
            s.trim()
                .parse()
                .map_err(|_| D::Error::custom(format!("'{s}' is not an integer")))?,
        ),
        Scalar::B(b) => {
            return Err(D::Error::custom(format!(
                "expected an integer, got the boolean {b}"
            )));
        }
    })
}

/// A boolean given as a JSON boolean or the strings `true`/`false`.
pub fn bool_lenient<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    Ok(match scalar(d)? {
        Scalar::Null => None,
        Scalar::B(b) => Some(b),
        Scalar::S(s) if s.eq_ignore_ascii_case("true") => Some(true),
        Scalar::S(s) if s.eq_ignore_ascii_case("false") => Some(false),
        _ => return Err(D::Error::custom("expected 'true' or 'false'")),
    })
}

/// An enum given by name or number, kept as text for the caller to parse.
pub fn enum_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match scalar(d)? {
        Scalar::Null => None,
        Scalar::I(i) => Some(i.to_string()),
        Scalar::S(s) => Some(s),
        _ => return Err(D::Error::custom("expected an enum name or number")),
    })
}

/// A string field that clients may also send as a number (`version`).
pub fn string_lenient<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match scalar(d)? {
        Scalar::Null => None,
        Scalar::I(i) => Some(i.to_string()),
        Scalar::S(s) => Some(s),
        Scalar::F(f) => Some(f.to_string()),
        Scalar::B(_) => return Err(D::Error::custom("expected a string")),
    })
}

/// Checks `max_results` against a limit, defaulting when absent.
pub fn max_results(v: Option<i64>, default: i64, limit: i64) -> Result<usize, Error> {
    let n = v.unwrap_or(default);
    if n <= 0 || n > limit {
        return Err(Error::invalid(format!(
            "Invalid value {n} for parameter 'max_results' supplied: it must be between 1 and {limit}."
        )));
    }
    Ok(n as usize)
}

/// A key/value pair as requests carry it (a missing value is the empty string).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Kv {
    pub key: Option<String>,
    pub value: Option<String>,
}

/// Converts request pairs; a missing key is named by its item (`tags[2].key`).
pub fn kvs(items: Vec<Kv>, field: &str) -> Result<Vec<keel_core::entities::Tag>, Error> {
    items
        .into_iter()
        .enumerate()
        .map(|(i, kv)| {
            let key = required(kv.key, &format!("{field}[{i}].key"))?;
            Ok(keel_core::entities::Tag::new(
                key,
                kv.value.unwrap_or_default(),
            ))
        })
        .collect()
}
