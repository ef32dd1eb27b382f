//! The one SQLite writer: a thread of its own that owns the read-write connection.
//!
//! Group commit: the alert writes of all concurrent requests are committed in one transaction,
//! so one fsync (`synchronous=FULL`) covers them all, and each request still waits for the
//! commit of its own write before it is answered. The writer runs SQLite synchronously on its
//! own thread, so a batch is never stalled behind request handlers waiting for a CPU.
//!
//! Should a write of a batch fail, the batch is rolled back and its writes are retried one
//! transaction each, so that a failure stays with its own write. Grouped writes (company events
//! and their deliveries) are committed together the same way, each under a savepoint of its
//! own, so that one that fails is undone alone. Other writes (partner imports, signing keys)
//! run alone, in order with the rest.
//!
//! Bookkeeping (`relaxed`: delivery claims and attempts) commits without waiting for the disk
//! (`synchronous=NORMAL` for that transaction): it survives `kill -9` like everything else, the
//! next durable commit syncs it with its own, and what a power cut could take back is only a
//! claim (void at start-up anyway) or an attempt's outcome, whose delivery is then sent again
//! with the same `webhook-id` — at least once, as promised.
//!
//! Deadlines: a write still queued when its caller's deadline passes is answered "timeout" and
//! never executed; a batch that cannot get the database lock within the busy timeout fails
//! with nothing written. So a 504 always means "not applied".

use std::{path::Path, time::Duration};

use rusqlite::{Connection, TransactionBehavior};
use tokio::{
    sync::{mpsc, oneshot},
    time::Instant,
};

use super::{
    alerts, checkpointer::CatchUp, classify, connection, ext_refs::ExtRefIndex, is_lock_timeout,
};
use crate::store::{
    AlertChange, AlertTarget, CreateOutcome, NewAlert, StoreError, StoreResult, UpdateOutcome,
};

/// Most jobs one batch takes; more wait for the next.
const MAX_BATCH: usize = 512;
/// Queued jobs; beyond it callers wait (until their deadline) to enqueue.
const QUEUE: usize = 4096;

