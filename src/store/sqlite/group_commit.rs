//! Group commit: one task owns the alert-writing connection and commits the alert writes of all
//! concurrent requests in one transaction, so that one fsync (`synchronous=FULL`) covers them
//! all. Each request still waits for the commit of its own write before it is answered.
//!
//! Each write runs in a savepoint of the shared transaction: a write that fails is rolled back
//! alone and reported to its own caller; the others commit. Within a batch, writes apply in
//! arrival order, so two creates of one extRef in a batch behave as they would one after the
//! other (the second finds the first).
//!
//! Deadlines: a write still queued when its caller's deadline passes is answered "timeout" and
//! never executed; a batch that cannot get the database lock within the busy timeout fails as a
//! whole with nothing written. So a 504 always means "not applied".

use std::time::Duration;

use sqlx::{Connection, SqliteConnection, sqlite::SqliteConnectOptions};
use tokio::{
    sync::{mpsc, oneshot},
    time::Instant,
};

use super::{alerts, classify, is_lock_timeout};
use crate::store::{
    AlertChange, AlertTarget, CreateOutcome, NewAlert, StoreError, StoreResult, UpdateOutcome,
};

/// Most writes one transaction takes; more wait for the next.
const MAX_BATCH: usize = 512;
/// Queued writes; beyond it callers wait (until their deadline) to enqueue.
const QUEUE: usize = 4096;

/// A queued write and where its answer goes.
enum Write {
    Create(Box<NewAlert>, oneshot::Sender<StoreResult<CreateOutcome>>),
    Update(
        Box<(AlertTarget, AlertChange)>,
        oneshot::Sender<StoreResult<UpdateOutcome>>,
    ),
}

struct Queued {
    write: Write,
    deadline: Instant,
}

impl Write {
    /// Hands the result to the caller (whose answer and write are of the same kind).
    fn answer(self, result: StoreResult<Applied>) {
        match (self, result) {
            (Write::Create(_, reply), Ok(Applied::Create(outcome))) => {
                drop(reply.send(Ok(outcome)))
            }
            (Write::Update(_, reply), Ok(Applied::Update(outcome))) => {
                drop(reply.send(Ok(outcome)))
            }
            (write, Ok(_)) => write.answer(Err(StoreError::Other(anyhow::anyhow!(
                "a write was answered with another kind's result"
            )))),
            (Write::Create(_, reply), Err(err)) => drop(reply.send(Err(err))),
            (Write::Update(_, reply), Err(err)) => drop(reply.send(Err(err))),
        }
    }
}

#[derive(Clone)]
pub(super) struct GroupCommit {
    queue: mpsc::Sender<Queued>,
}

impl GroupCommit {
    /// Opens the writer's own connection and starts it on a thread of its own.
    ///
    /// The writer gets its own thread (with a single-threaded runtime) rather than a task among
    /// the request handlers: every statement it sends to SQLite comes back as a wake-up, and on
    /// a busy server a wake-up queued behind request handlers stalls the whole batch.
    pub(super) async fn start(options: &SqliteConnectOptions) -> Result<Self, sqlx::Error> {
        let (queue, receiver) = mpsc::channel(QUEUE);
        let (ready_tx, ready) = oneshot::channel();
        let options = options.clone();
        std::thread::Builder::new()
            .name("maestro-writer".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(err) => {
                        let _ = ready_tx.send(Err(sqlx::Error::Io(err)));
                        return;
                    }
                };
                runtime.block_on(async move {
                    match SqliteConnection::connect_with(&options).await {
                        Ok(connection) => {
                            let _ = ready_tx.send(Ok(()));
                            run(connection, receiver).await;
                        }
                        Err(err) => {
                            let _ = ready_tx.send(Err(err));
                        }
                    }
                });
            })
            .map_err(sqlx::Error::Io)?;
        ready.await.map_err(|_| sqlx::Error::WorkerCrashed)??;
        Ok(GroupCommit { queue })
    }

    pub(super) async fn create(
        &self,
        alert: &NewAlert,
        timeout: Duration,
    ) -> StoreResult<CreateOutcome> {
        let (reply, answer) = oneshot::channel();
        self.enqueue(
            Write::Create(Box::new(alert.clone()), reply),
            timeout,
            answer,
        )
        .await
    }

    pub(super) async fn update(
        &self,
        target: &AlertTarget,
        change: &AlertChange,
        timeout: Duration,
    ) -> StoreResult<UpdateOutcome> {
        let (reply, answer) = oneshot::channel();
        let write = Write::Update(Box::new((target.clone(), change.clone())), reply);
        self.enqueue(write, timeout, answer).await
    }

    /// Queues a write and waits for its transaction to commit (or for it to be refused).
    async fn enqueue<T>(
        &self,
        write: Write,
        timeout: Duration,
        answer: oneshot::Receiver<StoreResult<T>>,
    ) -> StoreResult<T> {
        let deadline = Instant::now() + timeout;
        let queued = Queued { write, deadline };
        match tokio::time::timeout_at(deadline, self.queue.send(queued)).await {
            Err(_) => return Err(StoreError::Timeout),
            Ok(Err(_)) => return Err(StoreError::Unavailable("the writer has stopped".into())),
            Ok(Ok(())) => {}
        }
        // No timeout here: once queued, the writer always answers, and an answer given before
        // the commit settled could claim "not applied" for a write that was.
        answer
            .await
            .unwrap_or_else(|_| Err(StoreError::Unavailable("the writer has stopped".into())))
    }
}

