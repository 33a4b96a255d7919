//! A pool of Python worker processes serving one model version.
//!
//! Each worker is a process running `worker.py` that loads the model with `mlflow.pyfunc` and
//! connects back to its own Unix socket. An idle worker waits in a channel; a batch takes one,
//! sends its rows, reads the answer and gives the worker back. A task per worker waits for its
//! process: when the process ends (it crashed, or keel killed it after a timeout or a broken
//! exchange) and the pool is still in use, the task starts a new one, which joins the idle
//! workers once it has loaded the model. Dropping a worker kills its process, so a worker
//! whose state is unknown is never reused.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{Mutex, mpsc, oneshot};

use super::wire;
use crate::error::ServeError;
use crate::payload::Output;

/// The largest answer a worker may send (a frame announcing more ends the worker).
const MAX_ANSWER: usize = 1 << 30;

/// How to start a worker for one model.
#[derive(Clone, Debug)]
pub struct Launch {
    /// The Python interpreter.
    pub python: PathBuf,
    /// The worker program.
    pub script: PathBuf,
    /// The model folder.
    pub model: PathBuf,
    /// Where the workers' sockets are made.
    pub sockets: PathBuf,
    /// How long a worker may take to load the model.
    pub load_timeout: Duration,
}

/// What a worker said once it had loaded the model.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct ReadyInfo {
    /// The worker's Python version.
    pub python: String,
    /// The worker's MLflow version.
    pub mlflow: String,
    /// The model's pyfunc loader module.
    pub loader: Option<String>,
}

#[derive(Deserialize)]
struct Failure {
    #[serde(default)]
    kind: String,
    message: String,
}

/// One worker process and its socket.
pub struct Worker {
    id: usize,
    stream: UnixStream,
    /// Cleared by the task that waits for the process when it ends.
    alive: Arc<AtomicBool>,
    /// Dropping it kills the process.
    _kill: oneshot::Sender<()>,
}

struct Inner {
    launch: Launch,
    idle_tx: mpsc::UnboundedSender<Worker>,
    idle_rx: Mutex<mpsc::UnboundedReceiver<Worker>>,
    timeout: Duration,
    next_id: AtomicUsize,
    restarts: AtomicU64,
}

/// The worker processes of one model version.
pub struct Pool {
    inner: Arc<Inner>,
    info: ReadyInfo,
    size: usize,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("model", &self.inner.launch.model)
            .field("workers", &self.size)
            .finish()
    }
}

impl Pool {
    /// Starts `size` workers and waits until every one has loaded the model; `timeout`
    /// bounds each prediction.
    pub async fn start(launch: Launch, size: usize, timeout: Duration) -> Result<Self, ServeError> {
        let (idle_tx, idle_rx) = mpsc::unbounded_channel();
        let inner = Arc::new(Inner {
            launch,
            idle_tx,
            idle_rx: Mutex::new(idle_rx),
            timeout,
            next_id: AtomicUsize::new(0),
            restarts: AtomicU64::new(0),
        });
        let mut started = Vec::with_capacity(size.max(1));
        for _ in 0..size.max(1) {
            let (first, answered) = oneshot::channel();
            tokio::spawn(keep_worker(Arc::downgrade(&inner), first));
            started.push(answered);
        }
        let mut info = ReadyInfo::default();
        for answered in started {
            info = answered.await.map_err(|_| {
                ServeError::Model("a worker's task ended before it started".into())
            })??;
        }
        Ok(Self {
            inner,
            info,
            size: size.max(1),
        })
    }

    /// What the workers reported when they loaded the model.
    pub fn info(&self) -> &ReadyInfo {
        &self.info
    }

    /// The number of workers.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Workers started again after their process ended.
    pub fn restarts(&self) -> u64 {
        self.inner.restarts.load(Ordering::Relaxed)
    }

    /// Waits for an idle, living worker.
    pub async fn checkout(&self) -> Result<Worker, ServeError> {
        let mut idle = self.inner.idle_rx.lock().await;
        loop {
            let worker = idle.recv().await.ok_or_else(|| {
                ServeError::Unavailable("the model's workers have stopped".into())
            })?;
            if worker.alive.load(Ordering::Acquire) {
                return Ok(worker);
            }
        }
    }

    /// Returns an unused worker to the idle ones.
    pub fn give_back(&self, worker: Worker) {
        let _ = self.inner.idle_tx.send(worker);
    }

