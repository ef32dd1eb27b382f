//! Copies committed pages from the WAL back into the database file, in the background.
//!
//! SQLite's automatic checkpoint runs inside the commit that crosses the threshold, so one
//! request in a few hundred would wait for it. Here a thread of its own runs a PASSIVE
//! checkpoint once a second: it never blocks the writer or readers, and a page changed by
//! many commits in between is copied once. The thread ends when the store is dropped.
//!
//! While writes are sustained it runs every 25 ms instead ([`BUSY_INTERVAL`]): what a pass
//! copies must reach the disk, and a commit's fsync queues behind that write. A second's worth
//! (30,000-75,000 pages in the benchmark) held a commit up by 20-60 ms; a tenth of it, by a few
//! (docs/PERFORMANCE.md, "SQLite ingest tail: flushes a tenth as large"). With extRefs as
//! scattered as a partner's UUIDs most of those pages are the extRef index's leaves, scattered
//! over the file, and a tenth of a second's took 25-43 ms to write: a quarter of that is smaller
//! again (docs/PERFORMANCE.md, "where a commit's bytes go"). After each WAL restart the pace
//! falls back to a second until the WAL is long again (see `Progress::is_sustained_since`):
//! keeping it lowered the p99 but let longer stalls through (docs/PERFORMANCE.md, "write-out
//! started, not waited for — tried, not taken").
//!
//! Under sustained writes that alone never lets the WAL start over: the writer commits while the
//! checkpoint copies, so the WAL always ends beyond what was copied, and SQLite only rewinds it
//! when a write begins with every frame copied. The file then grows without bound (1.4 GB in
//! 24 s of the benchmark) and every commit extends it. So once the WAL is long, the
//! checkpointer asks the writer ([`CatchUp`]) to copy the frames committed since itself, between
//! two batches, when nothing else is writing; its next transaction then rewinds the WAL to the
//! start (unless a reader still holds an old snapshot), and `journal_size_limit` bounds the file.
//!
//! Those passes end before the WAL's end, and SQLite syncs the database file only after a pass
//! that reached it: the pages they copy would wait in the page cache for the writer's pass, whose
//! fsync then held up its queue while it wrote them all. So while the WAL is long the
//! checkpointer flushes the database file itself after each pass (`database_flush.rs`), and the
//! writer's fsync only writes what was copied since.

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
        mpsc::{self, RecvTimeoutError},
    },
    time::{Duration, Instant},
};

use rusqlite::Connection;

use super::{connection, database_flush};

const INTERVAL: Duration = Duration::from_secs(1);
/// The interval while writes are sustained (see above).
const BUSY_INTERVAL: Duration = Duration::from_millis(25);
/// WAL frames (pages) beyond which the writer is asked to finish a checkpoint: 65,536 pages of
/// 4 KiB are 256 MiB, two to three seconds of sustained writes in the benchmark. Each time
/// holds up the writer's queue for its fsync of the database file, so not more often than that
/// (what the checkpointer's own passes copied is flushed before, see `checkpoint_closely`).
const CATCH_UP_FRAMES: i64 = 65536;
/// A WAL file larger than this is emptied once writes pause (see `connection.rs` on
/// `journal_size_limit`, which is far larger so that a restart under load never truncates).
const IDLE_WAL_BYTES: u64 = 64 * 1024 * 1024;
/// WAL frames beyond which the checkpointer's passes no longer reach the WAL's end (the writer
/// keeps committing), so it flushes the database file itself after each: 4,096 pages of 4 KiB
/// are 16 MiB, a fraction of a second of sustained writes. A shorter WAL is checkpointed to its
/// end, and synced, by SQLite.
const FLUSH_FRAMES: i64 = 4096;
// The file is flushed before the writer is asked to finish a checkpoint, not only by it.
const _: () = assert!(FLUSH_FRAMES < CATCH_UP_FRAMES);
/// Passes the checkpointer makes at most before it hands the rest to the writer.
const PASSES: usize = 4;
/// A pass this short left little behind: the writer's pass after it is short too.
const SHORT_PASS: Duration = Duration::from_millis(3);

