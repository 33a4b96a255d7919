//! The narrow part of the metadata store that differs between SQLite and PostgreSQL.
//!
//! Everything above this module (row mapping, statements, messages) is written once against
//! [`Conn`] and [`Sql`]. What this module hides:
//! - **placeholders**: statements are written with `?`; [`Conn::stmt`] numbers them (`$1, $2`)
//!   for PostgreSQL;
//! - **values and rows**: [`Bind`] carries a value to either driver, [`Row::get`] decodes any
//!   type both drivers decode;
//! - **how a write unit runs** ([`Db::write`]): on SQLite, inside a savepoint of the single
//!   writer task's group commit; on PostgreSQL, as one transaction on a pooled connection;
//! - **row locks** ([`Conn::lock`]): `FOR UPDATE`/`FOR SHARE` on PostgreSQL, nothing on SQLite,
//!   whose one writer already runs writes one at a time.

use futures::future::BoxFuture;
use keel_core::{Error, Result};
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgArguments, PgConnection, PgPool, PgRow, Postgres};
use sqlx::sqlite::{Sqlite, SqliteArguments, SqliteConnection, SqlitePool, SqliteRow};
use sqlx::{Arguments, AssertSqlSafe, Decode, Type};

use crate::sqlite::writer::Writer;

/// Converts sqlx errors into keel's internal errors.
pub(crate) trait DbResult<T> {
    fn db(self) -> Result<T>;
}

impl<T> DbResult<T> for std::result::Result<T, sqlx::Error> {
    fn db(self) -> Result<T> {
        self.map_err(db_error)
    }
}

fn db_error(e: sqlx::Error) -> Error {
    Error::internal(format!("database error: {e}"))
}

/// Whether a sqlx error is a unique-constraint violation.
pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

/// Which SQL the text is written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Dialect {
    #[default]
    Sqlite,
    Postgres,
}

/// A value bound to a placeholder. The optional kinds bind a typed `NULL`, which PostgreSQL
/// needs to accept it for a non-text column.
#[derive(Debug, Clone)]
pub(crate) enum Bind {
    Str(String),
    F64(f64),
    I64(i64),
    Bool(bool),
    OptStr(Option<String>),
    OptI64(Option<i64>),
    OptF64(Option<f64>),
    /// A text array: PostgreSQL only.
    Strs(Vec<String>),
}

/// `From` conversions into [`Bind`]: each source type, a value `v` of it, and the variant.
macro_rules! binds {
    ($($t:ty => |$v:ident| $e:expr;)+) => {
        $(impl From<$t> for Bind {
            fn from($v: $t) -> Self {
                $e
            }
        })+
    };
}

binds! {
    &str => |v| Bind::Str(v.to_string());
    &String => |v| Bind::Str(v.clone());
    String => |v| Bind::Str(v);
    i64 => |v| Bind::I64(v);
    f64 => |v| Bind::F64(v);
    bool => |v| Bind::Bool(v);
    Option<String> => |v| Bind::OptStr(v);
    &Option<String> => |v| Bind::OptStr(v.clone());
    Option<&str> => |v| Bind::OptStr(v.map(str::to_string));
    Option<i64> => |v| Bind::OptI64(v);
}

/// SQL text with placeholders (`?` for SQLite, `$1, $2, ...` for PostgreSQL) and the values for
/// them, in order.
#[derive(Debug, Default)]
pub(crate) struct Sql {
    pub text: String,
    pub binds: Vec<Bind>,
    pub dialect: Dialect,
    /// Whether PostgreSQL should keep the prepared statement: yes for the fixed statements
    /// ([`Conn::stmt`]), no for texts built per request, each planned for its own values (a
    /// generic plan cannot see how selective a value is) and that would only fill the cache.
    /// SQLite always keeps them: log batches of one shape reuse theirs.
    pub prepare: bool,
}

impl Sql {
    pub fn new(dialect: Dialect) -> Self {
        Sql {
            dialect,
            ..Sql::default()
        }
    }

    /// A fixed statement written with `?` placeholders, numbered for `dialect`.
    pub fn stmt(dialect: Dialect, text: &str) -> Self {
        let text = match dialect {
            Dialect::Sqlite => text.to_string(),
            Dialect::Postgres => number_placeholders(text),
        };
        Sql {
            text,
            binds: Vec::new(),
            dialect,
            prepare: true,
        }
    }

