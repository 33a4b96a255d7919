//! `keel serve --auth`: every request but the probes must carry a credential (an access token,
//! or a password) that the keel server behind the registry accepts, and its holder must have
//! USE on the registered model it calls; each credential may be held to a rate. Verdicts come
//! from an [`Authority`] (the keel server, asked by the binary) and are remembered briefly, so
//! a request costs a lookup in memory; refusals answer 401, 403 and 429 in the protocol's
//! error shape.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;

use crate::error::ServeError;
use crate::state::{AppState, Protocol, error_response};

/// What the authority says of a credential and a model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Not a credential it accepts.
    Unknown,
    /// A known user who may not use the model.
    Denied { user: String },
    /// A known user who may.
    Allowed { user: String },
}

/// Decides who may call: asked with the `Authorization` header's value and the served model's
/// name (`None` for routes that name no model, which need only a known credential).
#[async_trait::async_trait]
pub trait Authority: Send + Sync {
    async fn admit(&self, authorization: &str, model: Option<&str>) -> Result<Verdict, ServeError>;
}

/// How long a verdict is remembered: an allowed one longer than a refusal.
const ALLOWED_TTL: Duration = Duration::from_secs(30);
const REFUSED_TTL: Duration = Duration::from_secs(5);
/// At most this many verdicts or rate buckets are remembered; past it they start over.
const MAX_ENTRIES: usize = 10_000;

type Digest = [u8; 32];

/// The access check of a server: the authority, its remembered verdicts and the rate buckets.
pub struct Access {
    authority: Arc<dyn Authority>,
    /// Requests per second per credential, when limited.
    rate: Option<f64>,
    key: Digest,
    verdicts: Mutex<HashMap<Digest, (Verdict, Instant)>>,
    buckets: Mutex<HashMap<Digest, (f64, Instant)>>,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access").field("rate", &self.rate).finish()
    }
}

impl Access {
    /// Checks callers with `authority`, each credential held to `rate` requests per second.
    pub fn new(authority: Arc<dyn Authority>, rate: Option<f64>) -> Self {
        // A key of this process's own: remembered entries mean nothing elsewhere.
        let key = *blake3::hash(uuid::Uuid::new_v4().as_bytes()).as_bytes();
        Access {
            authority,
            rate: rate.filter(|r| *r > 0.0),
            key,
            verdicts: Mutex::new(HashMap::new()),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    fn digest(&self, parts: &[&str]) -> Digest {
        let mut h = blake3::Hasher::new_keyed(&self.key);
        for p in parts {
            h.update(p.as_bytes());
            h.update(&[0]);
        }
        *h.finalize().as_bytes()
    }

    /// Whether a request with this credential may call `model`.
    pub async fn check(
        &self,
        authorization: Option<&str>,
        model: Option<&str>,
    ) -> Result<(), ServeError> {
        let Some(authorization) = authorization.filter(|a| !a.trim().is_empty()) else {
            return Err(ServeError::Unauthenticated(
                "this server asks who is calling: send an access token (Authorization: Bearer ...)"
                    .into(),
            ));
        };
        let key = self.digest(&[authorization, model.unwrap_or("")]);
        let remembered = {
            let verdicts = self.verdicts.lock().unwrap_or_else(|p| p.into_inner());
            verdicts.get(&key).and_then(|(v, at)| {
                let ttl = match v {
                    Verdict::Allowed { .. } => ALLOWED_TTL,
                    _ => REFUSED_TTL,
                };
                (at.elapsed() < ttl).then(|| v.clone())
            })
        };
        let verdict = match remembered {
            Some(v) => v,
            None => {
                let v = self.authority.admit(authorization, model).await?;
                let mut verdicts = self.verdicts.lock().unwrap_or_else(|p| p.into_inner());
                if verdicts.len() >= MAX_ENTRIES {
                    verdicts.clear();
                }
                verdicts.insert(key, (v.clone(), Instant::now()));
                v
            }
        };
        match verdict {
            Verdict::Unknown => Err(ServeError::Unauthenticated(
                "the credential is not one the keel server accepts (unknown, expired or revoked)"
                    .into(),
            )),
            Verdict::Denied { user } => Err(ServeError::Forbidden(format!(
                "{user} may not use model '{}': it needs USE on the registered model",
                model.unwrap_or("")
            ))),
            Verdict::Allowed { .. } => self.spend(authorization),
        }
    }

    /// Takes one request from the credential's bucket (capacity one second of its rate).
    fn spend(&self, authorization: &str) -> Result<(), ServeError> {
        let Some(rate) = self.rate else {
            return Ok(());
        };
        let key = self.digest(&[authorization]);
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= MAX_ENTRIES {
            buckets.clear();
        }
        let now = Instant::now();
        let capacity = rate.max(1.0);
        let (tokens, at) = buckets.entry(key).or_insert((capacity, now));
        *tokens = (*tokens + at.elapsed().as_secs_f64() * rate).min(capacity);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(ServeError::RateLimited(rate))
        }
    }
}

/// The model a route names, and the protocol its errors are written in; `None` for the
/// routes everyone may reach: probes and the operational views (metrics, the status page and
/// its figures, which show versions and counters, never a request or a prediction).
fn target(state: &AppState, path: &str) -> Option<(Option<String>, Protocol)> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segments.as_slice() {
        [""] | ["ping"] | ["health"] | ["version"] | ["metrics"] | ["status"] | ["v2"] => None,
        ["v2", "health", _] => None,
        ["v2", "models", name, ..] => Some((Some(name.to_string()), Protocol::V2)),
        ["models", name, "invocations"] => Some((Some(name.to_string()), Protocol::Mlflow)),
        ["invocations"] => {
            let names = state.names();
            let only = match names.as_slice() {
                [one] => Some(one.clone()),
                _ => None,
            };
            Some((only, Protocol::Mlflow))
        }
        _ => Some((None, Protocol::Mlflow)),
    }
}

