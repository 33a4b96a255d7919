//! Adaptive batching: one worker thread per served model version takes requests from a bounded
//! queue, merges those that are waiting into one model call, and answers each with its rows.
//!
//! The worker never waits for a batch to fill when nothing else is coming: after taking what
//! is queued, it waits (at most `max_delay` from the first request's arrival) only while other
//! requests for the model are already being parsed and checked, so a lone client pays no delay
//! and concurrent clients share calls. A full queue refuses new requests at once (the server
//! answers 429 with Retry-After) instead of growing memory.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::error::ServeError;
use crate::payload::Output;
use crate::predictor::{Feed, Predictor};

/// Batching limits.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchConfig {
    /// Rows in one model call at most (a larger request runs alone).
    pub max_batch: usize,
    /// How long the first request of a batch may wait for others already in flight.
    pub max_delay: Duration,
    /// Requests waiting for the model at most; more are refused.
    pub queue: usize,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            max_batch: 64,
            max_delay: Duration::from_millis(2),
            queue: 1024,
        }
    }
}

/// One answered request of a batch, handed to the observer after its reply was sent.
pub struct Done {
    /// The request's feed.
    pub feed: Feed,
    /// Its answer.
    pub output: Output,
    /// Its extra data (request id, arrival time, ...).
    pub tag: JobTag,
}

/// Per-request data carried through the queue.
#[derive(Clone, Debug)]
pub struct JobTag {
    /// The request id.
    pub request_id: Arc<str>,
    /// When the request arrived.
    pub received: Instant,
    /// Names of the feed's columns, for the prediction log.
    pub columns: Option<Arc<[String]>>,
    /// `primary`, `canary` or `shadow`.
    pub role: &'static str,
}

struct Job {
    feed: Feed,
    tag: JobTag,
    /// `None` for shadow requests, whose answers only go to the log.
    reply: Option<oneshot::Sender<Result<Output, ServeError>>>,
}

/// Called by the worker after each batch (metrics, prediction log); must not block.
pub type Observer = Arc<dyn Fn(BatchReport) + Send + Sync>;

/// One model call's facts.
pub struct BatchReport {
    /// Requests answered by the call, moved out of the batch once answered.
    pub done: Vec<Done>,
    /// Rows in the call.
    pub rows: usize,
    /// How long the model took.
    pub elapsed: Duration,
    /// Requests that failed in the model, with the error.
    pub failed: usize,
}

/// The queue in front of one model version's worker.
pub struct Batcher {
    tx: SyncSender<Job>,
    /// Requests admitted and not yet answered (being prepared, queued or running).
    in_flight: Arc<AtomicUsize>,
    /// Requests in the queue.
    queued: Arc<AtomicUsize>,
    /// Requests taken from the queue and not yet answered and reported.
    running: Arc<AtomicUsize>,
}

/// Counts a request in flight until dropped.
pub struct Admission {
    in_flight: Arc<AtomicUsize>,
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Batcher {
    /// Starts the worker thread for `predictor`; it ends when the batcher is dropped and its
    /// queue has drained.
    pub fn start(
        predictor: Arc<Predictor>,
        config: BatchConfig,
        observer: Observer,
        thread_name: String,
    ) -> std::io::Result<Self> {
        let (tx, rx) = sync_channel(config.queue.max(1));
        let in_flight = Arc::new(AtomicUsize::new(0));
        let queued = Arc::new(AtomicUsize::new(0));
        let running = Arc::new(AtomicUsize::new(0));
        let worker = Worker {
            rx,
            predictor,
            config,
            observer,
            in_flight: in_flight.clone(),
            queued: queued.clone(),
            running: running.clone(),
        };
        std::thread::Builder::new()
            .name(thread_name)
            .spawn(move || worker.run())?;
        Ok(Self {
            tx,
            in_flight,
            queued,
            running,
        })
    }

    /// Whether nothing is queued or being computed or reported.
    pub fn idle(&self) -> bool {
        self.queued.load(Ordering::Acquire) == 0 && self.running.load(Ordering::Acquire) == 0
    }

    /// Marks a request as in flight for this model (call before parsing it, so the worker
    /// knows to wait for it).
    pub fn admit(&self) -> Admission {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        Admission {
            in_flight: self.in_flight.clone(),
        }
    }

    /// Requests waiting in the queue.
    pub fn queue_depth(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }

    fn push(&self, job: Job) -> Result<(), ServeError> {
        self.queued.fetch_add(1, Ordering::AcqRel);
        match self.tx.try_send(job) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.queued.fetch_sub(1, Ordering::AcqRel);
                Err(match e {
                    TrySendError::Full(_) => ServeError::Overloaded,
                    TrySendError::Disconnected(_) => {
                        ServeError::Unavailable("the model is shutting down".into())
                    }
                })
            }
        }
    }

    /// Queues a prepared request and waits for its rows' answer.
    pub async fn predict(&self, feed: Feed, tag: JobTag) -> Result<Output, ServeError> {
        let (reply, answer) = oneshot::channel();
        self.push(Job {
            feed,
            tag,
            reply: Some(reply),
        })?;
        answer
            .await
            .map_err(|_| ServeError::Unavailable("the model stopped before answering".into()))?
    }

    /// Queues a request whose answer only goes to the observer (shadow traffic); refused
    /// silently when the queue is full.
    pub fn mirror(&self, feed: Feed, tag: JobTag) -> bool {
        self.push(Job {
            feed,
            tag,
            reply: None,
        })
        .is_ok()
    }
}

