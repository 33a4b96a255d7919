//! Reaching the stores a command names: the local ones (`--db`, `--artifacts`, `--config`) or a
//! server (`--tracking-uri`).

use anyhow::{Context, Result};

use crate::args::{LocalStores, StoreArgs};
use crate::config::ServerSettings;
use crate::{client, data, data_remote, transfer};

/// The metadata and artifact stores that `--db`, `--artifacts` and `--config` (layered as for
/// `keel server`) name.
pub(crate) async fn open_stores(
    stores: &LocalStores,
) -> Result<(ServerSettings, transfer::Target)> {
    let settings = stores.settings()?;
    let target = transfer::Target {
        meta: keel_store::open_metadata_store(&settings.db, keel_server::ARTIFACT_SCHEME)
            .await
            .with_context(|| format!("cannot open the metadata store {}", settings.db))?,
        artifacts: keel_store::open_artifact_store(&settings.artifacts)
            .await
            .with_context(|| format!("cannot open the artifact store {}", settings.artifacts))?,
    };
    Ok((settings, target))
}

/// A client of the server `--tracking-uri` names or, without one, of the local stores: they
/// are served in-process on a loopback port, so both go through the same MLflow REST handlers.
pub(crate) async fn registry(store: &StoreArgs) -> Result<client::Client> {
    if let Some(uri) = &store.remote.tracking_uri {
        return client::Client::new(uri);
    }
    let (_, t) = open_stores(&store.local).await?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .context("cannot open a loopback port for the local stores")?;
    let addr = listener.local_addr()?;
    let state = keel_server::AppState::new(t.meta, t.artifacts);
    // Ends with the process, when the command is done.
    tokio::spawn(keel_server::serve(listener, state, std::future::pending()));
    client::Client::local(&format!("http://{addr}"))
}

/// The local stores, or the server `--tracking-uri` names.
pub(crate) async fn data_store(store: &StoreArgs) -> Result<data::Store> {
    Ok(match &store.remote.tracking_uri {
        Some(uri) => data::Store::Remote(data_remote::RemoteBackend {
            client: client::Client::new(uri)?,
        }),
        None => {
            let (_, t) = open_stores(&store.local).await?;
            data::Store::Local(keel_data::LocalBackend {
                meta: t.meta,
                artifacts: t.artifacts,
            })
        }
    })
}
