//! Copies committed pages from the WAL back into the database file, in the background.
//!
//! SQLite's automatic checkpoint runs inside the commit that crosses the threshold, so one
//! request in a few hundred would wait for it. Here a thread of its own runs a PASSIVE
//! checkpoint a few times a second: it never blocks the writer or readers, and a page changed by
//! many commits in between is copied once. The thread ends when the store is dropped.

use std::{
    path::Path,
    sync::mpsc::{self, RecvTimeoutError},
    time::Duration,
};

use super::connection;

const INTERVAL: Duration = Duration::from_secs(1);

pub(super) struct Checkpointer {
    _stop: mpsc::Sender<()>,
}

impl Checkpointer {
    pub(super) fn start(path: &Path, busy_timeout: Duration) -> anyhow::Result<Self> {
        let connection = connection::open(path, busy_timeout, false)?;
        let (stop, stopped) = mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("maestro-checkpointer".into())
            .spawn(move || {
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(INTERVAL) {
                    let done =
                        connection.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
                    if let Err(err) = done {
                        tracing::warn!(error = %err, "WAL checkpoint failed; retrying");
                    }
                }
            })?;
        Ok(Checkpointer { _stop: stop })
    }
}
