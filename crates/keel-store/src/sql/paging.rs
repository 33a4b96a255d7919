//! Paging id queries.

use keel_core::Result;

use crate::db::{Bind, Col, Conn, Sql};

/// Runs an id query one page at a time: appends `LIMIT max + 1 OFFSET offset` and returns the
/// first `max` ids and whether more follow.
pub(crate) async fn page_ids<T: Col>(
    c: &mut Conn<'_>,
    mut sql: Sql,
    max: usize,
    offset: u64,
) -> Result<(Vec<T>, bool)> {
    limit(&mut sql, max, offset);
    let mut ids = c.column(sql).await?;
    let more = ids.len() > max;
    ids.truncate(max);
    Ok((ids, more))
}

/// Appends `LIMIT max + 1 OFFSET offset`: one row more than a page tells whether more follow.
pub(crate) fn limit(sql: &mut Sql, max: usize, offset: u64) {
    sql.push(" LIMIT ")
        .bind(Bind::I64((max as i64).saturating_add(1)))
        .push(" OFFSET ")
        .bind(Bind::I64(offset as i64));
}