    pub fn push(&mut self, s: &str) -> &mut Self {
        self.text.push_str(s);
        self
    }

    /// Appends a placeholder bound to `b`.
    pub fn bind(&mut self, b: impl Into<Bind>) -> &mut Self {
        match self.dialect {
            Dialect::Sqlite => self.text.push('?'),
            Dialect::Postgres => {
                self.text.push('$');
                self.text.push_str(&(self.binds.len() + 1).to_string());
            }
        }
        self.binds.push(b.into());
        self
    }

    pub fn bind_str(&mut self, s: impl Into<String>) -> &mut Self {
        self.bind(Bind::Str(s.into()))
    }

    /// Appends `(?, ?, ...)` bound to `items`.
    pub fn bind_list(&mut self, items: impl IntoIterator<Item = Bind>) -> &mut Self {
        self.text.push('(');
        for (i, b) in items.into_iter().enumerate() {
            if i > 0 {
                self.text.push_str(", ");
            }
            self.bind(b);
        }
        self.text.push(')');
        self
    }

    /// Binds the value of the next placeholder already in the text (of [`Sql::stmt`]).
    pub fn arg(mut self, b: impl Into<Bind>) -> Self {
        self.binds.push(b.into());
        self
    }

    /// A SQLite query over this SQL with every value bound (no copies of the values).
    pub fn into_query(self) -> Result<sqlx::query::Query<'static, Sqlite, SqliteArguments>> {
        self.check_text()?;
        let mut args = SqliteArguments::default();
        args.reserve(self.binds.len(), 0);
        for b in self.binds {
            let r = match b {
                Bind::Str(s) => args.add(s),
                Bind::F64(f) => args.add(f),
                Bind::I64(i) => args.add(i),
                Bind::Bool(v) => args.add(v),
                Bind::OptStr(v) => args.add(v),
                Bind::OptI64(v) => args.add(v),
                Bind::OptF64(v) => args.add(v),
                Bind::Strs(_) => return Err(Error::internal("SQLite has no array values")),
            };
            r.map_err(bind_error)?;
        }
        // Prepared and cached per connection.
        Ok(sqlx::query_with(AssertSqlSafe(self.text), args))
    }

    /// A PostgreSQL query over this SQL (written with [`Dialect::Postgres`]) with every value bound.
    pub fn into_pg_query(self) -> Result<sqlx::query::Query<'static, Postgres, PgArguments>> {
        debug_assert_eq!(self.dialect, Dialect::Postgres);
        self.check_text()?;
        let mut args = PgArguments::default();
        for b in self.binds {
            let r = match b {
                Bind::Str(s) => args.add(s),
                Bind::F64(f) => args.add(f),
                Bind::I64(i) => args.add(i),
                Bind::Bool(v) => args.add(v),
                Bind::OptStr(v) => args.add(v),
                Bind::OptI64(v) => args.add(v),
                Bind::OptF64(v) => args.add(v),
                Bind::Strs(v) => args.add(v),
            };
            r.map_err(bind_error)?;
        }
        Ok(sqlx::query_with(AssertSqlSafe(self.text), args).persistent(self.prepare))
    }
}

impl Sql {
    /// Refuses a text value holding the NUL character, which PostgreSQL cannot store (SQLite
    /// could): the same 400 on both engines instead of a database error.
    fn check_text(&self) -> Result<()> {
        let nul = |s: &str| s.contains('\0');
        let bad = self.binds.iter().any(|b| match b {
            Bind::Str(s) | Bind::OptStr(Some(s)) => nul(s),
            Bind::Strs(v) => v.iter().any(|s| nul(s)),
            _ => false,
        });
        match bad {
            true => Err(Error::invalid(
                "Text values cannot hold the NUL character (U+0000)",
            )),
            false => Ok(()),
        }
    }
}

fn bind_error(e: impl std::fmt::Display) -> Error {
    Error::internal(format!("cannot bind a query value: {e}"))
}

/// `?` -> `$1, $2, ...`, leaving quoted text alone.
fn number_placeholders(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    let mut n = 0;
    let mut quoted = false;
    for c in text.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                out.push(c);
            }
            '?' if !quoted => {
                n += 1;
                out.push('$');
                out.push_str(&n.to_string());
            }
            c => out.push(c),
        }
    }
    out
}

