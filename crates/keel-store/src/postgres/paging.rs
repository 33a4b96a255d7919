//! Paging id queries on PostgreSQL.

use keel_core::Result;
use sqlx::{PgConnection, Postgres, Row};

use super::DbResult;
use crate::search::{Bind, Sql};

/// Runs an id query one page at a time: appends `LIMIT max + 1 OFFSET offset` and returns the
/// first `max` ids and whether more follow.
pub(crate) async fn page_ids<T>(
    conn: &mut PgConnection,
    mut sql: Sql,
    max: usize,
    offset: u64,
) -> Result<(Vec<T>, bool)>
where
    T: for<'r> sqlx::Decode<'r, Postgres> + sqlx::Type<Postgres> + Send + Unpin,
{
    sql.push(" LIMIT ")
        .bind(Bind::I64((max as i64).saturating_add(1)))
        .push(" OFFSET ")
        .bind(Bind::I64(offset as i64));
    let rows = sql.into_pg_query()?.fetch_all(conn).await.db()?;
    let mut ids = rows
        .iter()
        .map(|r| r.try_get(0))
        .collect::<std::result::Result<Vec<T>, _>>()
        .db()?;
    let more = ids.len() > max;
    ids.truncate(max);
    Ok((ids, more))
}