type Exclusive = Box<dyn FnOnce(Option<&mut Connection>) + Send>;
/// Runs in its batch's transaction (`Err`: the transaction could not begin, or the deadline
/// passed); returns how to answer its caller once the commit settled.
type Grouped =
    Box<dyn FnOnce(Result<&mut rusqlite::Transaction<'_>, &StoreError>) -> Settle + Send>;
type Settle = Box<dyn FnOnce(Result<(), &StoreError>) + Send>;

enum Job {
    Alert(AlertWrite),
    Grouped(Grouped),
    /// Runs alone with the connection; given `None` when its deadline passed before it ran.
    Exclusive(Exclusive),
}

/// An alert write, committed together with the others of its batch.
enum AlertWrite {
    Create(Box<NewAlert>, oneshot::Sender<StoreResult<CreateOutcome>>),
    Update(
        Box<(AlertTarget, AlertChange)>,
        oneshot::Sender<StoreResult<UpdateOutcome>>,
    ),
}

struct Queued {
    job: Job,
    deadline: Instant,
}

/// What an alert write returned, before it is handed to its caller.
enum Applied {
    Create(CreateOutcome),
    Update(UpdateOutcome),
}

impl Job {
    /// Refuses the job: its deadline passed before it could run.
    fn time_out(self) {
        match self {
            Job::Alert(write) => write.answer(Err(StoreError::Timeout)),
            Job::Grouped(run) => run(Err(&StoreError::Timeout))(Ok(())),
            Job::Exclusive(run) => run(None),
        }
    }
}

impl AlertWrite {
    /// Hands the result to the caller (whose answer and write are of the same kind).
    fn answer(self, result: StoreResult<Applied>) {
        match (self, result) {
            (AlertWrite::Create(_, reply), Ok(Applied::Create(outcome))) => {
                drop(reply.send(Ok(outcome)))
            }
            (AlertWrite::Update(_, reply), Ok(Applied::Update(outcome))) => {
                drop(reply.send(Ok(outcome)))
            }
            (AlertWrite::Create(_, reply), Err(err)) => drop(reply.send(Err(err))),
            (AlertWrite::Update(_, reply), Err(err)) => drop(reply.send(Err(err))),
            (write, Ok(_)) => write.answer(Err(StoreError::Other(anyhow::anyhow!(
                "a write was answered with another kind's result"
            )))),
        }
    }
}

#[derive(Clone)]
pub(super) struct Writer {
    queue: mpsc::Sender<Queued>,
    timeout: Duration,
}

impl Writer {
    /// Opens the read-write connection, migrates the schema, and starts the writer thread.
    pub(super) async fn start(
        path: &Path,
        timeout: Duration,
        catch_up: CatchUp,
    ) -> anyhow::Result<Self> {
        let (queue, receiver) = mpsc::channel(QUEUE);
        let (ready_tx, ready) = oneshot::channel();
        let path = path.to_path_buf();
        std::thread::Builder::new()
            .name("maestro-writer".into())
            .spawn(move || {
                let opened = connection::open(&path, timeout, false)
                    .map_err(|err| {
                        anyhow::anyhow!(
                            "cannot open the database file {}: {err}",
                            super::shown(&path)
                        )
                    })
                    .and_then(|mut connection| {
                        connection::migrate(&mut connection).map_err(|err| {
                            anyhow::anyhow!("the database file {}: {err:#}", super::shown(&path))
                        })?;
                        Ok(connection)
                    });
                match opened {
                    Ok(connection) => {
                        let _ = ready_tx.send(Ok(()));
                        run(connection, receiver, catch_up);
                    }
                    Err(err) => {
                        let _ = ready_tx.send(Err(err));
                    }
                }
            })?;
        ready.await??;
        Ok(Writer { queue, timeout })
    }

    pub(super) async fn create(&self, alert: &NewAlert) -> StoreResult<CreateOutcome> {
        let (reply, answer) = oneshot::channel();
        let write = AlertWrite::Create(Box::new(alert.clone()), reply);
        self.enqueue(Job::Alert(write), answer).await
    }

    pub(super) async fn update(
        &self,
        target: &AlertTarget,
        change: &AlertChange,
    ) -> StoreResult<UpdateOutcome> {
        let (reply, answer) = oneshot::channel();
        let write = AlertWrite::Update(Box::new((target.clone(), change.clone())), reply);
        self.enqueue(Job::Alert(write), answer).await
    }

    /// Runs `write` alone in an IMMEDIATE transaction of its own.
    pub(super) async fn exclusive<T, F>(&self, write: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<T> + Send + 'static,
    {
        self.alone(write, true).await
    }

    /// Like `exclusive`, for bookkeeping whose loss in a power cut costs only a repeat (see the
    /// module's note): the commit does not wait for the disk.
    pub(super) async fn relaxed<T, F>(&self, write: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<T> + Send + 'static,
    {
        self.alone(write, false).await
    }

    async fn alone<T, F>(&self, write: F, durable: bool) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let run: Exclusive = Box::new(move |connection: Option<&mut Connection>| {
            let result = match connection {
                None => Err(StoreError::Timeout),
                Some(connection) if durable => transact(connection, write),
                Some(connection) => {
                    // Prepared once: a pragma's text parsed per claim showed in profiles.
                    let synchronous = |connection: &Connection, mode: &str| {
                        connection
                            .prepare_cached(&format!("PRAGMA synchronous={mode}"))?
                            .execute([])
                            .map(drop)
                    };
                    let relaxed = synchronous(connection, "NORMAL");
                    let result = relaxed
                        .map_err(classify)
                        .and_then(|()| transact(connection, write));
                    // Back to durable commits, whatever happened: an error here stops the writer
                    // rather than leave later commits undurable.
                    synchronous(connection, "FULL")
                        .expect("the writer's connection takes back synchronous=FULL");
                    result
                }
            };
            let _ = reply.send(result);
        });
        self.enqueue(Job::Exclusive(run), answer).await
    }

    /// Runs `write` in the transaction of its batch, under a savepoint of its own, and answers
    /// once the batch committed: concurrent writes share one commit (one fsync).
    pub(super) async fn grouped<T, F>(&self, write: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&rusqlite::Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let run: Grouped = Box::new(
            move |tx: Result<&mut rusqlite::Transaction<'_>, &StoreError>| {
                let result = match tx {
                    Err(err) => Err(err.duplicate()),
                    Ok(tx) => (|| {
                        let savepoint = tx.savepoint()?;
                        let value = write(&savepoint)?;
                        savepoint.commit()?;
                        Ok(value)
                    })()
                    .map_err(classify),
                };
                Box::new(move |committed: Result<(), &StoreError>| {
                    let _ = reply.send(committed.map_err(StoreError::duplicate).and(result));
                })
            },
        );
        self.enqueue(Job::Grouped(run), answer).await
    }

    /// Queues a job and waits for its transaction to commit (or for it to be refused).
    async fn enqueue<T>(
        &self,
        job: Job,
        answer: oneshot::Receiver<StoreResult<T>>,
    ) -> StoreResult<T> {
        let deadline = Instant::now() + self.timeout;
        let queued = Queued { job, deadline };
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

fn run(mut connection: Connection, mut receiver: mpsc::Receiver<Queued>, catch_up: CatchUp) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut ext_refs = ExtRefIndex::default();
    if let Err(err) = ext_refs.warm_up(&mut connection) {
        tracing::warn!(error = %err, "reading the extRef index failed; the first alert write will retry");
    }
    while let Some(first) = receiver.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(queued) => batch.push(queued),
                Err(_) => break,
            }
        }
        let now = Instant::now();
        let mut writes = Vec::with_capacity(batch.len());
        let mut grouped = Vec::new();
        for queued in batch.drain(..) {
            if queued.deadline <= now {
                queued.job.time_out();
                continue;
            }
            match queued.job {
                Job::Alert(write) => writes.push(write),
                Job::Grouped(run) => grouped.push(run),
                Job::Exclusive(run) => {
                    // In order: the writes queued before it commit first.
                    let writes = std::mem::take(&mut writes);
                    commit_alert_writes(&mut connection, &mut ext_refs, writes);
                    commit_grouped(&mut connection, std::mem::take(&mut grouped));
                    run(Some(&mut connection));
                }
            }
        }
        commit_alert_writes(&mut connection, &mut ext_refs, writes);
        commit_grouped(&mut connection, grouped);
        // Between batches nothing else writes, so this checkpoint can copy the whole WAL.
        catch_up.run_if_requested(&connection);
    }
}