async fn run(mut connection: SqliteConnection, mut receiver: mpsc::Receiver<Queued>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while receiver.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let now = Instant::now();
        let (live, late): (Vec<_>, Vec<_>) = batch.drain(..).partition(|q| q.deadline > now);
        for queued in late {
            queued.write.answer(Err(StoreError::Timeout));
        }
        if !live.is_empty() {
            commit_batch(&mut connection, live).await;
        }
    }
}

/// Commits the batch in one transaction. Should any write fail, the transaction is rolled back
/// and the writes are retried one transaction each, so that a failure stays with its own write.
async fn commit_batch(connection: &mut SqliteConnection, batch: Vec<Queued>) {
    let writes: Vec<Write> = batch.into_iter().map(|q| q.write).collect();
    let mut results = Vec::new();
    let together: Result<(), sqlx::Error> = async {
        let mut tx = connection.begin_with("BEGIN IMMEDIATE").await?;
        results = apply_all(&mut tx, &writes).await?;
        tx.commit().await
    }
    .await;
    match together {
        Ok(()) => {
            for (write, result) in writes.into_iter().zip(results) {
                write.answer(Ok(result));
            }
        }
        Err(err) if writes.len() == 1 => {
            if let Some(write) = writes.into_iter().next() {
                write.answer(Err(classify(err)));
            }
        }
        Err(err) if is_lock_timeout(&err) => {
            // The database stayed locked: nothing was written, and retrying now would wait again.
            for write in writes {
                write.answer(Err(StoreError::Timeout));
            }
        }
        Err(_) => {
            for write in writes {
                let result = async {
                    let mut tx = connection.begin_with("BEGIN IMMEDIATE").await?;
                    let result = apply(&mut tx, &write).await?;
                    tx.commit().await?;
                    Ok::<_, sqlx::Error>(result)
                }
                .await;
                write.answer(result.map_err(classify));
            }
        }
    }
}

/// What a write returned, before it is handed to its caller.
enum Applied {
    Create(CreateOutcome),
    Update(UpdateOutcome),
}

/// Applies the writes in order; consecutive creates go together (see `alerts::create_many`).
async fn apply_all(
    connection: &mut SqliteConnection,
    writes: &[Write],
) -> Result<Vec<Applied>, sqlx::Error> {
    let mut applied = Vec::with_capacity(writes.len());
    let mut creates: Vec<&NewAlert> = Vec::new();
    for write in writes {
        match write {
            Write::Create(alert, _) => creates.push(alert),
            Write::Update(update, _) => {
                flush_creates(connection, &mut creates, &mut applied).await?;
                applied.push(Applied::Update(
                    alerts::update(connection, &update.0, &update.1).await?,
                ));
            }
        }
    }
    flush_creates(connection, &mut creates, &mut applied).await?;
    Ok(applied)
}

async fn flush_creates(
    connection: &mut SqliteConnection,
    creates: &mut Vec<&NewAlert>,
    applied: &mut Vec<Applied>,
) -> Result<(), sqlx::Error> {
    if !creates.is_empty() {
        let outcomes = alerts::create_many(connection, creates).await?;
        applied.extend(outcomes.into_iter().map(Applied::Create));
        creates.clear();
    }
    Ok(())
}

async fn apply(connection: &mut SqliteConnection, write: &Write) -> Result<Applied, sqlx::Error> {
    Ok(match write {
        Write::Create(alert, _) => Applied::Create(
            alerts::create_many(connection, &[alert])
                .await?
                .pop()
                .expect("one outcome per alert"),
        ),
        Write::Update(update, _) => {
            Applied::Update(alerts::update(connection, &update.0, &update.1).await?)
        }
    })
}