    /// Runs one batch (its Arrow payload and row count) on `worker`, giving the worker back
    /// unless the exchange failed. A worker that died is replaced and the batch tried once
    /// more on another; a worker that runs past the timeout is killed and the batch answered
    /// 504.
    pub async fn predict(
        &self,
        worker: Worker,
        payload: &[u8],
        rows: usize,
    ) -> Result<Output, ServeError> {
        match self.exchange(worker, payload, rows).await {
            Err(Exchange::Died(first)) => {
                tracing::warn!(model = %self.inner.launch.model.display(), error = %first, "a worker died while predicting; trying the batch once more");
                let worker = self.checkout().await?;
                match self.exchange(worker, payload, rows).await {
                    Err(Exchange::Died(second)) => Err(ServeError::Unavailable(format!(
                        "the model's worker process ended while predicting, twice ({first}; then {second})"
                    ))),
                    Err(Exchange::Failed(e)) => Err(e),
                    Ok(out) => Ok(out),
                }
            }
            Err(Exchange::Failed(e)) => Err(e),
            Ok(out) => Ok(out),
        }
    }

    async fn exchange(
        &self,
        mut worker: Worker,
        payload: &[u8],
        rows: usize,
    ) -> Result<Output, Exchange> {
        let timeout = self.inner.timeout;
        let answer = tokio::time::timeout(timeout, round_trip(&mut worker.stream, payload)).await;
        let (kind, body) = match answer {
            Err(_) => {
                tracing::warn!(model = %self.inner.launch.model.display(), worker = worker.id, "a worker ran past the timeout; killing it");
                drop(worker);
                return Err(Exchange::Failed(ServeError::Timeout(timeout)));
            }
            Ok(Err(e)) => {
                drop(worker);
                return Err(Exchange::Died(e));
            }
            Ok(Ok(frame)) => frame,
        };
        let _ = self.inner.idle_tx.send(worker);
        match kind {
            wire::ANSWER => wire::decode_answer(&body, rows).map_err(Exchange::Failed),
            wire::ERROR => {
                let f: Failure = serde_json::from_slice(&body).map_err(|e| {
                    Exchange::Failed(ServeError::Predict(format!("the worker's error: {e}")))
                })?;
                Err(Exchange::Failed(if f.kind == "input" {
                    ServeError::BadRequest(f.message)
                } else {
                    ServeError::Predict(f.message)
                }))
            }
            other => Err(Exchange::Failed(ServeError::Predict(format!(
                "the worker answered a frame of kind {other}"
            )))),
        }
    }
}

/// How an exchange with a worker ended, when it did not answer.
enum Exchange {
    /// The worker's process or socket is gone: the batch may be tried on another.
    Died(String),
    /// An answer that is the batch's own (bad input, the model raised, a timeout).
    Failed(ServeError),
}

/// Sends a prediction frame and reads the answer frame.
async fn round_trip(stream: &mut UnixStream, payload: &[u8]) -> Result<(u8, Vec<u8>), String> {
    let header = wire::header(wire::PREDICT, payload.len()).map_err(|e| e.to_string())?;
    stream.write_all(&header).await.map_err(|e| e.to_string())?;
    stream.write_all(payload).await.map_err(|e| e.to_string())?;
    read_frame(stream).await
}

async fn read_frame(stream: &mut UnixStream) -> Result<(u8, Vec<u8>), String> {
    let mut head = [0u8; 5];
    stream
        .read_exact(&mut head)
        .await
        .map_err(|e| format!("the worker closed its socket ({e})"))?;
    let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
    if len == 0 || len - 1 > MAX_ANSWER {
        return Err(format!("the worker sent a frame of {len} bytes"));
    }
    let mut body = vec![0u8; len - 1];
    stream
        .read_exact(&mut body)
        .await
        .map_err(|e| format!("the worker closed its socket ({e})"))?;
    Ok((head[4], body))
}

/// A started worker, its process and what ends it.
struct Started {
    worker: Worker,
    info: ReadyInfo,
    child: tokio::process::Child,
    killed: oneshot::Receiver<()>,
}

