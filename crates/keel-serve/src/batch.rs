//! Adaptive batching: requests for one model version wait in a bounded queue; whoever holds the
//! model takes what is waiting, merges it into one model call and answers each request with its
//! rows.
//!
//! No thread is dedicated to a model, so a request costs no thread hand-offs. A request first
//! lets the other requests its thread is about to take up have their turn; if it then finds the
//! model idle, with nothing queued and no other request in flight, it runs its call itself.
//! Otherwise it queues, and the first to find nobody holding the model starts a task that
//! drains the queue batch by batch on the server's own threads (a call larger than a batch runs
//! on the blocking pool, so it never stalls them). The draining task never waits for a
//! batch to fill when nothing else is coming: after taking what is queued it waits (at most
//! `max_delay` from the first request's arrival, yielding to the other requests' work) only
//! while requests for the model are still being parsed and checked, so a lone client pays no
//! delay and concurrent clients share calls. A full queue refuses new requests at once (the
//! server answers 429 with Retry-After) instead of growing memory.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::error::ServeError;
use crate::payload::Output;
use crate::predictor::{Feed, Predictor};
use crate::python::PythonModel;
use crate::python::pool::Worker;

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
    pub output: Arc<Output>,
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
    reply: Option<oneshot::Sender<Result<Arc<Output>, ServeError>>>,
    /// The request's admission, ended once it is answered (shadow requests have none).
    admission: Option<Admission>,
}

/// Called after each model call (metrics, prediction log); must not block.
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

/// The queue in front of one model version.
pub struct Batcher {
    shared: Arc<Shared>,
}

/// What a batcher's callers and its draining task share.
struct Shared {
    predictor: Arc<Predictor>,
    config: BatchConfig,
    observer: Observer,
    /// Requests admitted and not yet answered (being prepared, queued or in a batch).
    in_flight: Arc<AtomicUsize>,
    queue: Mutex<VecDeque<Job>>,
    /// Requests in the queue (read without the lock).
    queued: AtomicUsize,
    /// Whether someone holds the model: a request's own call or the draining task.
    busy: AtomicBool,
    /// Signalled when a job is queued (a Python model's batch waits on it for more).
    arrived: tokio::sync::Notify,
    /// Requests in a Python model's last call: how many the next one waits for.
    last_call: AtomicUsize,
    /// A Python model's calls running on its workers (each in a task of its own, so the
    /// draining task may be done while they are not).
    calls: AtomicUsize,
}

/// Counts a Python model's call as running until dropped.
struct Call(Arc<Shared>);

