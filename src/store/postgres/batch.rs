//! Group commit on PostgreSQL: the alert writes and company events of concurrent requests are
//! committed together, a few multi-row statements per batch (`alert_writes.rs`, `events.rs`)
//! instead of a transaction per request, as the SQLite writer does (`sqlite/writer.rs`).
//!
//! One writer takes what is queued whenever it is free, so while a batch commits (and waits for
//! the WAL's flush) the next gathers. One rather than several: measured with 1, 2, 4 and 8 under
//! wrk, concurrent batches only contended with each other (for the index pages they all append
//! to, and the outbox's NOTIFY, which serialises notifying commits anyway) — one writer took
//! 10,400 alerts/s at 57 µs of PostgreSQL's CPU each, four 8,300/s at 100 µs, eight 5,400/s
//! (docs/PERFORMANCE.md). Each caller is answered only after the commit that holds its write. Should a batch fail, its writes are retried one at a
//! time, so that a failure stays with its own write; a batch that timed out or lost the
//! database is not retried. Creates, updates and events of one batch are committed apart (an
//! update queued with the create of its alert finds it, as the later of two concurrent requests
//! may).
//!
//! Deadlines: a write still queued when its caller's deadline passes is answered "timeout" and
//! never executed. Once queued, a caller waits for its answer, which every batch gives within
//! twice the database timeout (the server's `statement_timeout` cancels first).

use std::{future::Future, pin::Pin, time::Duration};

use sqlx::PgPool;
use tokio::{
    sync::{mpsc, oneshot},
    time::Instant,
};

use super::{alert_writes, events, timed};
use crate::store::{
    AlertChange, AlertTarget, CreateOutcome, DeliveryRecord, NewAlert, NewCompanyEvent, StoreError,
    StoreResult, UpdateOutcome,
};

/// Most writes one batch takes; more wait for the next.
const MAX_BATCH: usize = 256;
/// Queued writes; beyond it callers wait (until their deadline) to enqueue.
const QUEUE: usize = 4096;

type Reply<T> = oneshot::Sender<StoreResult<T>>;
type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
type Update = (AlertTarget, AlertChange);

enum Write {
    Create(Box<NewAlert>, Reply<CreateOutcome>),
    Update(Box<Update>, Reply<UpdateOutcome>),
    Event(Box<NewCompanyEvent>, Reply<Vec<DeliveryRecord>>),
}

struct Queued {
    write: Write,
    deadline: Instant,
}

#[derive(Clone)]
pub(super) struct Batcher {
    queue: mpsc::Sender<Queued>,
    timeout: Duration,
}

impl Batcher {
    /// Starts the writer on the current runtime; it stops when the last `Batcher` is dropped
    /// and the queue is drained.
    pub(super) fn start(pool: PgPool, timeout: Duration) -> Self {
        let (queue, receiver) = mpsc::channel(QUEUE);
        tokio::spawn(work(pool, receiver, timeout));
        Batcher { queue, timeout }
    }

    pub(super) async fn create(&self, alert: &NewAlert) -> StoreResult<CreateOutcome> {
        let (reply, answer) = oneshot::channel();
        self.enqueue(Write::Create(Box::new(alert.clone()), reply), answer)
            .await
    }

    pub(super) async fn update(
        &self,
        target: &AlertTarget,
        change: &AlertChange,
    ) -> StoreResult<UpdateOutcome> {
        let (reply, answer) = oneshot::channel();
        let update = Box::new((target.clone(), change.clone()));
        self.enqueue(Write::Update(update, reply), answer).await
    }

    /// Records a company event with the deliveries it owes, which it returns.
    pub(super) async fn record_event(
        &self,
        event: &NewCompanyEvent,
    ) -> StoreResult<Vec<DeliveryRecord>> {
        let (reply, answer) = oneshot::channel();
        self.enqueue(Write::Event(Box::new(event.clone()), reply), answer)
            .await
    }