/// Starts one worker and waits for it to load the model.
async fn spawn_worker(inner: &Inner) -> Result<Started, ServeError> {
    let launch = &inner.launch;
    let id = inner.next_id.fetch_add(1, Ordering::Relaxed);
    let socket = launch.sockets.join(format!("w{id}.sock"));
    let _ = std::fs::remove_file(&socket);
    let listener = UnixListener::bind(&socket)
        .map_err(|e| ServeError::Model(format!("{}: {e}", socket.display())))?;
    let mut child = tokio::process::Command::new(&launch.python)
        .arg(&launch.script)
        .arg(&launch.model)
        .arg(&socket)
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            ServeError::Model(format!(
                "cannot start the Python worker {}: {e}",
                launch.python.display()
            ))
        })?;
    let model = launch.model.display().to_string();
    let connected = tokio::select! {
        accepted = tokio::time::timeout(launch.load_timeout, listener.accept()) => accepted,
        status = child.wait() => {
            let _ = std::fs::remove_file(&socket);
            return Err(ServeError::Model(format!(
                "the Python worker for {model} ({}) exited before it connected ({})",
                launch.python.display(),
                status.map_or_else(|e| e.to_string(), |s| s.to_string())
            )));
        }
    };
    let _ = std::fs::remove_file(&socket);
    let mut stream = match connected {
        Ok(Ok((stream, _))) => stream,
        Ok(Err(e)) => return Err(ServeError::Model(format!("a worker's socket: {e}"))),
        Err(_) => {
            return Err(ServeError::Model(format!(
                "the Python worker for {model} did not start within {:?}",
                launch.load_timeout
            )));
        }
    };
    let frame = tokio::select! {
        frame = tokio::time::timeout(launch.load_timeout, read_frame(&mut stream)) => frame,
        status = child.wait() => {
            return Err(ServeError::Model(format!(
                "the Python worker for {model} exited while loading the model ({})",
                status.map_or_else(|e| e.to_string(), |s| s.to_string())
            )));
        }
    };
    let info = match frame {
        Err(_) => {
            return Err(ServeError::Model(format!(
                "the Python worker did not load {model} within {:?}",
                launch.load_timeout
            )));
        }
        Ok(Err(e)) => return Err(ServeError::Model(format!("loading {model}: {e}"))),
        Ok(Ok((wire::READY, body))) => serde_json::from_slice::<ReadyInfo>(&body)
            .map_err(|e| ServeError::Model(format!("the worker's ready message: {e}")))?,
        Ok(Ok((wire::FATAL, body))) => {
            let f: Failure = serde_json::from_slice(&body).unwrap_or(Failure {
                kind: String::new(),
                message: String::from_utf8_lossy(&body).into_owned(),
            });
            // The first line names the error; the rest (and the traceback) go to the log.
            tracing::debug!(model = %model, message = %f.message, "the worker could not load the model");
            let first = f
                .message
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("");
            return Err(ServeError::Model(format!(
                "{} cannot load {model}: {first}",
                launch.python.display(),
            )));
        }
        Ok(Ok((kind, _))) => {
            return Err(ServeError::Model(format!(
                "the worker for {model} sent a frame of kind {kind} before it was ready"
            )));
        }
    };
    let (kill, killed) = oneshot::channel::<()>();
    Ok(Started {
        worker: Worker {
            id,
            stream,
            alive: Arc::new(AtomicBool::new(true)),
            _kill: kill,
        },
        info,
        child,
        killed,
    })
}

/// One worker slot of a pool, while the pool lives: starts a worker (the first start's outcome
/// goes to `first`), hands it to the idle ones, waits for its process to end (or kills it when
/// its `Worker` is dropped), and starts the next.
async fn keep_worker(pool: Weak<Inner>, first: oneshot::Sender<Result<ReadyInfo, ServeError>>) {
    let mut first = Some(first);
    let mut delay = Duration::from_millis(100);
    loop {
        let Some(inner) = pool.upgrade() else {
            return;
        };
        let model = inner.launch.model.display().to_string();
        let started = match spawn_worker(&inner).await {
            Ok(started) => started,
            Err(e) => {
                if let Some(first) = first.take() {
                    let _ = first.send(Err(e));
                    return;
                }
                tracing::error!(%model, error = %e, "could not start a worker; trying again");
                drop(inner);
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(30));
                continue;
            }
        };
        delay = Duration::from_millis(100);
        let Started {
            worker,
            info,
            mut child,
            killed,
        } = started;
        let (id, alive) = (worker.id, worker.alive.clone());
        match first.take() {
            Some(first) => {
                let _ = first.send(Ok(info));
            }
            None => {
                inner.restarts.fetch_add(1, Ordering::Relaxed);
            }
        }
        let _ = inner.idle_tx.send(worker);
        drop(inner);
        let status = tokio::select! {
            status = child.wait() => status.ok(),
            _ = killed => {
                let _ = child.kill().await;
                None
            }
        };
        alive.store(false, Ordering::Release);
        if pool.strong_count() > 0 {
            match status {
                Some(status) => {
                    tracing::warn!(%model, worker = id, %status, "a worker process ended; starting another")
                }
                None => {
                    tracing::info!(%model, worker = id, "a worker was stopped; starting another")
                }
            }
        }
    }
}

/// A folder for the workers' sockets and program, removed with it.
#[derive(Debug)]
pub struct Scratch(PathBuf);

impl Scratch {
    /// A new folder under the system's temporary folder (short, as socket paths must be).
    pub fn new() -> Result<Self, ServeError> {
        let dir = std::env::temp_dir().join(format!(
            "keel-py-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        ));
        std::fs::create_dir_all(&dir)
            .map_err(|e| ServeError::Model(format!("{}: {e}", dir.display())))?;
        Ok(Self(dir))
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
