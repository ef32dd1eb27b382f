//! A few read-only connections, used from blocking threads so that SQLite's synchronous calls
//! never stall the async runtime. In WAL mode readers never wait for the writer.

use std::sync::{Arc, Mutex};

use rusqlite::Connection;
use tokio::sync::Semaphore;

use crate::store::{StoreError, StoreResult};

pub(super) struct ReadPool {
    idle: Arc<Mutex<Vec<Connection>>>,
    permits: Arc<Semaphore>,
}

impl ReadPool {
    pub(super) fn new(connections: Vec<Connection>) -> Self {
        ReadPool {
            permits: Arc::new(Semaphore::new(connections.len())),
            idle: Arc::new(Mutex::new(connections)),
        }
    }

    /// Runs `read` on an idle connection (waiting for one if all are busy).
    pub(super) async fn read<T, F>(&self, read: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        // The permit travels with the connection and is released only once the connection is
        // back, even if the caller stops waiting.
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Unavailable("the read pool is closed".into()))?;
        let connection = self
            .idle
            .lock()
            .expect("read pool lock poisoned")
            .pop()
            .expect("a permit stands for an idle connection");
        let idle = self.idle.clone();
        tokio::task::spawn_blocking(move || {
            let result = read(&connection);
            idle.lock()
                .expect("read pool lock poisoned")
                .push(connection);
            drop(permit);
            result
        })
        .await
        .map_err(|err| StoreError::Other(anyhow::anyhow!("a database read panicked: {err}")))?
        .map_err(super::classify)
    }
}
