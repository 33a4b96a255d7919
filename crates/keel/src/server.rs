//! `keel server`: the tracking server and model registry over the local or configured stores.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;

use keel_monitor::gauges::MonitorGauges;

use crate::args::LocalStores;
use crate::client::Client;
use crate::config::FileSettings;
use crate::stores::Stores;

#[derive(Args)]
pub(crate) struct ServerArgs {
    /// Address to listen on [default: 127.0.0.1].
    #[arg(long, env = "KEEL_HOST")]
    pub(crate) host: Option<String>,
    /// Port to listen on (0 picks a free one) [default: 5000].
    #[arg(long, env = "KEEL_PORT")]
    pub(crate) port: Option<u16>,
    /// Watch a model from inside the server: a monitor file (keel.monitor/v1) whose checks run
    /// on its schedule, with its gauges on /metrics (repeatable).
    #[arg(long = "monitor", value_name = "FILE")]
    pub(crate) monitor: Vec<PathBuf>,
    #[command(flatten)]
    pub(crate) stores: LocalStores,
}

pub(crate) async fn run(a: ServerArgs) -> Result<()> {
    let settings = a.stores.file.layer(FileSettings {
        host: a.host,
        port: a.port,
        ..a.stores.location.flags()
    })?;
    // Monitor files are read first: a wrong one stops the server before it starts.
    let watched = a
        .monitor
        .iter()
        .map(|p| crate::monitor::watch::read(p))
        .collect::<Result<Vec<_>>>()?;
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
    let gauges = Arc::new(MonitorGauges::default());
    let metrics = keel_server::metrics::HttpMetrics::with(|r| {
        if !watched.is_empty() {
            gauges.register(r);
        }
    });
    let state =
        keel_server::AppState::with_metrics(stores.meta.clone(), stores.artifacts.clone(), metrics);
    // Each watched model's checks go through this server's own API, as a client's would.
    for (file, origin) in watched {
        let local = Stores::Local(crate::transfer::Target {
            meta: stores.meta.clone(),
            artifacts: stores.artifacts.clone(),
        });
        let client = Client::local(&format!("http://{addr}"))?;
        let gauges = gauges.clone();
        tokio::spawn(async move {
            if let Err(e) =
                crate::monitor::watch::run(file, origin.clone(), local, client, Some(gauges), false)
                    .await
            {
                eprintln!("monitoring {origin} stopped: {e:#}");
            }
        });
    }
    keel_server::serve(listener, state, crate::shutdown::signal()).await?;
    Ok(())
}