/// The middleware: checks every request but the probes' when the server asks who is calling.
pub async fn guard(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let Some(access) = state.options.access.clone() else {
        return next.run(req).await;
    };
    let Some((model, protocol)) = target(&state, req.uri().path()) else {
        return next.run(req).await;
    };
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match access.check(authorization, model.as_deref()).await {
        Ok(()) => next.run(req).await,
        Err(e) => {
            let id = crate::state::request_id(req.headers());
            error_response(protocol, &e, &id)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Knows one token, which may use `churn` only; counts how often it is asked.
    struct Fixed(AtomicUsize);

    #[async_trait::async_trait]
    impl Authority for Fixed {
        async fn admit(&self, a: &str, model: Option<&str>) -> Result<Verdict, ServeError> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(match (a, model) {
                ("Bearer good", Some("churn") | None) => Verdict::Allowed { user: "ann".into() },
                ("Bearer good", _) => Verdict::Denied { user: "ann".into() },
                _ => Verdict::Unknown,
            })
        }
    }

    #[tokio::test]
    async fn verdicts_are_remembered_and_rates_held() {
        let authority = Arc::new(Fixed(AtomicUsize::new(0)));
        let access = Access::new(authority.clone(), Some(3.0));
        assert!(matches!(
            access.check(None, Some("churn")).await,
            Err(ServeError::Unauthenticated(_))
        ));
        assert!(matches!(
            access.check(Some("Bearer bad"), Some("churn")).await,
            Err(ServeError::Unauthenticated(_))
        ));
        assert!(matches!(
            access.check(Some("Bearer good"), Some("fraud")).await,
            Err(ServeError::Forbidden(_))
        ));
        for _ in 0..3 {
            access
                .check(Some("Bearer good"), Some("churn"))
                .await
                .unwrap();
        }
        assert!(matches!(
            access.check(Some("Bearer good"), Some("churn")).await,
            Err(ServeError::RateLimited(_))
        ));
        // Asked once per credential and model, whatever the number of requests.
        assert_eq!(authority.0.load(Ordering::SeqCst), 3);
        tokio::time::sleep(Duration::from_millis(400)).await;
        access
            .check(Some("Bearer good"), Some("churn"))
            .await
            .unwrap();
    }
}