/// Commits the alert writes in one transaction, or, should one fail, one transaction each.
fn commit_alert_writes(
    connection: &mut Connection,
    ext_refs: &mut ExtRefIndex,
    writes: Vec<AlertWrite>,
) {
    if writes.is_empty() {
        return;
    }
    let together = apply_and_commit(connection, ext_refs, &writes);
    match together {
        Ok(results) => {
            for (job, result) in writes.into_iter().zip(results) {
                job.answer(Ok(result));
            }
        }
        Err(err) if writes.len() == 1 || is_lock_timeout(&err) => {
            // Nothing was written; with the database locked, retrying now would wait again.
            let reason = classify(err);
            for job in writes {
                job.answer(Err(reason.duplicate()));
            }
        }
        Err(_) => {
            for job in writes {
                let result = apply_and_commit(connection, ext_refs, std::slice::from_ref(&job))
                    .map(|mut applied| applied.remove(0));
                job.answer(result.map_err(classify));
            }
        }
    }
}

/// `write` in an IMMEDIATE transaction of its own.
fn transact<T>(
    connection: &mut Connection,
    write: impl FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<T>,
) -> StoreResult<T> {
    (|| {
        let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let value = write(&tx)?;
        tx.commit()?;
        Ok(value)
    })()
    .map_err(classify)
}

/// Commits grouped writes in one transaction; each is answered once the commit settled.
fn commit_grouped(connection: &mut Connection, writes: Vec<Grouped>) {
    if writes.is_empty() {
        return;
    }
    let mut tx = match connection.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(err) => {
            let reason = classify(err);
            for run in writes {
                run(Err(&reason))(Ok(()));
            }
            return;
        }
    };
    let mut settles: Vec<Settle> = Vec::with_capacity(writes.len());
    let mut writes = writes.into_iter();
    while let Some(run) = writes.next() {
        settles.push(run(Ok(&mut tx)));
        // Some failures (a full disk, an I/O error, an interrupt) roll back the whole
        // transaction, not only the write's savepoint: what the batch wrote before is gone and
        // must not be answered as committed. The rest gets a transaction of its own.
        if tx.is_autocommit() {
            drop(tx);
            let lost = StoreError::Unavailable("the batch's transaction was rolled back".into());
            settles.into_iter().for_each(|settle| settle(Err(&lost)));
            commit_grouped(connection, writes.collect());
            return;
        }
    }
    match tx.commit().map_err(classify) {
        Ok(()) => settles.into_iter().for_each(|settle| settle(Ok(()))),
        Err(reason) => settles.into_iter().for_each(|settle| settle(Err(&reason))),
    }
}

/// Applies the writes in order in one transaction, with a slice of the extRef index's work
/// (`ext_refs.rs`), and commits; the index learns whether the transaction committed.
fn apply_and_commit(
    connection: &mut Connection,
    ext_refs: &mut ExtRefIndex,
    writes: &[AlertWrite],
) -> rusqlite::Result<Vec<Applied>> {
    let applied = (|| {
        let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        ext_refs.begin(&tx)?;
        let mut shared = alerts::SharedContent::default();
        let results = writes
            .iter()
            .map(|write| match write {
                AlertWrite::Create(alert, _) => {
                    alerts::create(&tx, alert, &mut shared, ext_refs).map(Applied::Create)
                }
                AlertWrite::Update(update, _) => {
                    alerts::update(&tx, &update.0, &update.1, &mut shared, ext_refs)
                        .map(Applied::Update)
                }
            })
            .collect::<rusqlite::Result<Vec<_>>>()?;
        ext_refs.write_slice(&tx, writes.len())?;
        tx.commit()?;
        Ok(results)
    })();
    match &applied {
        Ok(_) => ext_refs.committed(),
        Err(_) => ext_refs.rolled_back(),
    }
    applied
}
