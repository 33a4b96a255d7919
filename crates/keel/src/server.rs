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
    /// Ask who is calling: users with passwords or access tokens, and their permissions on
    /// experiments and registered models (MLflow's basic-auth API) [`[auth] enabled`].
    #[arg(long, env = "KEEL_AUTH")]
    pub(crate) auth: bool,
    /// Log every write (who, from where, what, the state before and after) in the metadata
    /// database, chained by hash (`keel audit`); for good once on. Meant with --auth, which
    /// names who writes.
    #[arg(long, env = "KEEL_AUDIT")]
    pub(crate) audit: bool,
    /// The `Host` header values answered, comma-separated patterns where `*` matches anything
    /// (`keel.example.com,*.svc:5000`; `*` for any): requests for other hosts are refused, as a
    /// page rebinding its own name to this server would send [default: localhost and private
    /// network addresses, as MLflow's].
    #[arg(long, env = "KEEL_ALLOWED_HOSTS")]
    pub(crate) allowed_hosts: Option<String>,
    /// Listen on an address other machines reach without --auth: anyone who reaches it may
    /// read and change everything.
    #[arg(long)]
    pub(crate) insecure: bool,
    /// With --auth: what users may do where they hold no grant (READ, USE, EDIT, MANAGE or
    /// NO_PERMISSIONS) [default: READ].
    #[arg(long, env = "KEEL_DEFAULT_PERMISSION")]
    pub(crate) default_permission: Option<String>,
    /// With --auth: the first admin's username, created when no user exists yet.
    #[arg(long, env = "KEEL_ADMIN_USERNAME")]
    pub(crate) admin_username: Option<String>,
    /// With --auth: the first admin's password (there is no default password). Give it through
    /// the environment rather than the command line, which other users of the machine can see.
    #[arg(long, env = "KEEL_ADMIN_PASSWORD", hide_env_values = true)]
    pub(crate) admin_password: Option<String>,
    /// With --auth: a file holding `username:password` of the first admin, read when no user
    /// exists yet (a mounted Kubernetes secret, say).
    #[arg(long, env = "KEEL_ADMIN_FILE")]
    pub(crate) admin_file: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) tls: crate::tls::TlsArgs,
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
    let file = a.stores.file.read()?.auth;
    let auth_on = a.auth || file.enabled.unwrap_or(false);
    if !auth_on && !a.insecure && !crate::auth::is_loopback(&settings.host) {
        anyhow::bail!(
            "keel server would listen on {} without authentication: anyone who reaches it could read and change everything. Start it with --auth (users, permissions and tokens), or with --insecure to accept that",
            settings.host
        );
    }
    let tls = a.tls.config().await?;
    let stores = crate::stores::open_local(&settings).await?;
    if a.audit {
        stores.meta.enable_audit().await?;
    }
    let audited = stores.meta.audit_enabled().await?;
    let auth = match auth_on {
        true => Some(
            crate::auth::server_auth(
                &stores.meta,
                a.default_permission
                    .as_deref()
                    .or(file.default_permission.as_deref()),
                crate::auth::FirstAdmin {
                    file: a.admin_file.as_deref().or(file.admin_file.as_deref()),
                    username: a.admin_username.as_deref(),
                    password: a.admin_password.as_deref(),
                },
            )
            .await?,
        ),
        false => None,
    };
    let listener = tokio::net::TcpListener::bind((settings.host.as_str(), settings.port))
        .await
        .with_context(|| format!("cannot listen on {}:{}", settings.host, settings.port))?;
    let addr = listener.local_addr()?;
    // The banner must not take the server down when nobody reads stdout any more.
    let mut out = std::io::stdout().lock();
    let scheme = crate::tls::scheme(&tls);
    let _ = writeln!(out, "keel server listening on {scheme}://{addr}");
    let _ = writeln!(out, "  metadata:  {}", settings.db);
    let _ = writeln!(out, "  artifacts: {}", stores.artifacts.root_uri());
    match &auth {
        Some(a) => {
            let _ = writeln!(
                out,
                "  auth:      on (default permission {})",
                a.config.default_permission.name()
            );
        }
        None => {
            let _ = writeln!(out, "  auth:      off");
        }
    }
    let _ = writeln!(
        out,
        "  audit:     {}",
        if audited {
            "every write logged (keel audit)"
        } else {
            "off"
        }
    );
    let _ = out.flush();
    drop(out);
    let gauges = Arc::new(MonitorGauges::default());
    let metrics = keel_server::metrics::HttpMetrics::with(|r| {
        if !watched.is_empty() {
            gauges.register(r);
        }
    });
    let mut state =
        keel_server::AppState::with_metrics(stores.meta.clone(), stores.artifacts.clone(), metrics);
    let hosts = a
        .allowed_hosts
        .clone()
        .or_else(|| file.allowed_hosts.as_ref().map(|h| h.join(",")));
    if let Some(hosts) = hosts {
        state = state.with_allowed_hosts(keel_server::hosts::AllowedHosts::parse(&hosts));
    }
    let internal = auth.as_ref().map(|a| a.internal_token().to_string());
    if audited {
        state = state.with_audit();
    }
    if let Some(auth) = auth {
        state = state.with_auth(auth);
    }
    // Each watched model's checks go through this server's own API, as a client's would.
    for (file, origin) in watched {
        let local = Stores::Local(crate::transfer::Target {
            meta: stores.meta.clone(),
            artifacts: stores.artifacts.clone(),
        });
        let client =
            Client::local(&format!("{scheme}://{addr}"))?.with_token(internal.as_deref())?;
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
    keel_server::serve(listener, state, tls, crate::shutdown::signal()).await?;
    Ok(())
}