/// The checkpointer's request that the writer finish a checkpoint between two batches.
#[derive(Clone, Default)]
pub(super) struct CatchUp(Arc<AtomicBool>);

impl CatchUp {
    fn request(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Runs the requested checkpoint, if one was requested, on the writer's connection. It
    /// copies only what the checkpointer's last pass left, and its fsync of the database file
    /// writes only that: the checkpointer flushed what its own passes copied (docs/PERFORMANCE.md,
    /// "SQLite ingest tail").
    pub(super) fn run_if_requested(&self, connection: &Connection) {
        if !self.0.swap(false, Ordering::Relaxed) {
            return;
        }
        if let Err(err) = checkpoint(connection) {
            tracing::warn!(error = %err, "WAL checkpoint by the writer failed");
        }
    }
}

pub(super) struct Checkpointer {
    _stop: mpsc::Sender<()>,
}

impl Checkpointer {
    pub(super) fn start(
        path: &Path,
        busy_timeout: Duration,
        catch_up: CatchUp,
    ) -> anyhow::Result<Self> {
        let connection = connection::open(path, busy_timeout, false)?;
        // Its TRUNCATE checkpoint must never wait for the writer (nor make it wait long).
        connection.busy_timeout(Duration::ZERO)?;
        let wal_path = wal_path(path);
        let path = path.to_path_buf();
        let (stop, stopped) = mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("maestro-checkpointer".into())
            .spawn(move || {
                let mut frames_before = None;
                let mut interval = INTERVAL;
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(interval) {
                    match checkpoint_closely(&connection, &path) {
                        Ok(progress) => {
                            if progress.needs_writer() {
                                catch_up.request();
                            } else if progress.is_idle_since(frames_before) {
                                cut_back(&connection, &wal_path, IDLE_WAL_BYTES);
                            }
                            interval = if progress.is_sustained_since(frames_before) {
                                BUSY_INTERVAL
                            } else {
                                INTERVAL
                            };
                            frames_before = Some(progress.wal_frames);
                        }
                        Err(err) => {
                            tracing::warn!(error = %err, "WAL checkpoint failed; retrying");
                            frames_before = None;
                            interval = INTERVAL;
                        }
                    }
                }
            })?;
        Ok(Checkpointer { _stop: stop })
    }
}

/// What one PASSIVE checkpoint saw and did.
struct Progress {
    /// Frames in the WAL, or -1 when another checkpoint was running.
    wal_frames: i64,
    took: Duration,
}

impl Progress {
    /// The WAL did not start over since it was last this short (a checkpoint reports the frames
    /// of the snapshot it copied; the writer may have committed more since, so "all copied"
    /// does not mean it can start over).
    fn wal_is_long(&self) -> bool {
        self.wal_frames >= CATCH_UP_FRAMES
    }

    /// The WAL is long: under the sustained writes that made it so, this pass ended before its
    /// end, and SQLite left the pages it copied into the database file unsynced.
    fn leaves_file_unsynced(&self) -> bool {
        self.wal_frames >= FLUSH_FRAMES
    }

    /// Nothing was written since the pass that saw `frames_before`.
    fn is_idle_since(&self, frames_before: Option<i64>) -> bool {
        self.wal_frames >= 0 && Some(self.wal_frames) == frames_before
    }

    /// Writes are sustained: since the pass that saw `frames_before` the WAL grew and is long
    /// (so each pass leaves the file to flush), or it started over (a write does that, and under
    /// load it is long again within the second). The pass after a restart sees a short WAL,
    /// growing, so the pace falls back to a second until the WAL is long again: 27-34 times a
    /// minute under the benchmark's load, measured and kept (see the module's comment). The WAL
    /// of an idle database keeps its frames until the next write, so a long one alone says
    /// nothing; a trickle of writes starts it over once, then keeps it short. The idle cut-back
    /// (`cut_back`) starts it over too, which costs one pass sooner than a second, not a faster
    /// pace: the pass after sees the same frames.
    fn is_sustained_since(&self, frames_before: Option<i64>) -> bool {
        match frames_before {
            Some(before) if before >= 0 && self.wal_frames >= 0 => {
                let restarted = self.wal_frames < before;
                let grew_long = self.wal_frames > before && self.leaves_file_unsynced();
                restarted || grew_long
            }
            _ => false,
        }
    }