impl Drop for Call {
    fn drop(&mut self) {
        self.0.calls.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Counts a request in flight until dropped: when it is answered, or as it makes its own call.
pub struct Admission {
    in_flight: Arc<AtomicUsize>,
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Batcher {
    /// A batcher in front of `predictor`; `observer` sees every finished call.
    pub fn new(predictor: Arc<Predictor>, config: BatchConfig, observer: Observer) -> Self {
        Self {
            shared: Arc::new(Shared {
                predictor,
                config,
                observer,
                in_flight: Arc::new(AtomicUsize::new(0)),
                queue: Mutex::new(VecDeque::new()),
                queued: AtomicUsize::new(0),
                busy: AtomicBool::new(false),
                arrived: tokio::sync::Notify::new(),
                last_call: AtomicUsize::new(0),
                calls: AtomicUsize::new(0),
            }),
        }
    }

    /// Whether nothing is queued or being computed or reported.
    pub fn idle(&self) -> bool {
        self.shared.queued.load(Ordering::SeqCst) == 0
            && !self.shared.busy.load(Ordering::SeqCst)
            && self.shared.calls.load(Ordering::Acquire) == 0
    }

    /// Marks a request as in flight for this model (call before parsing it, so a batch being
    /// gathered knows to wait for it).
    pub fn admit(&self) -> Admission {
        self.shared.in_flight.fetch_add(1, Ordering::AcqRel);
        Admission {
            in_flight: self.shared.in_flight.clone(),
        }
    }

    /// Requests waiting in the queue.
    pub fn queue_depth(&self) -> usize {
        self.shared.queued.load(Ordering::Acquire)
    }

    /// Answers a prepared request: by its own call when the model is idle and no other
    /// request is in flight, else through the queue, waiting for its rows of a batch.
    /// `admission` is the request's own, held until it is running or answered (so a batch
    /// being gathered waits only for requests still being prepared).
    pub async fn predict(
        &self,
        feed: Feed,
        tag: JobTag,
        admission: Admission,
    ) -> Result<Arc<Output>, ServeError> {
        // Requests this thread is about to take up get their turn first, so requests that
        // arrive together find each other and share a call.
        tokio::task::yield_now().await;
        // A Python model is never called on the request's thread: its calls wait on a worker.
        let admission = if self.shared.predictor.python().is_some() {
            admission
        } else {
            match self.claim_idle(&feed, admission) {
                Ok(held) => return held.run(feed, tag),
                Err(admission) => admission,
            }
        };
        let (reply, answer) = oneshot::channel();
        self.shared.push(Job {
            feed,
            tag,
            reply: Some(reply),
            admission: Some(admission),
        })?;
        answer
            .await
            .map_err(|_| ServeError::Unavailable("the model stopped before answering".into()))?
    }

    /// Takes the model for the request's own call when it is idle and this request is the
    /// only one in flight (its admission ends: no batch waits for it); otherwise hands the
    /// admission back, to be held until the answer.
    fn claim_idle(&self, feed: &Feed, admission: Admission) -> Result<Held, Admission> {
        let shared = &self.shared;
        if feed.rows() > shared.config.max_batch
            || shared.in_flight.load(Ordering::Acquire) != 1
            || shared.queued.load(Ordering::SeqCst) != 0
        {
            return Err(admission);
        }
        drop(admission);
        match shared
            .busy
            .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
        {
            Ok(_) => Ok(Held(shared.clone())),
            Err(_) => Err(self.admit()),
        }
    }

    /// Queues a request whose answer only goes to the observer (shadow traffic); refused
    /// silently when the queue is full.
    pub fn mirror(&self, feed: Feed, tag: JobTag) -> bool {
        self.shared
            .push(Job {
                feed,
                tag,
                reply: None,
                admission: None,
            })
            .is_ok()
    }
}

impl Shared {
    /// Queues a job and makes sure someone drains the queue.
    fn push(self: &Arc<Self>, job: Job) -> Result<(), ServeError> {
        {
            let mut queue = self
                .queue
                .lock()
                .map_err(|_| ServeError::Unavailable("the model's queue failed".into()))?;
            if queue.len() >= self.config.queue.max(1) {
                return Err(ServeError::Overloaded);
            }
            queue.push_back(job);
            self.queued.store(queue.len(), Ordering::SeqCst);
        }
        self.arrived.notify_one();
        self.hand_off();
        Ok(())
    }

    /// Starts a draining task when jobs are queued and nobody holds the model.
    fn hand_off(self: &Arc<Self>) {
        if self.queued.load(Ordering::SeqCst) == 0
            || self
                .busy
                .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
                .is_err()
        {
            return;
        }
        // The task takes hold of the model when it starts; a runtime being torn down drops it
        // unstarted, and the model stays held, as nothing could drain it anyway.
        let shared = self.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move { Held(shared).drain().await });
            }
            Err(_) => self.busy.store(false, Ordering::SeqCst),
        }
    }

    /// Takes queued jobs while the batch has room.
    fn take(&self, jobs: &mut Vec<Job>, rows: &mut usize) {
        let Ok(mut queue) = self.queue.lock() else {
            return;
        };
        while *rows < self.config.max_batch
            && let Some(job) = queue.pop_front()
        {
            *rows += job.feed.rows();
            jobs.push(job);
        }
        self.queued.store(queue.len(), Ordering::SeqCst);
    }

    /// The next batch: what is queued, plus (for at most `max_delay`) requests still being
    /// prepared.
    async fn gather(&self) -> Vec<Job> {
        let mut jobs = Vec::new();
        let mut rows = 0;
        self.take(&mut jobs, &mut rows);
        let Some(first) = jobs.first() else {
            return jobs;
        };
        let deadline = first.tag.received + self.config.max_delay;
        while rows < self.config.max_batch {
            // Requests admitted beyond those already in this batch (shadow requests are never
            // admitted, so they do not make the batch wait).
            let admitted = jobs.iter().filter(|j| j.admission.is_some()).count();
            if self.in_flight.load(Ordering::Acquire) <= admitted || Instant::now() >= deadline {
                break;
            }
            tokio::task::yield_now().await;
            self.take(&mut jobs, &mut rows);
        }
        // Requests whose client has gone (timed out) are not worth computing.
        jobs.retain(|j| j.reply.as_ref().is_none_or(|r| !r.is_closed()));
        jobs
    }