struct Worker {
    rx: Receiver<Job>,
    predictor: Arc<Predictor>,
    config: BatchConfig,
    observer: Observer,
    in_flight: Arc<AtomicUsize>,
    queued: Arc<AtomicUsize>,
    running: Arc<AtomicUsize>,
}

impl Worker {
    fn run(self) {
        while let Ok(first) = self.rx.recv() {
            self.running.fetch_add(1, Ordering::AcqRel);
            let mut jobs = vec![first];
            self.gather(&mut jobs);
            self.queued.fetch_sub(jobs.len(), Ordering::AcqRel);
            // Requests whose client has gone (timed out) are not worth computing.
            jobs.retain(|j| j.reply.as_ref().is_none_or(|r| !r.is_closed()));
            self.run_batch(jobs);
            self.running.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Adds queued requests to the batch, waiting only for requests already in flight.
    fn gather(&self, jobs: &mut Vec<Job>) {
        let deadline = jobs[0].tag.received + self.config.max_delay;
        let mut rows: usize = jobs[0].feed.rows();
        while rows < self.config.max_batch {
            match self.rx.try_recv() {
                Ok(job) => {
                    rows += job.feed.rows();
                    jobs.push(job);
                    continue;
                }
                Err(_) => {
                    let pending = self.in_flight.load(Ordering::Acquire);
                    // Requests admitted beyond those already in this batch (shadow requests
                    // are never admitted, so they do not make the batch wait).
                    let replies = jobs.iter().filter(|j| j.reply.is_some()).count();
                    let now = Instant::now();
                    if pending <= replies || now >= deadline {
                        break;
                    }
                    match self.rx.recv_timeout(deadline - now) {
                        Ok(job) => {
                            rows += job.feed.rows();
                            jobs.push(job);
                        }
                        Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
                    }
                }
            }
        }
    }

    fn run_batch(&self, jobs: Vec<Job>) {
        if jobs.is_empty() {
            return;
        }
        // Requests whose feeds stack go in one call; the rest one by one.
        let mut groups: Vec<Vec<Job>> = Vec::new();
        for job in jobs {
            match groups.iter_mut().find(|g| stacks(&g[0].feed, &job.feed)) {
                Some(g) => g.push(job),
                None => groups.push(vec![job]),
            }
        }
        for group in groups {
            self.call(group);
        }
    }

    fn call(&self, group: Vec<Job>) {
        let started = Instant::now();
        let rows: usize = group.iter().map(|j| j.feed.rows()).sum();
        let result = match group.as_slice() {
            [one] => self.predictor.predict(&one.feed),
            _ => {
                let feeds: Vec<&Feed> = group.iter().map(|j| &j.feed).collect();
                Feed::stack(&feeds).and_then(|f| self.predictor.predict(&f))
            }
        };
        let elapsed = started.elapsed();
        match result {
            Ok(output) => {
                let outputs: Vec<Output> = if group.len() == 1 {
                    vec![output]
                } else {
                    let mut start = 0;
                    group
                        .iter()
                        .map(|job| {
                            let n = job.feed.rows();
                            start += n;
                            output.slice(start - n, start)
                        })
                        .collect()
                };
                // Answer first, then report: the observer's work is off the request path.
                let mut done = Vec::with_capacity(group.len());
                for (job, output) in group.into_iter().zip(outputs) {
                    if let Some(s) = job.reply {
                        let _ = s.send(Ok(output.clone()));
                    }
                    done.push(Done {
                        feed: job.feed,
                        output,
                        tag: job.tag,
                    });
                }
                (self.observer)(BatchReport {
                    done,
                    rows,
                    elapsed,
                    failed: 0,
                });
            }
            Err(e) => {
                let message = e.to_string();
                let failed = group.len();
                for job in group {
                    if let Some(s) = job.reply {
                        let _ = s.send(Err(ServeError::Predict(message.clone())));
                    }
                }
                (self.observer)(BatchReport {
                    done: Vec::new(),
                    rows,
                    elapsed,
                    failed,
                });
            }
        }
    }
}

fn stacks(a: &Feed, b: &Feed) -> bool {
    match (a, b) {
        (Feed::Columns(x), Feed::Columns(y)) => {
            x.names == y.names
                && x.values
                    .iter()
                    .zip(&y.values)
                    .all(|(p, q)| std::mem::discriminant(p) == std::mem::discriminant(q))
        }
        (Feed::Tensors(x), Feed::Tensors(y)) => {
            x.len() == y.len()
                && x.iter().zip(y).all(|(p, q)| {
                    p.elem_type() == q.elem_type()
                        && p.shape.len() == q.shape.len()
                        && p.shape.get(1..) == q.shape.get(1..)
                })
        }
        _ => false,
    }
}
