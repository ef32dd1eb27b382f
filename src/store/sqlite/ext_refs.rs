//! Finding an alert by its extRef without writing a random index page per alert.
//!
//! Partners name their alerts with random UUIDs. In a unique index on the extRef each new
//! alert lands on a leaf of its own, so every group commit rewrote one 4 KiB page per alert
//! (nearly half of the WAL) and the checkpoints then wrote those pages back all over the
//! database file, the stalls behind the ingest tail (docs/PERFORMANCE.md). Here the digests of
//! the extRefs (`ext_ref_key`) go into `alert_ext_refs` in key order, in slices, long after
//! their alerts: a slice of keys next to one another shares its pages, so a page written holds
//! many new keys instead of one.
//!
//! Until then an alert's key is in this process's memory, in two generations: `recent` takes
//! every alert committed since the last freeze; once it holds `FREEZE_AT` keys (an eighth of
//! the table's, when more) and the previous generation is written out, it becomes `frozen`,
//! whose keys each alert write's transaction writes a slice of (`SLICE_PER_WRITE` per write),
//! in key order. When the last slice is
//! written, the same transaction records that every alert up to the frozen generation's
//! highest `seq` is in `alert_ext_refs` (`alert_ext_refs_settled`). So a writer that starts
//! reads back only the alerts after that mark, and a crash loses nothing: the alert rows are
//! the truth, the table and the memory only find them.
//!
//! A new extRef is in neither generation nor the table. So that proving it is not in the table
//! does not read a random leaf of it per alert, a Bloom filter holds every key written there
//! (read as the process's writer starts, then kept up by the slices): a key it has never seen
//! is not looked up.
//!
//! Every look-up is checked against the alert row it leads to (owner and extRef compared), so
//! an entry of a purged alert (whose key a new alert may take) is never taken for a live one.
//! Another process writing to the same file (the CLI, a second server) is caught up with at the
//! start of each transaction: its alerts have `seq` numbers above those this process has seen.

use std::collections::BTreeMap;

use fastbloom::BloomFilter;
use rusqlite::{
    Connection, OptionalExtension,
    functions::{Context, FunctionFlags},
    params,
};
use sha2::{Digest, Sha256};

/// An extRef's digest within its partner and company.
pub(super) type Key = [u8; 16];

/// Keys held in memory before they are frozen and written out: at least 131,072 (about 10 MB
/// in both generations), else an eighth of the table's keys, so that a generation puts about
/// eight keys on each page of the table it writes (a page holds some 140) however large the
/// table grows; at most `MAX_FREEZE_AT` (about 70 MB, from 8 million alerts on). A writer that
/// starts reads back up to one and a half generations.
const FREEZE_AT: usize = 131_072;
const TABLE_SHARE: usize = 8;
const MAX_FREEZE_AT: usize = 1 << 20;
/// Frozen keys written per alert write of a transaction: twice the intake, so a frozen
/// generation is written out before the next one is full.
const SLICE_PER_WRITE: usize = 2;
/// Frozen keys written by any transaction with alert writes, however few.
const MIN_SLICE: usize = 16;
/// The filter of the table's keys is sized when the writer reads them, for twice the alerts
/// made so far and at least this many; past that its false positives grow (each costing a
/// look-up, not a wrong answer) until the next start sizes it anew.
const MIN_FILTERED: usize = 1 << 20;
/// False positives of that filter while within its size: the share of new extRefs still
/// looked up in the table.
const FILTER_FALSE_POSITIVES: f64 = 0.01;

/// The key of `ext_ref` within `partner_id` and `company_id`: 16 bytes of the SHA-256 of the
/// three, each preceded by its length (so that no two triples run together alike).
pub(super) fn ext_ref_key(partner_id: &str, company_id: &str, ext_ref: &str) -> Key {
    let mut digest = Sha256::new();
    for part in [partner_id, company_id, ext_ref] {
        digest.update((part.len() as u64).to_be_bytes());
        digest.update(part.as_bytes());
    }
    let mut key = [0; 16];
    key.copy_from_slice(&digest.finalize()[..16]);
    key
}

/// `maestro_ext_ref_key(partner_id, company_id, ext_ref)` for SQL (migration 0015 fills the
/// column with it).
pub(super) fn register_key_function(db: &Connection) -> rusqlite::Result<()> {
    db.create_scalar_function(
        "maestro_ext_ref_key",
        3,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |context: &Context<'_>| {
            let part = |i| context.get::<String>(i);
            Ok(ext_ref_key(&part(0)?, &part(1)?, &part(2)?).to_vec())
        },
    )
}

