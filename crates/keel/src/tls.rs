//! TLS for `keel server` and `keel serve`: a certificate chain and its private key, PEM files,
//! and the trust settings keel's own clients share with MLflow's.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use axum_server::tls_rustls::RustlsConfig;
use clap::Args;

/// `--tls-cert` and `--tls-key`, on both servers.
#[derive(Args, Clone, Default)]
pub struct TlsArgs {
    /// Answer HTTPS with this certificate chain (PEM, the server's certificate first).
    #[arg(long, env = "KEEL_TLS_CERT", requires = "tls_key", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "KEEL_TLS_KEY", requires = "tls_cert", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
}

impl TlsArgs {
    /// The server configuration, read now so a wrong file stops the server before it listens.
    pub async fn config(&self) -> Result<Option<RustlsConfig>> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => server_config(cert, key).await.map(Some),
            (None, None) => Ok(None),
            _ => bail!("--tls-cert and --tls-key go together"),
        }
    }
}

/// The URL scheme a server with `tls` answers.
pub fn scheme(tls: &Option<RustlsConfig>) -> &'static str {
    if tls.is_some() { "https" } else { "http" }
}

async fn server_config(cert: &Path, key: &Path) -> Result<RustlsConfig> {
    let read = |path: &Path, what: &str| {
        std::fs::read(path)
            .with_context(|| format!("cannot read the TLS {what} {}", path.display()))
    };
    let (cert_pem, key_pem) = (read(cert, "certificate")?, read(key, "key")?);
    RustlsConfig::from_pem(cert_pem, key_pem)
        .await
        .with_context(|| {
            format!(
                "--tls-cert {} and --tls-key {} do not make a server identity",
                cert.display(),
                key.display()
            )
        })
}

/// `builder` trusting what MLflow's client is told to trust: only the CA bundle of
/// `MLFLOW_TRACKING_SERVER_CERT_PATH` when set (as `requests`' `verify=PATH`), or any
/// certificate with `MLFLOW_TRACKING_INSECURE_TLS=true`.
pub fn client_trust(mut builder: reqwest::ClientBuilder) -> Result<reqwest::ClientBuilder> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    if let Some(path) = var("MLFLOW_TRACKING_SERVER_CERT_PATH") {
        let pem = std::fs::read(&path).with_context(|| {
            format!("cannot read MLFLOW_TRACKING_SERVER_CERT_PATH's certificates {path}")
        })?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).with_context(|| {
            format!("MLFLOW_TRACKING_SERVER_CERT_PATH {path} holds no PEM certificate")
        })?;
        if certs.is_empty() {
            bail!("MLFLOW_TRACKING_SERVER_CERT_PATH {path} holds no PEM certificate");
        }
        builder = builder.tls_certs_only(certs);
    }
    if var("MLFLOW_TRACKING_INSECURE_TLS").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        builder = builder.tls_danger_accept_invalid_certs(true);
    }
    Ok(builder)
}