    /// A Python model's call costs milliseconds whatever its rows, so its batch waits, up to
    /// `max_delay` from its first request's arrival, for as many requests as the last call
    /// carried: clients answered together come back together, and a call taken before they
    /// all arrived would leave the rest waiting a whole call. A lone client (a last call of
    /// one) waits for nothing.
    async fn gather_more(&self, jobs: &mut Vec<Job>) {
        let expected = self.last_call.load(Ordering::Relaxed);
        let Some(first) = jobs.first() else {
            return;
        };
        let deadline = tokio::time::Instant::from_std(first.tag.received + self.config.max_delay);
        let mut rows: usize = jobs.iter().map(|j| j.feed.rows()).sum();
        while jobs.len() < expected && rows < self.config.max_batch {
            let arrived = self.arrived.notified();
            self.take(jobs, &mut rows);
            if jobs.len() >= expected || rows >= self.config.max_batch {
                break;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                self.take(jobs, &mut rows);
                break;
            }
        }
    }

    /// Runs a batch: requests whose feeds stack in one call, the rest one by one.
    async fn run_batch(self: &Arc<Self>, jobs: Vec<Job>) {
        for group in stackable_groups(jobs) {
            let rows: usize = group.iter().map(|j| j.feed.rows()).sum();
            if rows <= self.config.max_batch {
                self.call(group);
            } else {
                // A large call runs on the blocking pool, not on a server thread.
                let shared = self.clone();
                let _ = tokio::task::spawn_blocking(move || shared.call(group)).await;
            }
        }
    }

    /// One model call for a group of stackable jobs: answers each, then reports.
    fn call(&self, group: Vec<Job>) {
        let started = Instant::now();
        let result = match group.as_slice() {
            [one] => self.predictor.predict(&one.feed),
            _ => {
                let feeds: Vec<&Feed> = group.iter().map(|j| &j.feed).collect();
                Feed::stack(&feeds).and_then(|f| self.predictor.predict_owned(f))
            }
        };
        self.finish(group, result, started.elapsed());
    }

    /// Runs a batch on a Python model's workers, `worker` for its first call. When a call of
    /// several requests fails, each request is tried alone, so one request's bad rows fail
    /// only that request.
    async fn call_python(self: &Arc<Self>, model: &PythonModel, worker: Worker, jobs: Vec<Job>) {
        let mut worker = Some(worker);
        for group in stackable_groups(jobs) {
            let started = Instant::now();
            let result = match checkout(model, &mut worker).await {
                Err(e) => Err(e),
                Ok(w) => match group.as_slice() {
                    [one] => model.predict(w, &one.feed).await,
                    _ => {
                        let feeds: Vec<&Feed> = group.iter().map(|j| &j.feed).collect();
                        match Feed::stack(&feeds) {
                            Ok(feed) => model.predict(w, &feed).await,
                            Err(e) => {
                                model.pool().give_back(w);
                                Err(e)
                            }
                        }
                    }
                },
            };
            match result {
                Err(ServeError::BadRequest(_) | ServeError::Predict(_)) if group.len() > 1 => {
                    for job in group {
                        let started = Instant::now();
                        let result = match checkout(model, &mut None).await {
                            Ok(w) => model.predict(w, &job.feed).await,
                            Err(e) => Err(e),
                        };
                        self.finish(vec![job], result, started.elapsed());
                    }
                }
                result => self.finish(group, result, started.elapsed()),
            }
        }
        if let Some(w) = worker {
            model.pool().give_back(w);
        }
    }

    /// Answers every queued request with `e` (the model can no longer answer).
    fn fail_queued(&self, e: &ServeError) {
        let jobs: Vec<Job> = match self.queue.lock() {
            Ok(mut queue) => queue.drain(..).collect(),
            Err(_) => return,
        };
        self.queued.store(0, Ordering::SeqCst);
        let failed = jobs.len();
        for job in jobs {
            if let Some(s) = job.reply {
                let _ = s.send(Err(e.clone()));
            }
        }
        (self.observer)(BatchReport {
            done: Vec::new(),
            rows: 0,
            elapsed: Duration::ZERO,
            failed,
        });
    }

