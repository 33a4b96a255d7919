//! Paging id queries on SQLite.

use keel_core::{Error, Result};
use sqlx::sqlite::Sqlite;

use crate::search::{Bind, Sql};

/// Runs an id query one page at a time: appends `LIMIT max + 1 OFFSET offset` and returns the
/// first `max` ids and whether more follow.
pub(crate) async fn page_ids<T>(
    conn: &mut sqlx::SqliteConnection,
    mut sql: Sql,
    max: usize,
    offset: u64,
) -> Result<(Vec<T>, bool)>
where
    T: for<'r> sqlx::Decode<'r, Sqlite> + sqlx::Type<Sqlite> + Send + Unpin,
{
    use sqlx::Row;
    sql.push(" LIMIT ")
        .bind(Bind::I64((max as i64).saturating_add(1)))
        .push(" OFFSET ")
        .bind(Bind::I64(offset as i64));
    let rows = sql
        .into_query()?
        .fetch_all(conn)
        .await
        .map_err(|e| Error::internal(format!("database error: {e}")))?;
    let mut ids = rows
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<Vec<T>, _>>()
        .map_err(|e| Error::internal(format!("database error: {e}")))?;
    let more = ids.len() > max;
    ids.truncate(max);
    Ok((ids, more))
}