/// A type both drivers decode from a column.
pub(crate) trait Col:
    for<'r> Decode<'r, Sqlite> + Type<Sqlite> + for<'r> Decode<'r, Postgres> + Type<Postgres>
{
}
impl<T> Col for T where
    T: for<'r> Decode<'r, Sqlite> + Type<Sqlite> + for<'r> Decode<'r, Postgres> + Type<Postgres>
{
}

/// A result row of either driver.
pub(crate) enum Row {
    Sqlite(SqliteRow),
    Pg(PgRow),
}

impl Row {
    /// Column `i`, decoded as `T`.
    pub fn get<T: Col>(&self, i: usize) -> Result<T> {
        use sqlx::Row as _;
        match self {
            Row::Sqlite(r) => r.try_get(i).db(),
            Row::Pg(r) => r.try_get(i).db(),
        }
    }

    /// Column `i`, an integer, as text (ids and version numbers are strings on the wire).
    pub fn get_id(&self, i: usize) -> Result<String> {
        Ok(self.get::<i64>(i)?.to_string())
    }
}

/// Which row lock a read takes on PostgreSQL.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Lock {
    /// Others may read and share-lock the row, nobody may change it until the unit ends.
    Share,
    /// The unit will change the row: others wait.
    Update,
}

/// One connection of either backend: a pooled reader or the connection a write unit runs on.
pub(crate) enum Conn<'c> {
    Sqlite(&'c mut SqliteConnection),
    Pg(&'c mut PgConnection),
}

impl Conn<'_> {
    /// This connection, lent for a shorter while (to a write unit's body, say).
    pub fn reborrow(&mut self) -> Conn<'_> {
        match self {
            Conn::Sqlite(c) => Conn::Sqlite(c),
            Conn::Pg(c) => Conn::Pg(c),
        }
    }

    pub fn dialect(&self) -> Dialect {
        match self {
            Conn::Sqlite(_) => Dialect::Sqlite,
            Conn::Pg(_) => Dialect::Postgres,
        }
    }

    /// An empty [`Sql`] for this connection's dialect, to build a statement in.
    pub fn sql(&self) -> Sql {
        Sql::new(self.dialect())
    }

    /// A fixed statement written with `?` placeholders; bind its values with [`Sql::arg`].
    pub fn stmt(&self, text: &str) -> Sql {
        Sql::stmt(self.dialect(), text)
    }

    /// The row-lock suffix for a `SELECT` in a write unit (empty on SQLite).
    pub fn lock(&self, lock: Lock) -> &'static str {
        match (self, lock) {
            (Conn::Sqlite(_), _) => "",
            (Conn::Pg(_), Lock::Share) => " FOR SHARE",
            (Conn::Pg(_), Lock::Update) => " FOR UPDATE",
        }
    }

    /// Every row of `sql`.
    pub async fn rows(&mut self, sql: Sql) -> Result<Vec<Row>> {
        Ok(match self {
            Conn::Sqlite(c) => sql
                .into_query()?
                .fetch_all(&mut **c)
                .await
                .db()?
                .into_iter()
                .map(Row::Sqlite)
                .collect(),
            Conn::Pg(c) => sql
                .into_pg_query()?
                .fetch_all(&mut **c)
                .await
                .db()?
                .into_iter()
                .map(Row::Pg)
                .collect(),
        })
    }

    /// The first row of `sql`, if any.
    pub async fn row(&mut self, sql: Sql) -> Result<Option<Row>> {
        Ok(match self {
            Conn::Sqlite(c) => sql
                .into_query()?
                .fetch_optional(&mut **c)
                .await
                .db()?
                .map(Row::Sqlite),
            Conn::Pg(c) => sql
                .into_pg_query()?
                .fetch_optional(&mut **c)
                .await
                .db()?
                .map(Row::Pg),
        })
    }

    /// The first column of the first row of `sql`, if there is a row.
    pub async fn value<T: Col>(&mut self, sql: Sql) -> Result<Option<T>> {
        self.row(sql).await?.map(|r| r.get(0)).transpose()
    }

    /// The first column of every row of `sql`.
    pub async fn column<T: Col>(&mut self, sql: Sql) -> Result<Vec<T>> {
        self.rows(sql).await?.iter().map(|r| r.get(0)).collect()
    }

    /// Runs `sql` and returns how many rows it changed.
    pub async fn exec(&mut self, sql: Sql) -> Result<u64> {
        self.exec_raw(sql).await?.map_err(db_error)
    }

    /// [`Conn::exec`], answering a unique-constraint violation with `conflict()`. On PostgreSQL
    /// the violation ends the write unit, so it must be its last statement.
    pub async fn exec_unique(&mut self, sql: Sql, conflict: impl FnOnce() -> Error) -> Result<u64> {
        match self.exec_raw(sql).await? {
            Ok(n) => Ok(n),
            Err(e) if is_unique_violation(&e) => Err(conflict()),
            Err(e) => Err(db_error(e)),
        }
    }

    /// [`Conn::value`], answering a unique-constraint violation with `conflict()` (see
    /// [`Conn::exec_unique`]).
    pub async fn value_unique<T: Col>(
        &mut self,
        sql: Sql,
        conflict: impl FnOnce() -> Error,
    ) -> Result<Option<T>> {
        let row = match self {
            Conn::Sqlite(c) => sql
                .into_query()?
                .fetch_optional(&mut **c)
                .await
                .map(|r| r.map(Row::Sqlite)),
            Conn::Pg(c) => sql
                .into_pg_query()?
                .fetch_optional(&mut **c)
                .await
                .map(|r| r.map(Row::Pg)),
        };
        match row {
            Ok(r) => r.map(|r| r.get(0)).transpose(),
            Err(e) if is_unique_violation(&e) => Err(conflict()),
            Err(e) => Err(db_error(e)),
        }
    }

    async fn exec_raw(&mut self, sql: Sql) -> Result<std::result::Result<u64, sqlx::Error>> {
        Ok(match self {
            Conn::Sqlite(c) => sql
                .into_query()?
                .execute(&mut **c)
                .await
                .map(|r| r.rows_affected()),
            Conn::Pg(c) => sql
                .into_pg_query()?
                .execute(&mut **c)
                .await
                .map(|r| r.rows_affected()),
        })
    }
}