    /// Answers each job of a call with its rows of the output (or the call's error), then
    /// reports the call.
    fn finish(&self, group: Vec<Job>, result: Result<Output, ServeError>, elapsed: Duration) {
        let rows: usize = group.iter().map(|j| j.feed.rows()).sum();
        match result {
            Ok(output) => {
                let outputs: Vec<Arc<Output>> = if group.len() == 1 {
                    vec![Arc::new(output)]
                } else {
                    let mut start = 0;
                    group
                        .iter()
                        .map(|job| {
                            let n = job.feed.rows();
                            start += n;
                            Arc::new(output.slice(start - n, start))
                        })
                        .collect()
                };
                // Answer first, then report: the observer's work is off the request path.
                let mut done = Vec::with_capacity(group.len());
                for (job, output) in group.into_iter().zip(outputs) {
                    if let Some(s) = job.reply {
                        let _ = s.send(Ok(output.clone()));
                    }
                    drop(job.admission);
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
                let failed = group.len();
                for job in group {
                    if let Some(s) = job.reply {
                        let _ = s.send(Err(e.clone()));
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

/// The model held by a request's own call or the draining task; letting go of it starts a
/// new draining task if requests queued meanwhile.
struct Held(Arc<Shared>);

impl Held {
    /// A request's own call, made on its thread (answered and reported like a batch of one).
    fn run(self, feed: Feed, tag: JobTag) -> Result<Arc<Output>, ServeError> {
        let (reply, mut answer) = oneshot::channel();
        self.0.call(vec![Job {
            feed,
            tag,
            reply: Some(reply),
            admission: None,
        }]);
        answer
            .try_recv()
            .map_err(|_| ServeError::Unavailable("the model stopped before answering".into()))?
    }

    /// Runs batches until the queue is empty, yielding to other work between them.
    async fn drain(self) {
        if let Some(model) = self.0.predictor.python().cloned() {
            return self.drain_python(model).await;
        }
        loop {
            let jobs = self.0.gather().await;
            if jobs.is_empty() && self.0.queued.load(Ordering::SeqCst) == 0 {
                return;
            }
            self.0.run_batch(jobs).await;
            tokio::task::yield_now().await;
        }
    }
}

impl Held {
    /// A Python model's batches: wait for an idle worker, take what is queued by then (so
    /// requests that arrived while every worker was busy share the next call) and run it on
    /// that worker in a task of its own, so the workers compute side by side.
    async fn drain_python(self, model: Arc<PythonModel>) {
        while self.0.queued.load(Ordering::SeqCst) > 0 {
            let worker = match model.pool().checkout().await {
                Ok(w) => w,
                Err(e) => return self.0.fail_queued(&e),
            };
            let mut jobs = self.0.gather().await;
            if jobs.is_empty() {
                model.pool().give_back(worker);
                continue;
            }
            self.0.gather_more(&mut jobs).await;
            self.0.last_call.store(jobs.len(), Ordering::Relaxed);
            // Requests on a worker are no longer waited for by the next batch's gathering.
            for job in &mut jobs {
                job.admission = None;
            }
            let shared = self.0.clone();
            let model = model.clone();
            shared.calls.fetch_add(1, Ordering::AcqRel);
            let running = Call(shared.clone());
            tokio::spawn(async move {
                shared.call_python(&model, worker, jobs).await;
                drop(running);
            });
        }
    }
}

/// The worker held for a call, or another idle one.
async fn checkout(model: &PythonModel, held: &mut Option<Worker>) -> Result<Worker, ServeError> {
    match held.take() {
        Some(w) => Ok(w),
        None => model.pool().checkout().await,
    }
}

/// Jobs split into groups whose feeds stack into one call, in arrival order.
fn stackable_groups(jobs: Vec<Job>) -> Vec<Vec<Job>> {
    let mut groups: Vec<Vec<Job>> = Vec::new();
    for job in jobs {
        match groups.iter_mut().find(|g| stacks(&g[0].feed, &job.feed)) {
            Some(g) => g.push(job),
            None => groups.push(vec![job]),
        }
    }
    groups
}

impl Drop for Held {
    fn drop(&mut self) {
        self.0.busy.store(false, Ordering::SeqCst);
        self.0.hand_off();
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
