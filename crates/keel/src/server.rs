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
    let stores = crate::stores::open_local(&settings).await?;
    let listener = tokio::net::TcpListener::bind((settings.host.as_str(), settings.port))
        .await
        .with_context(|| format!("cannot listen on {}:{}", settings.host, settings.port))?;
    let addr = listener.local_addr()?;
    // The banner must not take the server down when nobody reads stdout any more.
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "keel server listening on http://{addr}");
    let _ = writeln!(out, "  metadata:  {}", settings.db);
    let _ = writeln!(out, "  artifacts: {}", stores.artifacts.root_uri());
    let _ = out.flush();
    drop(out);
    let state = keel_server::AppState::new(stores.meta, stores.artifacts);
    keel_server::serve(listener, state, crate::shutdown::signal()).await?;
    Ok(())
}
