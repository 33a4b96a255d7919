//! What stops a web page from reaching the server through the visitor's browser, as MLflow's
//! server does: the `Host` header must name this server (so a DNS-rebinding page, whose requests
//! carry its own host name, is refused), and a state-changing API request from a browser must
//! come from this server's own pages or from localhost (its `Origin`).

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::AppState;

/// The `Host` values the server answers: patterns where `*` stands for any characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHosts(Vec<String>);

impl Default for AllowedHosts {
    /// MLflow's default: localhost and the loopback addresses on any port, and the private
    /// network ranges (10/8, 172.16/12, 192.168/16, fc00::/7).
    fn default() -> Self {
        let local = ["localhost", "127.0.0.1", "[::1]", "0.0.0.0"];
        let mut patterns: Vec<String> = local.iter().map(|h| h.to_string()).collect();
        patterns.extend(local.iter().map(|h| format!("{h}:*")));
        patterns.extend(
            [
                "192.168.*",
                "10.*",
                "fc00:*",
                "fd00:*",
                "[fc00:*",
                "[fd00:*",
            ]
            .map(String::from),
        );
        patterns.extend((16..32).map(|i| format!("172.{i}.*")));
        AllowedHosts(patterns)
    }
}

impl AllowedHosts {
    /// A comma-separated list of patterns (`keel.example.com,*.internal:5000`); `*` alone
    /// allows every host.
    pub fn parse(list: &str) -> Self {
        AllowedHosts(
            list.split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(str::to_string)
                .collect(),
        )
    }

    /// Whether a request with this `Host` header is answered.
    pub fn allows(&self, host: &str) -> bool {
        !host.is_empty() && self.0.iter().any(|p| glob(p, host))
    }
}

/// Whether `text` matches `pattern`, whose `*` matches any run of characters (ASCII case is
/// ignored, as host names are).
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    // The classic two-pointer match with backtracking to the last star.
    let (mut i, mut j, mut star, mut mark) = (0, 0, None, 0);
    while j < t.len() {
        if i < p.len() && p[i] != b'*' && p[i].eq_ignore_ascii_case(&t[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == b'*' {
            star = Some(i);
            mark = j;
            i += 1;
        } else if let Some(s) = star {
            i = s + 1;
            mark += 1;
            j = mark;
        } else {
            return false;
        }
    }
    p[i..].iter().all(|&c| c == b'*')
}

/// Whether a browser's `Origin` is this server itself (the same host and port as the request's
/// `Host`) or a page on localhost.
fn same_or_local_origin(origin: &str, host: &str) -> bool {
    let authority = origin
        .split_once("://")
        .map(|(_, rest)| rest)
        .unwrap_or(origin)
        .trim_end_matches('/');
    let name = authority
        .rsplit_once(':')
        .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
        .map(|(name, _)| name)
        .unwrap_or(authority);
    authority.eq_ignore_ascii_case(host)
        || ["localhost", "127.0.0.1", "[::1]"]
            .iter()
            .any(|l| name.eq_ignore_ascii_case(l))
}

fn refuse(message: &'static str) -> Response {
    let mut resp = (
        StatusCode::FORBIDDEN,
        [(header::CONTENT_TYPE, "text/plain")],
        message,
    )
        .into_response();
    resp.extensions_mut().insert(crate::error::ErrorMarker);
    resp
}

/// The check, before routing: health and version stay open to probes that name no host.
pub async fn check(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if path == "/health" || path == "/version" {
        return next.run(req).await;
    }
    let host = host_of(&req);
    if !s.allowed_hosts.allows(host) {
        tracing::warn!(host, "refused a request for another host");
        return refuse("Invalid Host header - possible DNS rebinding attack detected");
    }
    let changes = matches!(
        *req.method(),
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    );
    let api = path.starts_with("/api/") || path.starts_with("/ajax-api/");
    if changes
        && api
        && let Some(origin) = req
            .headers()
            .get(header::ORIGIN)
            .and_then(|o| o.to_str().ok())
        && !same_or_local_origin(origin, host)
    {
        tracing::warn!(origin, "refused a state-changing request from another site");
        return refuse("Cross-origin request blocked");
    }
    next.run(req).await
}

/// The host a request names: its `Host` header, or over HTTP/2 (which has none) the
/// `:authority` its URI carries.
fn host_of(req: &Request) -> &str {
    req.headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
        .unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_mlflows_local_and_private_hosts() {
        let d = AllowedHosts::default();
        for ok in [
            "localhost",
            "localhost:5000",
            "127.0.0.1:5000",
            "[::1]:5000",
            "10.1.2.3:5000",
            "172.16.0.9",
            "172.31.255.1:80",
            "192.168.1.20:5000",
        ] {
            assert!(d.allows(ok), "{ok}");
        }
        for refused in [
            "",
            "evil.example.com",
            "evil.example.com:5000",
            "172.32.0.1",
            "127.0.0.1.evil.com",
            "8.8.8.8",
        ] {
            assert!(!d.allows(refused), "{refused}");
        }
    }

    #[test]
    fn patterns_match_whole_hosts() {
        let a = AllowedHosts::parse("keel.example.com, *.internal:5000");
        assert!(a.allows("keel.example.com") && a.allows("KEEL.example.com"));
        assert!(a.allows("a.b.internal:5000"));
        assert!(!a.allows("keel.example.com:80") && !a.allows("a.internal:6000"));
        assert!(AllowedHosts::parse("*").allows("anything:1"));
        assert!(glob("a*b*c", "aXXbYYc") && !glob("a*b*c", "aXXbYY") && glob("**", ""));
    }

    #[test]
    fn origins_are_this_server_or_localhost() {
        assert!(same_or_local_origin(
            "https://keel.example.com",
            "keel.example.com"
        ));
        assert!(same_or_local_origin(
            "http://10.0.0.5:5000",
            "10.0.0.5:5000"
        ));
        assert!(same_or_local_origin(
            "http://localhost:3000",
            "keel.example.com"
        ));
        assert!(!same_or_local_origin(
            "https://evil.example.com",
            "keel.example.com"
        ));
        assert!(!same_or_local_origin(
            "http://10.0.0.5:5001",
            "10.0.0.5:5000"
        ));
        assert!(!same_or_local_origin("null", "keel.example.com"));
    }
}
