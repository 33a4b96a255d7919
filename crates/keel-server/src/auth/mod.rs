//! Authentication and authorization for `keel server --auth`, compatible with MLflow's
//! basic-auth app: users with passwords (HTTP Basic) or access tokens (Bearer), permissions
//! READ/USE/EDIT/MANAGE per experiment and registered model with a configurable default,
//! admins, and MLflow's auth API (`users/*`, `experiments/permissions/*`,
//! `registered-models/permissions/*`, `users/permissions/*`).
//!
//! The guard ([`guard`]) runs before every routed request: it finds the route's rule in
//! [`policy`], authenticates the caller ([`credentials`]), checks the rule against the stored
//! grants (one indexed read per subject), and hands the handler a [`Caller`]. Searches answer
//! only what the caller may read, decided inside their SQL ([`keel_core::auth::Reader`]).

pub mod credentials;
mod guard;
mod handlers;
pub mod policy;
mod recent;
mod session;

use keel_core::Result;
use keel_core::auth::{Permission, Reader, TokenScope, User};

pub use guard::guard;
pub(crate) use handlers::{routes, token_routes};
pub(crate) use session::{login_page, session_routes};

/// How the server decides who may do what.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// What users may do with experiments and registered models they hold no grant on (MLflow's
    /// `default_permission`, READ unless configured).
    pub default_permission: Permission,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            default_permission: Permission::Read,
        }
    }
}

/// The auth state the server shares: its configuration, the verified-credential cache and the
/// token of the server's own clients.
pub struct Auth {
    pub config: AuthConfig,
    verified: credentials::Verified,
    /// Who each credential (by keyed hash) named, read in the last second.
    callers: recent::Recent<[u8; 32], Caller>,
    /// What a user held on a subject, read in the last second.
    held: recent::Recent<(i64, keel_core::auth::Subject), Held>,
    /// A token this process made for its own calls to its API (the monitoring checks it runs):
    /// it acts as the admin [`INTERNAL_USER`], exists nowhere but in memory and dies with it.
    internal: String,
}

/// What a user holds on a subject: its owner and their grant, or `None` when it does not exist.
type Held = Option<(keel_core::auth::Resource, Option<Permission>)>;

/// The name the server's own calls act under.
pub const INTERNAL_USER: &str = "keel-server";

impl Auth {
    pub fn new(config: AuthConfig) -> Result<Self> {
        Ok(Auth {
            config,
            verified: credentials::Verified::new()?,
            callers: Default::default(),
            held: Default::default(),
            internal: credentials::new_token()?.0,
        })
    }

    /// Forgets what was read about users, grants, roles, tokens and sessions (after this
    /// server changed one of them).
    pub fn forget(&self) {
        self.callers.forget();
        self.held.forget();
    }

    /// The token of the server's own calls to its API.
    pub fn internal_token(&self) -> &str {
        &self.internal
    }

    /// Whether `token` is [`Auth::internal_token`] (compared in constant time).
    fn is_internal(&self, token: &str) -> bool {
        blake3::hash(token.as_bytes()) == blake3::hash(self.internal.as_bytes())
    }
}

/// Who made a request: the signed-in user and, when a token was used, its scope.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: User,
    /// The scope of the access token the request carried (`None` for a password).
    pub scope: Option<TokenScope>,
    /// The browser session the request came with (its cookie's hash and CSRF value), if any.
    pub session: Option<(String, String)>,
}

impl Caller {
    /// What a search of `kind` (`"experiment"` or `"registered_model"`) answers for this caller
    /// under `default`: `None` when it may read every one.
    pub fn reader(&self, kind: &str, default: Permission) -> Option<Reader> {
        let only = self.scope.as_ref().and_then(|s| match kind {
            "experiment" => s.experiments.clone(),
            _ => s.models.clone(),
        });
        (!self.user.is_admin || only.is_some()).then(|| Reader {
            user_id: self.user.id,
            admin: self.user.is_admin,
            default_read: default.allows(Permission::Read),
            only,
        })
    }
}

/// The [`Reader`] of a search of `kind` handled with auth on; `None` when auth is off or the
/// caller may read everything.
pub fn reader_of(
    kind: &str,
    caller: Option<&axum::Extension<Caller>>,
    auth: Option<&std::sync::Arc<Auth>>,
) -> Option<Reader> {
    let (caller, auth) = (caller?, auth?);
    caller.reader(kind, auth.config.default_permission)
}
