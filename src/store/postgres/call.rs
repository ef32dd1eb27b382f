//! One database call: its deadline, and how its failure reads as a [`StoreError`].

use std::{future::Future, time::Duration};

use super::super::{StoreError, StoreResult};

/// One database call under `timeout` (see `PostgresStore::timed`), for the batch writers too.
pub(super) async fn timed<T>(
    timeout: Duration,
    call: impl Future<Output = Result<T, sqlx::Error>>,
) -> StoreResult<T> {
    match tokio::time::timeout(timeout * 2, call).await {
        Ok(result) => result.map_err(classify),
        Err(_) => Err(StoreError::Timeout),
    }
}

fn classify(err: sqlx::Error) -> StoreError {
    const QUERY_CANCELED: &str = "57014";
    const LOCK_NOT_AVAILABLE: &str = "55P03";
    const ADMIN_SHUTDOWN: &str = "57P01";
    const CANNOT_CONNECT_NOW: &str = "57P03";
    match &err {
        sqlx::Error::PoolTimedOut => StoreError::Timeout,
        sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::Tls(_) => {
            StoreError::Unavailable(err.to_string())
        }
        sqlx::Error::Database(db) => match db.code().as_deref() {
            Some(QUERY_CANCELED | LOCK_NOT_AVAILABLE) => StoreError::Timeout,
            Some(ADMIN_SHUTDOWN | CANNOT_CONNECT_NOW) => StoreError::Unavailable(err.to_string()),
            _ => StoreError::Other(err.into()),
        },
        _ => StoreError::Other(err.into()),
    }
}
