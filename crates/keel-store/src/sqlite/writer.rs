//! The single writer: batches concurrent writes into one transaction per drain of the queue.

use futures::future::BoxFuture;
use keel_core::{Error, Result};
use sqlx::{Connection, SqliteConnection};
use tokio::sync::{mpsc, oneshot};

use super::DbResult;

/// How many queued writes one transaction takes at most.
const MAX_BATCH: usize = 256;

/// What a job leaves behind: whether it succeeded, and how to answer its caller once the
/// transaction's fate is known (`None` = committed).
struct Done {
    ok: bool,
    reply: Box<dyn FnOnce(Option<Error>) + Send>,
}

type Job = Box<dyn for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, Done> + Send>;

fn job<F>(f: F) -> Job
where
    F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, Done> + Send + 'static,
{
    Box::new(f)
}

/// Handle to the writer task.
#[derive(Clone)]
pub(crate) struct Writer {
    tx: mpsc::Sender<Job>,
}

impl Writer {
    pub(crate) fn spawn(conn: SqliteConnection) -> Self {
        let (tx, rx) = mpsc::channel(4096);
        tokio::spawn(run(conn, rx));
        Writer { tx }
    }

    /// Runs `f` on the writer connection inside a savepoint of the current batch and returns its
    /// result once the batch has committed. If `f` fails, only its own changes are rolled back.
    pub(crate) async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, Result<T>> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel::<Result<T>>();
        let j = job(move |conn| {
            Box::pin(async move {
                let res = f(conn).await;
                Done {
                    ok: res.is_ok(),
                    reply: Box::new(move |commit_err| {
                        let _ = tx.send(match commit_err {
                            Some(e) => Err(e),
                            None => res,
                        });
                    }),
                }
            })
        });
        self.tx
            .send(j)
            .await
            .map_err(|_| Error::internal("the database writer has stopped"))?;
        rx.await
            .map_err(|_| Error::internal("the database writer dropped a write"))?
    }
}

async fn exec(conn: &mut SqliteConnection, sql: &'static str) -> Result<()> {
    sqlx::query(sql).execute(conn).await.db().map(|_| ())
}

async fn run(mut conn: SqliteConnection, mut rx: mpsc::Receiver<Job>) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        let mut dones = Vec::with_capacity(batch.len());
        if let Err(e) = exec(&mut conn, "BEGIN IMMEDIATE").await {
            // Dropping the jobs answers their callers with an error.
            tracing::error!("cannot begin a write transaction: {e}");
            batch.clear();
            continue;
        }
        if batch.len() == 1 {
            // Alone in its transaction: the transaction is the savepoint.
            for j in batch.drain(..) {
                dones.push(j(&mut conn).await);
            }
        } else {
            for j in batch.drain(..) {
                if let Err(e) = exec(&mut conn, "SAVEPOINT keel_write").await {
                    tracing::error!("cannot open a savepoint: {e}");
                    break;
                }
                let done = j(&mut conn).await;
                let closed = if done.ok {
                    exec(&mut conn, "RELEASE keel_write").await
                } else {
                    match exec(&mut conn, "ROLLBACK TO keel_write").await {
                        Ok(()) => exec(&mut conn, "RELEASE keel_write").await,
                        Err(e) => Err(e),
                    }
                };
                dones.push(done);
                if let Err(e) = closed {
                    tracing::error!("cannot close a savepoint: {e}");
                    break;
                }
            }
        }
        let commit = if dones.len() == 1 && !dones[0].ok {
            // The only job failed: nothing to keep.
            exec(&mut conn, "ROLLBACK").await
        } else {
            let c = exec(&mut conn, "COMMIT").await;
            if c.is_err() {
                let _ = exec(&mut conn, "ROLLBACK").await;
            }
            c
        };
        // A failed rollback of a failed job changes nothing for its caller.
        let err = commit.err().filter(|_| dones.iter().any(|d| d.ok));
        for d in dones {
            (d.reply)(err.clone());
        }
    }
    let _ = conn.close().await;
}