    /// The WAL is long, and this pass was short: what it left for the writer is little.
    fn needs_writer(&self) -> bool {
        self.wal_is_long() && self.took <= SHORT_PASS
    }
}

/// Checkpoints, and while the WAL is long, again: each pass copies what was committed during
/// the one before, so passes shorten, and what is left for the writer (which holds up its queue
/// meanwhile) is a few milliseconds of commits. Should they not shorten, the writer is not
/// asked this time. After each pass that left the database file unsynced, the file at
/// `database` is flushed here, off the writer's path.
fn checkpoint_closely(connection: &Connection, database: &Path) -> rusqlite::Result<Progress> {
    let mut passes = 0;
    loop {
        let progress = checkpoint(connection)?;
        passes += 1;
        if progress.leaves_file_unsynced() {
            flush(database);
        }
        if passes == PASSES || !progress.wal_is_long() || progress.needs_writer() {
            return Ok(progress);
        }
    }
}

/// Flushes the database file; a failure is logged, and the writer's pass syncs it anyway.
fn flush(database: &Path) {
    let started = Instant::now();
    match database_flush::flush(database) {
        Ok(()) => tracing::debug!(
            took_us = started.elapsed().as_micros() as u64,
            "database file flushed"
        ),
        Err(err) => tracing::warn!(error = %err, "flushing the database file failed"),
    }
}

/// Once writes pause, empties a WAL file left larger than `limit` by a burst: a TRUNCATE
/// checkpoint, which gives up at once (no busy handler on this connection) should a write be
/// under way.
fn cut_back(connection: &Connection, wal_path: &Path, limit: u64) {
    let size = std::fs::metadata(wal_path).map(|m| m.len()).unwrap_or(0);
    if size <= limit {
        return;
    }
    match connection.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| {
        row.get::<_, i64>(0)
    }) {
        Ok(busy) => tracing::debug!(size, cut = busy == 0, "WAL file cut back while idle"),
        Err(err) => tracing::warn!(error = %err, "cutting the WAL file back failed"),
    }
}

/// SQLite's WAL file beside the database file.
fn wal_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