/// A pooled read connection of either backend; [`Reader::conn`] lends it as a [`Conn`].
pub(crate) enum Reader {
    Sqlite(PoolConnection<Sqlite>),
    Pg(PoolConnection<Postgres>),
}

impl Reader {
    pub fn conn(&mut self) -> Conn<'_> {
        match self {
            Reader::Sqlite(c) => Conn::Sqlite(&mut *c),
            Reader::Pg(c) => Conn::Pg(&mut *c),
        }
    }
}

/// Where a store's statements run.
#[derive(Clone)]
pub(crate) enum Db {
    /// Read-only pooled connections, and the one writer task.
    Sqlite { read: SqlitePool, writer: Writer },
    /// One pool for reads and write transactions.
    Pg(PgPool),
}

impl Db {
    /// A connection to read on.
    pub async fn reader(&self) -> Result<Reader> {
        Ok(match self {
            Db::Sqlite { read, .. } => Reader::Sqlite(read.acquire().await.db()?),
            Db::Pg(pool) => Reader::Pg(pool.acquire().await.db()?),
        })
    }

    /// Runs `f` as one write unit: all of its changes are kept once the unit is durable, or none
    /// if it fails.
    pub async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(Conn<'c>) -> BoxFuture<'c, Result<T>> + Send + 'static,
    {
        match self {
            Db::Sqlite { writer, .. } => writer.write(move |c| f(Conn::Sqlite(c))).await,
            Db::Pg(pool) => {
                let mut tx = pool.begin().await.db()?;
                // A failure drops the transaction, which rolls it back.
                let out = f(Conn::Pg(&mut tx)).await?;
                tx.commit().await.db()?;
                Ok(out)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_outside_quotes() {
        assert_eq!(
            number_placeholders("SELECT '?' FROM t WHERE a = ? AND b IN (?, ?)"),
            "SELECT '?' FROM t WHERE a = $1 AND b IN ($2, $3)"
        );
        let s = Sql::stmt(Dialect::Sqlite, "UPDATE t SET a = ? WHERE b = ?");
        assert_eq!(s.text, "UPDATE t SET a = ? WHERE b = ?");
    }

    #[test]
    fn built_sql_numbers_its_binds() {
        let mut s = Sql::new(Dialect::Postgres);
        s.push("x IN ")
            .bind_list([Bind::I64(1), Bind::I64(2)])
            .push(" AND y = ")
            .bind("a");
        assert_eq!(s.text, "x IN ($1, $2) AND y = $3");
        assert_eq!(s.binds.len(), 3);
    }
}
