//! The delivery workers' lag as reported to the database, which instances without a worker pace
//! company-event intake by: the largest recent report, one per worker, withdrawn when it stops,
//! forgotten an hour after it was made.

use std::time::Duration;

use time::{OffsetDateTime, macros::datetime};

use super::open;
use crate::helpers::Backend;

crate::on_both_backends!(
    the_workers_lag_is_the_largest_recent_report_of_each,
    a_withdrawn_or_hour_old_report_no_longer_counts,
);

const AT: OffsetDateTime = datetime!(2030-01-15 12:00 UTC);

fn ms(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

async fn the_workers_lag_is_the_largest_recent_report_of_each(backend: Backend) {
    let (store, _db) = open(backend).await;
    assert_eq!(store.workers_lag(AT - ms(1_000)).await.unwrap(), ms(0));
    store.report_worker_lag("a", ms(300), AT).await.unwrap();
    store
        .report_worker_lag("b", ms(80), AT + ms(500))
        .await
        .unwrap();
    assert_eq!(store.workers_lag(AT - ms(1_000)).await.unwrap(), ms(300));
    // A report made at `since` counts; one made before it does not.
    assert_eq!(store.workers_lag(AT).await.unwrap(), ms(300));
    assert_eq!(store.workers_lag(AT + ms(1)).await.unwrap(), ms(80));
    // A worker's report replaces its last, to the microsecond, whether larger or smaller.
    store
        .report_worker_lag("a", Duration::from_micros(20_123), AT + ms(600))
        .await
        .unwrap();
    assert_eq!(store.workers_lag(AT).await.unwrap(), ms(80));
    assert_eq!(
        store.workers_lag(AT + ms(550)).await.unwrap(),
        Duration::from_micros(20_123)
    );
    store
        .report_worker_lag("b", ms(4_000), AT + ms(700))
        .await
        .unwrap();
    assert_eq!(store.workers_lag(AT).await.unwrap(), ms(4_000));
}

async fn a_withdrawn_or_hour_old_report_no_longer_counts(backend: Backend) {
    let (store, _db) = open(backend).await;
    store.report_worker_lag("a", ms(300), AT).await.unwrap();
    store.report_worker_lag("b", ms(200), AT).await.unwrap();
    store.withdraw_worker_lag("a").await.unwrap();
    assert_eq!(store.workers_lag(AT).await.unwrap(), ms(200));
    // Withdrawing what is not there is no error.
    store.withdraw_worker_lag("a").await.unwrap();
    // "b" stopped without withdrawing its report (killed): the next report, more than an hour
    // later, forgets it — even when asked about all time.
    let later = AT + Duration::from_secs(3_601);
    store.report_worker_lag("c", ms(60), later).await.unwrap();
    assert_eq!(
        store.workers_lag(OffsetDateTime::UNIX_EPOCH).await.unwrap(),
        ms(60)
    );
    // A worker's own report an hour old is replaced, not forgotten.
    let much_later = later + Duration::from_secs(7_200);
    store
        .report_worker_lag("c", ms(70), much_later)
        .await
        .unwrap();
    assert_eq!(store.workers_lag(much_later).await.unwrap(), ms(70));
}
