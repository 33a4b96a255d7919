//! `keel data` against a keel server (`--tracking-uri`): the dataset API under
//! `/api/keel/v1`. Hashing and profiling stay on the client; only missing objects travel.

use std::path::Path;

use keel_core::artifact::ByteStream;
use keel_core::data::{DataSummary, DataUse, DataVersion};
use keel_data::{DataBackend, DataError};
use serde::Deserialize;
use serde_json::json;

use crate::client::Client;

/// A keel server as a [`DataBackend`].
pub struct RemoteBackend {
    pub client: Client,
}

fn err(e: anyhow::Error) -> DataError {
    DataError::Invalid(format!("{e:#}"))
}

#[derive(Deserialize)]
struct VersionAnswer {
    version: DataVersion,
    #[serde(default)]
    used_by: Vec<DataUse>,
}

#[derive(Deserialize)]
struct Created {
    version: DataVersion,
    created: bool,
}

#[async_trait::async_trait]
impl DataBackend for RemoteBackend {
    async fn list(&self) -> keel_data::Result<Vec<DataSummary>> {
        #[derive(Deserialize)]
        struct A {
            datasets: Vec<DataSummary>,
        }
        let a: Option<A> = self
            .client
            .keel_get("/api/keel/v1/datasets")
            .await
            .map_err(err)?;
        Ok(a.map(|a| a.datasets).unwrap_or_default())
    }

    async fn versions(&self, name: &str) -> keel_data::Result<Vec<DataVersion>> {
        #[derive(Deserialize)]
        struct A {
            versions: Vec<DataVersion>,
        }
        let a: Option<A> = self
            .client
            .keel_get(&format!("/api/keel/v1/datasets/{name}/versions"))
            .await
            .map_err(err)?;
        a.map(|a| a.versions).ok_or_else(|| {
            keel_core::Error::not_found(format!("Dataset '{name}' not found")).into()
        })
    }

    async fn version_with_uses(
        &self,
        name: &str,
        version: Option<i64>,
    ) -> keel_data::Result<Option<(DataVersion, Vec<DataUse>)>> {
        let v = version.map_or("latest".to_string(), |v| v.to_string());
        let a: Option<VersionAnswer> = self
            .client
            .keel_get(&format!("/api/keel/v1/datasets/{name}/versions/{v}"))
            .await
            .map_err(err)?;
        Ok(a.map(|a| (a.version, a.used_by)))
    }

    async fn version(
        &self,
        name: &str,
        version: Option<i64>,
    ) -> keel_data::Result<Option<DataVersion>> {
        Ok(self.version_with_uses(name, version).await?.map(|(v, _)| v))
    }

    /// The server stores each object durably before answering its upload, so only
    /// presence matters here.
    async fn missing(&self, objects: &[(String, u64)]) -> keel_data::Result<Vec<String>> {
        #[derive(Deserialize)]
        struct A {
            missing: Vec<String>,
        }
        let hashes: Vec<&str> = objects.iter().map(|(h, _)| h.as_str()).collect();
        let mut out = Vec::new();
        for chunk in hashes.chunks(50_000) {
            let a: A = self
                .client
                .keel_post(
                    "/api/keel/v1/data-objects/missing",
                    &json!({ "hashes": chunk }),
                )
                .await
                .map_err(err)?;
            out.extend(a.missing);
        }
        Ok(out)
    }

    async fn upload_file(&self, hash: &str, src: &Path) -> keel_data::Result<u64> {
        let file = tokio::fs::File::open(src)
            .await
            .map_err(|e| DataError::io(src, e))?;
        let size = file
            .metadata()
            .await
            .map_err(|e| DataError::io(src, e))?
            .len();
        let stream = tokio_util::io::ReaderStream::with_capacity(file, 1 << 20);
        self.client
            .keel_put(
                &format!("/api/keel/v1/data-objects/{hash}"),
                reqwest::Body::wrap_stream(stream),
            )
            .await
            .map_err(err)?;
        Ok(size)
    }

    async fn upload_bytes(&self, hash: &str, bytes: Vec<u8>) -> keel_data::Result<()> {
        self.client
            .keel_put(
                &format!("/api/keel/v1/data-objects/{hash}"),
                reqwest::Body::from(bytes),
            )
            .await
            .map_err(err)?;
        Ok(())
    }

    async fn sync(&self) -> keel_data::Result<()> {
        // The server answers an upload only once it is stored.
        Ok(())
    }

    async fn record(&self, v: DataVersion) -> keel_data::Result<(DataVersion, bool)> {
        let body = json!({
            "hash": v.hash, "kind": v.kind, "format": v.format, "size_bytes": v.size_bytes,
            "file_count": v.file_count, "row_count": v.row_count, "schema": v.schema,
            "profile": v.profile, "source": v.source, "created_by": v.created_by,
            "description": v.description,
        });
        let c: Created = self
            .client
            .keel_post(&format!("/api/keel/v1/datasets/{}/versions", v.name), &body)
            .await
            .map_err(err)?;
        Ok((c.version, c.created))
    }

    async fn download(&self, hash: &str) -> keel_data::Result<ByteStream> {
        self.client
            .download(&format!("/api/keel/v1/data-objects/{hash}"), &[])
            .await
            .map_err(err)
    }

    async fn record_validation(
        &self,
        name: &str,
        version: i64,
        created_by: &str,
        report: serde_json::Value,
    ) -> keel_data::Result<()> {
        let body = json!({ "report": report, "created_by": created_by });
        let _: serde_json::Value = self
            .client
            .keel_post(
                &format!("/api/keel/v1/datasets/{name}/versions/{version}/validations"),
                &body,
            )
            .await
            .map_err(err)?;
        Ok(())
    }
}