    async fn enqueue<T>(
        &self,
        write: Write,
        answer: oneshot::Receiver<StoreResult<T>>,
    ) -> StoreResult<T> {
        let deadline = Instant::now() + self.timeout;
        let queued = Queued { write, deadline };
        match tokio::time::timeout_at(deadline, self.queue.send(queued)).await {
            Err(_) => return Err(StoreError::Timeout),
            Ok(Err(_)) => return Err(stopped()),
            Ok(Ok(())) => {}
        }
        // No timeout here: once queued, a write is always answered, and an answer given before
        // its commit settled could claim "not applied" for a write that was.
        answer.await.unwrap_or_else(|_| Err(stopped()))
    }
}

fn stopped() -> StoreError {
    StoreError::Unavailable("the batch writers have stopped".into())
}

async fn work(pool: PgPool, mut receiver: mpsc::Receiver<Queued>, timeout: Duration) {
    loop {
        let batch = {
            let Some(first) = receiver.recv().await else {
                return;
            };
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match receiver.try_recv() {
                    Ok(queued) => batch.push(queued),
                    Err(_) => break,
                }
            }
            batch
        };
        let now = Instant::now();
        let (mut creates, mut updates, mut events) = (Vec::new(), Vec::new(), Vec::new());
        for queued in batch {
            match queued.write {
                Write::Create(_, reply) if queued.deadline <= now => timed_out(reply),
                Write::Update(_, reply) if queued.deadline <= now => timed_out(reply),
                Write::Event(_, reply) if queued.deadline <= now => timed_out(reply),
                Write::Create(alert, reply) => creates.push((alert, reply)),
                Write::Update(update, reply) => updates.push((update, reply)),
                Write::Event(event, reply) => events.push((event, reply)),
            }
        }
        commit(&pool, timeout, creates, create_all).await;
        commit(&pool, timeout, updates, update_all).await;
        commit(&pool, timeout, events, record_events).await;
    }
}

fn timed_out<T>(reply: Reply<T>) {
    let _ = reply.send(Err(StoreError::Timeout));
}

type Run<W, T> = for<'a> fn(&'a PgPool, &'a [&'a W]) -> BoxFuture<'a, Result<Vec<T>, sqlx::Error>>;

fn create_all<'a>(
    pool: &'a PgPool,
    alerts: &'a [&'a NewAlert],
) -> BoxFuture<'a, Result<Vec<CreateOutcome>, sqlx::Error>> {
    Box::pin(alert_writes::create(pool, alerts))
}

fn update_all<'a>(
    pool: &'a PgPool,
    updates: &'a [&'a Update],
) -> BoxFuture<'a, Result<Vec<UpdateOutcome>, sqlx::Error>> {
    Box::pin(alert_writes::update(pool, updates))
}

fn record_events<'a>(
    pool: &'a PgPool,
    events: &'a [&'a NewCompanyEvent],
) -> BoxFuture<'a, Result<Vec<Vec<DeliveryRecord>>, sqlx::Error>> {
    Box::pin(events::record_all(pool, events))
}

/// Commits the writes together, or, should that fail, one at a time.
async fn commit<W, T>(
    pool: &PgPool,
    timeout: Duration,
    jobs: Vec<(Box<W>, Reply<T>)>,
    run: Run<W, T>,
) {
    if jobs.is_empty() {
        return;
    }
    let together = {
        let writes: Vec<&W> = jobs.iter().map(|(write, _)| &**write).collect();
        timed(timeout, run(pool, &writes)).await
    };
    match together {
        Ok(outcomes) if outcomes.len() == jobs.len() => {
            for ((_, reply), outcome) in jobs.into_iter().zip(outcomes) {
                let _ = reply.send(Ok(outcome));
            }
        }
        Ok(_) => {
            for (_, reply) in jobs {
                let why = anyhow::anyhow!("a batch of writes lost an answer");
                let _ = reply.send(Err(StoreError::Other(why)));
            }
        }
        Err(err)
            if jobs.len() == 1
                || matches!(err, StoreError::Timeout | StoreError::Unavailable(_)) =>
        {
            for (_, reply) in jobs {
                let _ = reply.send(Err(err.duplicate()));
            }
        }
        Err(_) => {
            for (write, reply) in jobs {
                let alone = timed(timeout, run(pool, &[&*write])).await;
                let _ = reply.send(alone.and_then(|mut outcomes| {
                    outcomes.pop().ok_or_else(|| {
                        StoreError::Other(anyhow::anyhow!("a batched write lost its answer"))
                    })
                }));
            }
        }
    }
}