fn checkpoint(connection: &Connection) -> rusqlite::Result<Progress> {
    let started = Instant::now();
    let (wal_frames, copied_frames): (i64, i64) =
        connection.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
            Ok((row.get(1)?, row.get(2)?))
        })?;
    let progress = Progress {
        wal_frames,
        took: started.elapsed(),
    };
    tracing::debug!(
        wal_frames,
        copied_frames,
        took_us = progress.took.as_micros() as u64,
        "WAL checkpoint"
    );
    Ok(progress)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn progress(wal_frames: i64, took_ms: u64) -> Progress {
        Progress {
            wal_frames,
            took: Duration::from_millis(took_ms),
        }
    }

    #[test]
    fn the_writer_is_asked_when_the_wal_is_long_and_little_is_left() {
        assert!(progress(CATCH_UP_FRAMES, 1).needs_writer());
        assert!(progress(CATCH_UP_FRAMES * 10, 0).needs_writer());
    }

    #[test]
    fn the_writer_is_not_asked_for_a_short_wal_or_after_a_long_pass() {
        assert!(!progress(CATCH_UP_FRAMES - 1, 0).needs_writer());
        assert!(!progress(-1, 0).needs_writer());
        let long_pass = SHORT_PASS.as_millis() as u64 + 1;
        assert!(!progress(CATCH_UP_FRAMES, long_pass).needs_writer());
        assert!(progress(CATCH_UP_FRAMES, long_pass).wal_is_long());
    }

    /// A new database in `dir` with a table of blobs, and two connections to it: one to write,
    /// one to checkpoint.
    fn database(dir: &tempfile::TempDir) -> (PathBuf, Connection, Connection) {
        let path = dir.path().join("wal.db");
        let writer = connection::open(&path, Duration::from_secs(1), false).unwrap();
        let other = connection::open(&path, Duration::from_secs(1), false).unwrap();
        writer.execute_batch("CREATE TABLE t (x BLOB)").unwrap();
        (path, writer, other)
    }

    /// Writes `rows` rows of about a page each.
    fn insert(writer: &Connection, rows: usize) {
        for _ in 0..rows {
            writer
                .execute("INSERT INTO t VALUES (randomblob(3000))", [])
                .unwrap();
        }
    }

    /// What the design rests on: a checkpoint run where nothing else writes copies the whole
    /// WAL, and the next write then starts it over instead of appending.
    #[test]
    fn a_checkpoint_run_by_the_writer_lets_the_wal_start_over() {
        let dir = tempfile::tempdir().unwrap();
        let (_, writer, observer) = database(&dir);
        insert(&writer, 40);
        let catch_up = CatchUp::default();
        catch_up.run_if_requested(&writer); // not requested: nothing happens
        insert(&writer, 1);
        let appended = checkpoint(&observer).unwrap().wal_frames;
        assert!(appended > 40, "the WAL held {appended} frames");

        // That checkpoint copied everything, so the WAL starts over here; then it grows again.
        insert(&writer, 40);
        catch_up.request();
        catch_up.run_if_requested(&writer);
        insert(&writer, 1);
        let restarted = checkpoint(&observer).unwrap().wal_frames;
        assert!(
            restarted < 10,
            "after the writer's checkpoint the WAL held {restarted} frames, not a fresh start"
        );
    }

    #[test]
    fn a_large_wal_file_is_emptied_when_idle_and_a_small_one_is_left() {
        let dir = tempfile::tempdir().unwrap();
        let (path, writer, checkpointer) = database(&dir);
        checkpointer.busy_timeout(Duration::ZERO).unwrap();
        insert(&writer, 40);
        let wal = wal_path(&path);
        let size = || std::fs::metadata(&wal).unwrap().len();
        let written = size();
        cut_back(&checkpointer, &wal, written);
        assert_eq!(size(), written, "a WAL within the limit is left as it is");
        cut_back(&checkpointer, &wal, written / 2);
        assert_eq!(size(), 0, "a WAL beyond the limit is emptied");
        let rows: i64 = writer
            .query_row("SELECT count(*) FROM t", [], |row| row.get(0))
            .unwrap();
        assert_eq!(rows, 40);
    }

    #[test]
    fn the_database_file_is_flushed_after_passes_over_a_long_wal() {
        assert!(progress(FLUSH_FRAMES, 0).leaves_file_unsynced());
        assert!(!progress(FLUSH_FRAMES - 1, 0).leaves_file_unsynced());
        assert!(!progress(-1, 0).leaves_file_unsynced());
    }

    #[test]
    fn sustained_means_a_wal_grown_long_or_started_over_since_the_pass_before() {
        assert!(progress(FLUSH_FRAMES, 0).is_sustained_since(Some(FLUSH_FRAMES - 1)));
        assert!(progress(10, 0).is_sustained_since(Some(FLUSH_FRAMES * 8)));
        // Idle: a long WAL keeps its frames until the next write.
        assert!(!progress(FLUSH_FRAMES * 8, 0).is_sustained_since(Some(FLUSH_FRAMES * 8)));
        // A trickle of writes into a short WAL.
        assert!(!progress(FLUSH_FRAMES - 1, 0).is_sustained_since(Some(10)));
        // Nothing to compare with: the first pass, a failed one, or a checkpoint under way.
        assert!(!progress(FLUSH_FRAMES * 8, 0).is_sustained_since(None));
        assert!(!progress(-1, 0).is_sustained_since(Some(FLUSH_FRAMES)));
        assert!(!progress(FLUSH_FRAMES, 0).is_sustained_since(Some(-1)));
    }

    #[test]
    fn idle_means_the_same_frames_as_the_pass_before() {
        assert!(progress(100, 0).is_idle_since(Some(100)));
        assert!(!progress(101, 0).is_idle_since(Some(100)));
        assert!(!progress(100, 0).is_idle_since(None));
        assert!(!progress(-1, 0).is_idle_since(Some(-1)));
    }
}
