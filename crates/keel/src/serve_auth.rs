//! `keel serve --auth`: callers are checked against the keel server of `--tracking-uri`, with
//! their own credential: who it names (`GET /api/keel/v1/session`, with the token's scope) and
//! whether that user has USE on the registered model a served name follows
//! (`users/permissions/get`, which a user may ask of themself).

use std::collections::HashMap;

use anyhow::Result;
use keel_core::auth::{Permission, Resource, TokenScope};
use keel_serve::ServeError;
use keel_serve::access::{Authority, Verdict};
use serde_json::Value;

/// The keel server that decides, and the registered model behind each served name.
pub struct KeelAuthority {
    base: String,
    http: reqwest::Client,
    registered: HashMap<String, String>,
}

impl KeelAuthority {
    /// Asks the server at `tracking_uri`; `registered` maps served names to registered models
    /// (a served name without one needs only a credential the server accepts).
    pub fn new(tracking_uri: &str, registered: HashMap<String, String>) -> Result<Self> {
        Ok(KeelAuthority {
            base: tracking_uri.trim_end_matches('/').to_string(),
            http: crate::tls::client_trust(
                reqwest::Client::builder().timeout(std::time::Duration::from_secs(10)),
            )?
            .build()?,
            registered,
        })
    }

    async fn get(
        &self,
        path: &str,
        authorization: &str,
        query: &[(&str, &str)],
    ) -> Result<(u16, Value), ServeError> {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .header(reqwest::header::AUTHORIZATION, authorization)
            .query(query)
            .send()
            .await
            .map_err(|e| {
                ServeError::Unavailable(format!(
                    "cannot reach the keel server that checks callers ({}): {e}",
                    self.base
                ))
            })?;
        let status = resp.status().as_u16();
        let body = resp.json::<Value>().await.unwrap_or(Value::Null);
        Ok((status, body))
    }
}

#[async_trait::async_trait]
impl Authority for KeelAuthority {
    async fn admit(&self, authorization: &str, model: Option<&str>) -> Result<Verdict, ServeError> {
        let (status, who) = self.get("/api/keel/v1/session", authorization, &[]).await?;
        match status {
            200 => {}
            401 | 403 => return Ok(Verdict::Unknown),
            other => {
                return Err(ServeError::Unavailable(format!(
                    "the keel server that checks callers answered {other}: {who}"
                )));
            }
        }
        let user = who["user"]["username"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let Some(registered) = model.and_then(|m| self.registered.get(m)) else {
            return Ok(Verdict::Allowed { user });
        };
        let resource = Resource::RegisteredModel(registered.clone());
        let scope: Option<TokenScope> = serde_json::from_value(who["scope"].clone()).ok();
        if scope.is_some_and(|s| !s.allows(&resource, Permission::Use)) {
            return Ok(Verdict::Denied { user });
        }
        let (status, held) = self
            .get(
                "/api/3.0/mlflow/users/permissions/get",
                authorization,
                &[
                    ("username", &user),
                    ("resource_type", "registered_model"),
                    ("resource_id", registered),
                ],
            )
            .await?;
        Ok(match (status, held["allowed"].as_bool()) {
            (200, Some(true)) => Verdict::Allowed { user },
            (200 | 403, _) => Verdict::Denied { user },
            (401, _) => Verdict::Unknown,
            (other, _) => {
                return Err(ServeError::Unavailable(format!(
                    "the keel server that checks callers answered {other}: {held}"
                )));
            }
        })
    }
}