/// The highest `seq` ever given to an alert (0 before the first).
fn last_seq(db: &Connection) -> rusqlite::Result<i64> {
    db.prepare_cached("SELECT coalesce(max(seq), 0) FROM alerts")?
        .query_row([], |row| row.get(0))
}

/// A key's hash for the filter: its first 8 bytes, already uniform (they are a SHA-256's).
fn filter_hash(key: &Key) -> u64 {
    u64::from_le_bytes(key[..8].try_into().expect("a key is 16 bytes"))
}

/// The writer's index of extRefs (one per writer connection; see the module's note).
pub(super) struct ExtRefIndex {
    loaded: bool,
    /// Ordered like `frozen`, so that freezing is a move, not a sort inside a commit (a sort of
    /// 131,072 keys held a batch up by 40-150 ms).
    recent: BTreeMap<Key, i64>,
    frozen: BTreeMap<Key, i64>,
    /// Every alert up to this `seq` is in `frozen` or in the table.
    frozen_through: i64,
    /// The highest `seq` taken into `recent`.
    seen_through: i64,
    /// The alerts created by the transaction under way, in `recent` once it commits.
    staged: Vec<(Key, i64)>,
    /// The frozen keys the transaction under way wrote, out of `frozen` once it commits.
    written: Vec<Key>,
    /// The fewest keys a generation freezes with (`FREEZE_AT`; fewer in tests).
    freeze_at: usize,
    /// Every key written to `alert_ext_refs` (and perhaps a few others): a key it has never
    /// seen is new, and is not looked up in the table, whose leaves a look-up would read into
    /// the writer's page cache one random page per alert (at 5 million alerts, part of what
    /// cost the ingest 20-30 % of its throughput; docs/PERFORMANCE.md).
    table_keys: BloomFilter,
    /// About how many keys the table holds (read at the start, and written since).
    table_len: usize,
}

impl Default for ExtRefIndex {
    fn default() -> Self {
        Self::with_freeze_at(FREEZE_AT)
    }
}

impl ExtRefIndex {
    pub(super) fn with_freeze_at(freeze_at: usize) -> Self {
        ExtRefIndex {
            loaded: false,
            recent: BTreeMap::new(),
            frozen: BTreeMap::new(),
            frozen_through: 0,
            seen_through: 0,
            staged: Vec::new(),
            written: Vec::new(),
            freeze_at,
            table_keys: BloomFilter::with_num_bits(64).expected_items(1),
            table_len: 0,
        }
    }

    /// Reads the table's keys into the filter and the alerts not yet in the table back into
    /// memory, in a read transaction of its own. The writer does this as it starts, before it
    /// takes its first job, so that the alerts written after a start do not wait for it unless
    /// they come within its time (0.6 s with 5 million alerts stored); should it fail, the
    /// first write's `begin` tries again.
    pub(super) fn warm_up(&mut self, db: &mut Connection) -> rusqlite::Result<()> {
        if self.loaded {
            return Ok(());
        }
        let snapshot = db.transaction()?;
        self.load(&snapshot)?;
        snapshot.commit()
    }

    fn load(&mut self, db: &Connection) -> rusqlite::Result<()> {
        let settled: i64 =
            db.query_row("SELECT through FROM alert_ext_refs_settled", [], |row| {
                row.get(0)
            })?;
        self.frozen_through = settled;
        self.seen_through = settled;
        self.read_table_keys(db)?;
        self.read_back(db)?;
        self.loaded = true;
        Ok(())
    }

    /// Starts a transaction's use of the index: reads back the alerts not yet in the table the
    /// first time (unless `warm_up` did), and those another process created since, after that.
    pub(super) fn begin(&mut self, db: &Connection) -> rusqlite::Result<()> {
        debug_assert!(self.staged.is_empty() && self.written.is_empty());
        if !self.loaded {
            self.load(db)?;
        } else if last_seq(db)? > self.seen_through {
            self.read_back(db)?;
        }
        Ok(())
    }

