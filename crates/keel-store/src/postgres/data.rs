//! Dataset versions on PostgreSQL. A new version locks its name's row first, so concurrent
//! adds of one dataset are numbered one after the other.

use keel_core::data::{DataSummary, DataUse, DataVersion, digest_of};
use keel_core::{Result, now_millis};
use sqlx::{AssertSqlSafe, PgConnection};

use super::{DbResult, PgStore};
use crate::data_rows::{
    POSTGRES as SQL, data_summary, data_use, data_version, json_text, not_found,
};

async fn version_row(
    conn: &mut PgConnection,
    name: &str,
    version: Option<i64>,
) -> Result<Option<DataVersion>> {
    let row = match version {
        Some(v) => {
            sqlx::query(AssertSqlSafe(SQL.version_at.as_str()))
                .bind(name)
                .bind(v)
                .fetch_optional(&mut *conn)
                .await
        }
        None => {
            sqlx::query(AssertSqlSafe(SQL.latest.as_str()))
                .bind(name)
                .fetch_optional(&mut *conn)
                .await
        }
    }
    .db()?;
    row.as_ref().map(data_version).transpose()
}

impl PgStore {
    pub(crate) async fn do_create_data_version(
        &self,
        v: DataVersion,
    ) -> Result<(DataVersion, bool)> {
        let mut tx = self.pool.begin().await.db()?;
        let now = now_millis();
        sqlx::query("INSERT INTO data_names (name, last_version, creation_time) VALUES ($1, 0, $2) ON CONFLICT (name) DO NOTHING")
            .bind(&v.name)
            .bind(now)
            .execute(&mut *tx)
            .await
            .db()?;
        let version: i64 =
            sqlx::query_scalar("SELECT last_version FROM data_names WHERE name = $1 FOR UPDATE")
                .bind(&v.name)
                .fetch_one(&mut *tx)
                .await
                .db()?;
        if let Some(latest) = version_row(&mut tx, &v.name, None).await?
            && latest.hash == v.hash
        {
            return Ok((latest, false));
        }
        let version = version + 1;
        sqlx::query("UPDATE data_names SET last_version = $2 WHERE name = $1")
            .bind(&v.name)
            .bind(version)
            .execute(&mut *tx)
            .await
            .db()?;
        sqlx::query(AssertSqlSafe(SQL.insert.as_str()))
            .bind(&v.name)
            .bind(version)
            .bind(&v.hash)
            .bind(v.kind.as_str())
            .bind(&v.format)
            .bind(v.size_bytes)
            .bind(v.file_count)
            .bind(v.row_count)
            .bind(json_text(&v.schema))
            .bind(json_text(&v.profile))
            .bind(&v.source)
            .bind(&v.created_by)
            .bind(now)
            .bind(&v.description)
            .bind(digest_of(&v.hash)?)
            .execute(&mut *tx)
            .await
            .db()?;
        tx.commit().await.db()?;
        Ok((
            DataVersion {
                version,
                creation_time: now,
                ..v
            },
            true,
        ))
    }

    pub(crate) async fn do_get_data_version(
        &self,
        name: &str,
        version: Option<i64>,
    ) -> Result<DataVersion> {
        version_row(&mut *self.pool.acquire().await.db()?, name, version)
            .await?
            .ok_or_else(|| not_found(name, version))
    }

    pub(crate) async fn do_list_data(&self) -> Result<Vec<DataSummary>> {
        let mut c = self.pool.acquire().await.db()?;
        let rows = sqlx::query(AssertSqlSafe(SQL.list.as_str()))
            .fetch_all(&mut *c)
            .await
            .db()?;
        rows.iter().map(data_summary).collect()
    }

    pub(crate) async fn do_list_data_versions(&self, name: &str) -> Result<Vec<DataVersion>> {
        let mut c = self.pool.acquire().await.db()?;
        let rows = sqlx::query(AssertSqlSafe(SQL.versions.as_str()))
            .bind(name)
            .fetch_all(&mut *c)
            .await
            .db()?;
        if rows.is_empty() {
            return Err(not_found(name, None));
        }
        rows.iter().map(data_version).collect()
    }

    pub(crate) async fn do_data_versions_by_hash(&self, hash: &str) -> Result<Vec<DataVersion>> {
        let mut c = self.pool.acquire().await.db()?;
        let rows = sqlx::query(AssertSqlSafe(SQL.by_digest.as_str()))
            .bind(digest_of(hash)?)
            .fetch_all(&mut *c)
            .await
            .db()?;
        rows.iter().map(data_version).collect()
    }

    pub(crate) async fn do_search_datasets(
        &self,
        experiments: &[i64],
    ) -> Result<Vec<keel_core::entities::DatasetSummary>> {
        if experiments.is_empty() {
            return Ok(Vec::new());
        }
        let mut c = self.pool.acquire().await.db()?;
        let rows =
            crate::data_rows::dataset_summaries_sql(crate::search::Dialect::Postgres, experiments)
                .into_pg_query()?
                .fetch_all(&mut *c)
                .await
                .db()?;
        rows.iter().map(crate::data_rows::dataset_summary).collect()
    }

    pub(crate) async fn do_data_uses(&self, hash: &str) -> Result<Vec<DataUse>> {
        let mut c = self.pool.acquire().await.db()?;
        let rows = sqlx::query(AssertSqlSafe(SQL.uses.as_str()))
            .bind(digest_of(hash)?)
            .fetch_all(&mut *c)
            .await
            .db()?;
        rows.iter().map(data_use).collect()
    }
}
