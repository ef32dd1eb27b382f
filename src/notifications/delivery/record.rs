//! Group commit of attempts: the outcomes of attempts that end while another batch is being
//! written are recorded together, in one transaction, by whichever of their tasks gets to write
//! next. No task of its own and no timer: an attempt that ends alone is recorded at once, and
//! under load each write takes everything that ended during the previous one.
//!
//! Each attempt still waits for its own outcome to be committed before it ends, so its slot
//! (and its partner's share of claims) is given back only once the delivery has moved on.

use std::{future::Future, sync::Mutex};

use tokio::sync::oneshot;

use crate::store::{FinishedAttempt, StoreResult};

/// Most attempts one transaction records; more wait for the next.
const MAX_BATCH: usize = 512;

type Reply = oneshot::Sender<Result<bool, String>>;

#[derive(Default)]
pub(super) struct Recorder {
    /// Ended attempts not yet taken by a writer.
    queue: Mutex<Vec<(FinishedAttempt, Reply)>>,
    /// Held by the task writing a batch: one batch at a time, in order.
    writing: tokio::sync::Mutex<()>,
}

impl Recorder {
    /// Records `finished` with whatever else ended meanwhile, through `write` (one transaction
    /// for a batch: `Store::finish_attempts`) should this task be the one to write them;
    /// whether the claim was still held.
    pub(super) async fn record<F, W>(
        &self,
        finished: FinishedAttempt,
        write: W,
    ) -> anyhow::Result<bool>
    where
        W: FnOnce(Vec<FinishedAttempt>) -> F,
        F: Future<Output = StoreResult<Vec<bool>>>,
    {
        let (reply, answer) = oneshot::channel();
        self.queue
            .lock()
            .expect("not poisoned")
            .push((finished, reply));
        {
            // Whoever held the lock before took this attempt with its batch, or left it queued
            // for the next holder: this task, unless an earlier waiter takes it first.
            let _writing = self.writing.lock().await;
            let batch: Vec<_> = {
                let mut queue = self.queue.lock().expect("not poisoned");
                let take = queue.len().min(MAX_BATCH);
                queue.drain(..take).collect()
            };
            if !batch.is_empty() {
                let (attempts, replies): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
                match write(attempts).await {
                    Ok(kept) => {
                        for (reply, kept) in replies.into_iter().zip(kept) {
                            let _ = reply.send(Ok(kept));
                        }
                    }
                    Err(err) => {
                        let why = format!("{err:#}");
                        for reply in replies {
                            let _ = reply.send(Err(why.clone()));
                        }
                    }
                }
            }
        }
        match answer.await {
            Ok(Ok(kept)) => Ok(kept),
            Ok(Err(why)) => Err(anyhow::anyhow!("{why}")),
            Err(_) => Err(anyhow::anyhow!(
                "the batch holding this attempt was abandoned"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use time::OffsetDateTime;

    use super::*;
    use crate::store::{AttemptRecord, DeliveryNext};

    fn ended(id: &str) -> FinishedAttempt {
        FinishedAttempt {
            delivery_id: id.to_owned(),
            attempt: AttemptRecord {
                attempt: 1,
                started_at: OffsetDateTime::UNIX_EPOCH,
                duration_ms: 1,
                status_code: Some(200),
                error: None,
                response_body: None,
                outcome: "delivered".to_owned(),
            },
            next: DeliveryNext::Delivered,
        }
    }

    #[tokio::test]
    async fn attempts_that_end_during_a_write_are_recorded_together_by_the_next() {
        let recorder = Arc::new(Recorder::default());
        let batches = Arc::new(Mutex::new(Vec::<Vec<String>>::new()));
        let (release, released) = tokio::sync::watch::channel(false);
        let write = |batches: Arc<Mutex<Vec<Vec<String>>>>,
                     mut released: tokio::sync::watch::Receiver<bool>| {
            move |batch: Vec<FinishedAttempt>| async move {
                let mut ids: Vec<String> = batch.iter().map(|f| f.delivery_id.clone()).collect();
                ids.sort();
                let first = batches.lock().unwrap().is_empty();
                batches.lock().unwrap().push(ids);
                if first {
                    // The first write is slow: the next attempts end meanwhile.
                    released.wait_for(|done| *done).await.unwrap();
                }
                Ok(vec![true; batch.len()])
            }
        };
        let first = tokio::spawn({
            let (recorder, write) = (recorder.clone(), write(batches.clone(), released.clone()));
            async move { recorder.record(ended("a"), write).await }
        });
        while batches.lock().unwrap().is_empty() {
            tokio::task::yield_now().await;
        }
        let others: Vec<_> = ["b", "c", "d"]
            .into_iter()
            .map(|id| {
                let (recorder, write) =
                    (recorder.clone(), write(batches.clone(), released.clone()));
                tokio::spawn(async move { recorder.record(ended(id), write).await })
            })
            .collect();
        while recorder.queue.lock().unwrap().len() < 3 {
            tokio::task::yield_now().await;
        }
        release.send(true).unwrap();
        assert!(first.await.unwrap().unwrap());
        for other in others {
            assert!(other.await.unwrap().unwrap());
        }
        assert_eq!(
            *batches.lock().unwrap(),
            [
                vec!["a".to_owned()],
                vec!["b".to_owned(), "c".to_owned(), "d".to_owned()]
            ],
            "one write for the attempts that ended during the first"
        );
    }

    #[tokio::test]
    async fn a_failed_write_fails_every_attempt_of_its_batch() {
        let recorder = Recorder::default();
        let failed = recorder
            .record(ended("a"), |_| async {
                Err(crate::store::StoreError::Timeout)
            })
            .await;
        assert!(failed.is_err());
        // The next one is written on its own.
        let kept = recorder.record(
            ended("b"),
            |batch| async move { Ok(vec![false; batch.len()]) },
        );
        assert!(!kept.await.unwrap());
    }
}