    /// Fills the filter with the table's keys (a second per few million on a 2-core machine,
    /// once per process, as its writer starts).
    fn read_table_keys(&mut self, db: &Connection) -> rusqlite::Result<()> {
        self.table_len = 0; // counted anew should an earlier try have failed part way
        // `seq` is never reused, so no more keys than alerts were ever made are in the table.
        let made = last_seq(db)?;
        let expected = (made.max(0) as usize).saturating_mul(2).max(MIN_FILTERED);
        self.table_keys =
            BloomFilter::with_false_pos(FILTER_FALSE_POSITIVES).expected_items(expected);
        let mut statement = db.prepare("SELECT key FROM alert_ext_refs")?;
        let mut rows = statement.query([])?;
        while let Some(row) = rows.next()? {
            if let Ok(key) = Key::try_from(row.get_ref(0)?.as_blob()?) {
                self.table_keys.insert_hash(filter_hash(&key));
                self.table_len += 1;
            }
        }
        Ok(())
    }

    /// Takes the alerts after `seen_through` into `recent`.
    fn read_back(&mut self, db: &Connection) -> rusqlite::Result<()> {
        let mut statement =
            db.prepare_cached("SELECT seq, ext_ref_key FROM alerts WHERE seq > ?1 ORDER BY seq")?;
        let mut rows = statement.query([self.seen_through])?;
        while let Some(row) = rows.next()? {
            let seq: i64 = row.get(0)?;
            let key: Vec<u8> = row.get(1)?;
            if let Ok(key) = Key::try_from(key.as_slice()) {
                self.recent.insert(key, seq);
            }
            self.seen_through = self.seen_through.max(seq);
        }
        Ok(())
    }

    /// The `seq` of the alert that `key` leads to, if any; the caller checks the alert's row.
    pub(super) fn find(&self, db: &Connection, key: &Key) -> rusqlite::Result<Option<i64>> {
        // The latest first: a key staged or recent outranks an older entry of a purged alert.
        if let Some((_, seq)) = self.staged.iter().rev().find(|(staged, _)| staged == key) {
            return Ok(Some(*seq));
        }
        if let Some(seq) = self.recent.get(key).or_else(|| self.frozen.get(key)) {
            return Ok(Some(*seq));
        }
        if !self.table_keys.contains_hash(filter_hash(key)) {
            return Ok(None);
        }
        db.prepare_cached("SELECT alert_seq FROM alert_ext_refs WHERE key = ?1")?
            .query_row([&key[..]], |row| row.get(0))
            .optional()
    }

    /// Records an alert the transaction under way created.
    pub(super) fn stage(&mut self, key: Key, seq: i64) {
        self.staged.push((key, seq));
    }

    /// Writes the next slice of the frozen generation, for a transaction of `writes` alert
    /// writes; with the last slice, the mark that every alert up to it is in the table.
    pub(super) fn write_slice(&mut self, db: &Connection, writes: usize) -> rusqlite::Result<()> {
        if self.frozen.is_empty() {
            return Ok(());
        }
        let slice = (writes * SLICE_PER_WRITE).max(MIN_SLICE);
        // An alert purged while its key waited here is not written (its row is gone).
        let mut insert = db.prepare_cached(
            "INSERT OR REPLACE INTO alert_ext_refs (key, alert_seq) \
             SELECT ?1, ?2 WHERE EXISTS (SELECT 1 FROM alerts WHERE seq = ?2)",
        )?;
        for (key, seq) in self.frozen.iter().take(slice) {
            insert.execute(params![&key[..], seq])?;
            // Before the commit: should it roll back, the filter only errs on the safe side.
            self.table_keys.insert_hash(filter_hash(key));
            self.table_len += 1;
            self.written.push(*key);
        }
        if self.written.len() == self.frozen.len() {
            db.prepare_cached("UPDATE alert_ext_refs_settled SET through = max(through, ?1)")?
                .execute([self.frozen_through])?;
        }
        Ok(())
    }

    /// The transaction committed: what it staged and wrote is settled.
    pub(super) fn committed(&mut self) {
        for key in self.written.drain(..) {
            self.frozen.remove(&key);
        }
        for (key, seq) in self.staged.drain(..) {
            self.recent.insert(key, seq);
            self.seen_through = self.seen_through.max(seq);
        }
        let freeze_at = (self.table_len / TABLE_SHARE).clamp(self.freeze_at, MAX_FREEZE_AT);
        if self.frozen.is_empty() && self.recent.len() >= freeze_at {
            self.frozen = std::mem::take(&mut self.recent);
            self.frozen_through = self.seen_through;
        }
    }

    /// The transaction rolled back: nothing it staged or wrote happened.
    pub(super) fn rolled_back(&mut self) {
        self.staged.clear();
        self.written.clear();
    }
}

#[cfg(test)]
mod tests;
