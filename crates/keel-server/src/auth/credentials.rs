//! Credentials: the `Authorization` header (HTTP Basic, as `MLFLOW_TRACKING_USERNAME`/`PASSWORD`
//! send it, or a Bearer token, as `MLFLOW_TRACKING_TOKEN` does), argon2 hashes of passwords and
//! tokens, and the cache of credentials already verified.
//!
//! A token is `keel_<id>_<secret>`: the id finds its row (and names it when listed or revoked),
//! the whole token is verified against the row's argon2 hash. argon2 is slow on purpose (tens of
//! milliseconds), so a credential that verified is remembered, keyed by a keyed BLAKE3 hash of
//! the header, together with the stored hash it verified against: each request still reads the
//! user (or token) row, and a changed password, a revoked or expired token or a deleted user is
//! refused at once, on every server sharing the database.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use keel_core::{Error, Result};

/// What a request presented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    Basic { username: String, password: String },
    Token { id: String, token: String },
}

/// The credential in an `Authorization` header value, `None` when it names no scheme keel reads
/// or is malformed.
pub fn parse_authorization(value: &str) -> Option<Credential> {
    let (scheme, rest) = value.trim().split_once(' ')?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = STANDARD.decode(rest).ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (username, password) = text.split_once(':')?;
        Some(Credential::Basic {
            username: username.to_string(),
            password: password.to_string(),
        })
    } else if scheme.eq_ignore_ascii_case("bearer") {
        let id = token_id(rest)?;
        Some(Credential::Token {
            id: id.to_string(),
            token: rest.to_string(),
        })
    } else {
        None
    }
}

const TOKEN_PREFIX: &str = "keel_";
const TOKEN_ID_LEN: usize = 12;

/// The id part of a token `keel_<id>_<secret>`.
fn token_id(token: &str) -> Option<&str> {
    let rest = token.strip_prefix(TOKEN_PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    (id.len() == TOKEN_ID_LEN
        && !secret.is_empty()
        && id.bytes().all(|b| b.is_ascii_alphanumeric()))
    .then_some(id)
}

/// `n` random bytes from the operating system.
fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).map_err(|e| Error::internal(format!("no randomness: {e}")))?;
    Ok(buf)
}

/// `n` random bytes as URL-safe base64 (a session cookie, a CSRF value).
pub fn random_text<const N: usize>() -> Result<String> {
    Ok(URL_SAFE_NO_PAD.encode(random_bytes::<N>()?))
}

/// A new token and its id: 12 alphanumeric characters, then 256 random bits.
pub fn new_token() -> Result<(String, String)> {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let id: String = random_bytes::<TOKEN_ID_LEN>()?
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect();
    let secret = URL_SAFE_NO_PAD.encode(random_bytes::<32>()?);
    Ok((format!("{TOKEN_PREFIX}{id}_{secret}"), id))
}

/// The argon2id hash (PHC string, random salt) of `secret`, computed off the async threads.
pub async fn hash(secret: &str) -> Result<String> {
    let secret = secret.to_string();
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(secret.as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| Error::internal(format!("could not hash a password: {e}")))
    })
    .await
    .map_err(|e| Error::internal(format!("password hashing stopped: {e}")))?
}

/// Whether `secret` matches the PHC string `stored`, computed off the async threads.
pub async fn verify(secret: &str, stored: &str) -> bool {
    let (secret, stored) = (secret.to_string(), stored.to_string());
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&stored)
            .map(|h| {
                Argon2::default()
                    .verify_password(secret.as_bytes(), &h)
                    .is_ok()
            })
            .unwrap_or(false)
    })
    .await
    .unwrap_or(false)
}

/// Spends what verifying a password costs, for a name nobody has (so the time of a refusal
/// does not tell which names exist).
pub async fn burn(secret: &str) {
    static DECOY: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    if let Ok(decoy) = DECOY
        .get_or_try_init(|| async { hash("keel decoy password").await })
        .await
    {
        verify(secret, decoy).await;
    }
}

/// How long a verified credential is remembered without verifying it again.
const CACHE_TTL: Duration = Duration::from_secs(300);
/// At most this many credentials are remembered; past it the cache starts over.
const CACHE_MAX: usize = 10_000;

/// A 256-bit digest.
type Digest = [u8; 32];

/// Credentials that verified: keyed BLAKE3 of the header value -> (BLAKE3 of the stored hash
/// it matched, when).
pub struct Verified {
    key: Digest,
    entries: Mutex<HashMap<Digest, (Digest, Instant)>>,
}

impl Verified {
    /// An empty cache with a key of its own (its entries mean nothing to anyone else).
    pub fn new() -> Result<Self> {
        Ok(Verified {
            key: random_bytes::<32>()?,
            entries: Mutex::new(HashMap::new()),
        })
    }

    /// A keyed hash of a credential, to remember things by without keeping it.
    pub fn digest(&self, credential: &str) -> Digest {
        self.header_key(credential)
    }

    fn header_key(&self, header: &str) -> [u8; 32] {
        *blake3::keyed_hash(&self.key, header.as_bytes()).as_bytes()
    }

    /// Whether `header` verified against `stored` recently.
    pub fn knows(&self, header: &str, stored: &str) -> bool {
        let k = self.header_key(header);
        let stored = *blake3::hash(stored.as_bytes()).as_bytes();
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .get(&k)
            .is_some_and(|(h, at)| *h == stored && at.elapsed() < CACHE_TTL)
    }

    /// Remembers that `header` verified against `stored`.
    pub fn remember(&self, header: &str, stored: &str) {
        let k = self.header_key(header);
        let stored = *blake3::hash(stored.as_bytes()).as_bytes();
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= CACHE_MAX {
            entries.clear();
        }
        entries.insert(k, (stored, Instant::now()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_basic_and_bearer_headers() {
        let basic = format!("Basic {}", STANDARD.encode("ann:pa:ss"));
        assert_eq!(
            parse_authorization(&basic),
            Some(Credential::Basic {
                username: "ann".into(),
                password: "pa:ss".into()
            })
        );
        let (token, id) = new_token().unwrap();
        assert_eq!(
            parse_authorization(&format!("Bearer {token}")),
            Some(Credential::Token {
                id: id.clone(),
                token: token.clone()
            })
        );
        assert!(token.starts_with("keel_") && token.len() > 50 && id.len() == 12);
        for bad in [
            "Basic !!!",
            "Bearer abc",
            "Bearer keel_short_x",
            "Digest x",
            "Basic",
            &format!("Basic {}", STANDARD.encode("no-colon")),
        ] {
            assert_eq!(parse_authorization(bad), None, "{bad}");
        }
    }

    #[tokio::test]
    async fn hashes_verify_only_their_secret() {
        let h = hash("correct horse").await.unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify("correct horse", &h).await);
        assert!(!verify("correct horsf", &h).await);
        assert!(!verify("correct horse", "not a hash").await);
        assert_ne!(hash("correct horse").await.unwrap(), h, "salted");
    }

    #[test]
    fn the_cache_forgets_a_credential_when_the_stored_hash_changes() {
        let v = Verified::new().unwrap();
        v.remember("Basic a", "$argon2id$one");
        assert!(v.knows("Basic a", "$argon2id$one"));
        assert!(!v.knows("Basic a", "$argon2id$two"));
        assert!(!v.knows("Basic b", "$argon2id$one"));
    }
}
