//! `keel server`: the tracking server and model registry over the local or configured stores.

use std::io::Write;

use anyhow::{Context, Result};
use clap::Args;

use crate::args::LocalStores;
use crate::config::FileSettings;

#[derive(Args)]
pub(crate) struct ServerArgs {
    /// Address to listen on [default: 127.0.0.1].
    #[arg(long, env = "KEEL_HOST")]
    pub(crate) host: Option<String>,
    /// Port to listen on (0 picks a free one) [default: 5000].
    #[arg(long, env = "KEEL_PORT")]
    pub(crate) port: Option<u16>,
    #[command(flatten)]
    pub(crate) stores: LocalStores,
}

pub(crate) async fn run(a: ServerArgs) -> Result<()> {
    let settings = a.stores.file.layer(FileSettings {
        host: a.host,
        port: a.port,
        ..a.stores.location.flags()
    })?;
    let meta = keel_store::open_metadata_store(&settings.db, keel_server::ARTIFACT_SCHEME)
        .await
        .with_context(|| format!("cannot open the metadata store {}", settings.db))?;
    let artifacts = keel_store::open_artifact_store(&settings.artifacts)
        .await
        .with_context(|| format!("cannot open the artifact store {}", settings.artifacts))?;
    let listener = tokio::net::TcpListener::bind((settings.host.as_str(), settings.port))
        .await
        .with_context(|| format!("cannot listen on {}:{}", settings.host, settings.port))?;
    let addr = listener.local_addr()?;
    // The banner must not take the server down when nobody reads stdout any more.
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "keel server listening on http://{addr}");
    let _ = writeln!(out, "  metadata:  {}", settings.db);
    let _ = writeln!(out, "  artifacts: {}", artifacts.root_uri());
    let _ = out.flush();
    drop(out);
    let state = keel_server::AppState::new(meta, artifacts);
    keel_server::serve(listener, state, shutdown_signal()).await?;
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
