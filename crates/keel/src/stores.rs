//! Reaching the stores a command names, one way for every command: [`Stores::open`] opens the
//! local ones (`--db`, `--artifacts`, `--config`) or names a server (`--tracking-uri`), once.
//! Commands then work through two interfaces that exist for both:
//!
//! - the MLflow REST API ([`Stores::client`]): a server's, or the local stores' served by the
//!   same handlers on a loopback port, so the two cannot answer differently;
//! - [`keel_data::DataBackend`] ([`Stores::data`]) for `keel data`, whose local side writes
//!   objects straight into the artifact store (batched copies, one sync) instead of streaming
//!   every byte through HTTP.

use anyhow::{Context, Result};
use keel_data::DataBackend;

use crate::args::{LocalStores, StoreArgs};
use crate::config::ServerSettings;
use crate::{client, data_remote, transfer};

/// The metadata and artifact stores that `--db`, `--artifacts` and `--config` (layered as for
/// `keel server`) name.
pub(crate) async fn open_stores(
    stores: &LocalStores,
) -> Result<(ServerSettings, transfer::Target)> {
    let settings = stores.settings()?;
    Ok((settings.clone(), open_local(&settings).await?))
}

/// The metadata and artifact stores `settings` name.
pub(crate) async fn open_local(settings: &ServerSettings) -> Result<transfer::Target> {
    Ok(transfer::Target {
        meta: keel_store::open_metadata_store(&settings.db, keel_server::ARTIFACT_SCHEME)
            .await
            .with_context(|| format!("cannot open the metadata store {}", settings.db))?,
        artifacts: keel_store::open_artifact_store(&settings.artifacts)
            .await
            .with_context(|| format!("cannot open the artifact store {}", settings.artifacts))?,
    })
}

/// The stores a command works on.
pub(crate) enum Stores {
    /// The local metadata and artifact stores, opened in this process.
    Local(transfer::Target),
    /// A keel server.
    Remote(client::Client),
}

impl Stores {
    /// The server `--tracking-uri` (or the settings file's `[store] tracking_uri`) names or,
    /// without one, the local stores.
    pub(crate) async fn open(args: &StoreArgs) -> Result<Self> {
        let file = args.local.file.read()?;
        let uri = args
            .remote
            .tracking_uri
            .as_ref()
            .or(file.tracking_uri.as_ref());
        Ok(match uri {
            Some(uri) => Stores::Remote(client::Client::new(uri)?),
            None => {
                let settings = ServerSettings::layer(args.local.location.flags(), file.server);
                Stores::Local(open_local(&settings).await?)
            }
        })
    }

    /// A client of the MLflow REST API: the server's, or the local stores served in-process on
    /// a loopback port until the command ends.
    pub(crate) async fn client(&self) -> Result<client::Client> {
        let t = match self {
            Stores::Remote(c) => return Ok(c.clone()),
            Stores::Local(t) => t,
        };
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .context("cannot open a loopback port for the local stores")?;
        let addr = listener.local_addr()?;
        let state = keel_server::AppState::new(t.meta.clone(), t.artifacts.clone());
        // Ends with the process, when the command is done.
        tokio::spawn(keel_server::serve(
            listener,
            state,
            None,
            std::future::pending(),
        ));
        client::Client::local(&format!("http://{addr}"))
    }

    /// The dataset interface of these stores.
    pub(crate) fn data(&self) -> Box<dyn DataBackend> {
        match self {
            Stores::Local(t) => Box::new(keel_data::LocalBackend {
                meta: t.meta.clone(),
                artifacts: t.artifacts.clone(),
            }),
            Stores::Remote(c) => Box::new(data_remote::RemoteBackend { client: c.clone() }),
        }
    }
}

/// A client of the REST API of the stores `store` names (see [`Stores::client`]).
pub(crate) async fn registry(store: &StoreArgs) -> Result<client::Client> {
    Stores::open(store).await?.client().await
}
