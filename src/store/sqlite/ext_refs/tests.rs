//! The extRef index on a real database file: every generation found, restarts, rollbacks,
//! another writer's alerts, purges, and the migration that made the index.

use std::{path::Path, time::Duration};

use rusqlite::{Connection, params};

use super::*;
use crate::store::sqlite::connection;

fn open(path: &Path) -> Connection {
    let mut db = connection::open(path, Duration::from_secs(5), false).unwrap();
    connection::migrate(&mut db).unwrap();
    db
}

/// Inserts a bare alert of partner `p`, company `c`; returns its `seq`.
fn insert_alert(db: &Connection, ext_ref: &str) -> i64 {
    db.execute(
        "INSERT INTO alerts (id, partner_id, company_id, ext_ref, user_id, template_id, \
         template_version, msg_type, created_at, expires_at, revision, body_hash, received_at, \
         updated_at, ext_ref_key) VALUES (?1, 'p', 'c', ?2, 'u', 'T', 1, '', 'x', 0, 1, 'h', \
         'x', 'x', maestro_ext_ref_key('p', 'c', ?2))",
        params![format!("alt_{ext_ref}"), ext_ref],
    )
    .unwrap();
    db.last_insert_rowid()
}

fn key(ext_ref: &str) -> Key {
    ext_ref_key("p", "c", ext_ref)
}

/// Creates the alerts `ext_refs` in one transaction as the writer does: found first, created
/// and staged when new, a slice written, committed.
fn create_all(db: &mut Connection, index: &mut ExtRefIndex, ext_refs: &[&str]) -> Vec<i64> {
    let tx = db.transaction().unwrap();
    index.begin(&tx).unwrap();
    let mut seqs = Vec::new();
    for ext_ref in ext_refs {
        assert_eq!(
            index.find(&tx, &key(ext_ref)).unwrap(),
            None,
            "{ext_ref} is new"
        );
        let seq = insert_alert(&tx, ext_ref);
        index.stage(key(ext_ref), seq);
        seqs.push(seq);
    }
    index.write_slice(&tx, ext_refs.len()).unwrap();
    tx.commit().unwrap();
    index.committed();
    seqs
}

/// Creates `count` alerts (`ref-00000`, …), `per_transaction` at a time; their extRefs and
/// `seq`s.
fn create_many(
    db: &mut Connection,
    index: &mut ExtRefIndex,
    count: usize,
    per_transaction: usize,
) -> Vec<(String, i64)> {
    let names: Vec<String> = (0..count).map(|n| format!("ref-{n:05}")).collect();
    let mut created = Vec::new();
    for chunk in names.chunks(per_transaction) {
        let chunk: Vec<&str> = chunk.iter().map(String::as_str).collect();
        let seqs = create_all(db, index, &chunk);
        created.extend(chunk.into_iter().map(String::from).zip(seqs));
    }
    created
}

fn find(db: &mut Connection, index: &mut ExtRefIndex, ext_ref: &str) -> Option<i64> {
    let tx = db.transaction().unwrap();
    index.begin(&tx).unwrap();
    let found = index.find(&tx, &key(ext_ref)).unwrap();
    tx.commit().unwrap();
    index.committed();
    found
}

fn in_table(db: &Connection) -> i64 {
    db.query_row("SELECT count(*) FROM alert_ext_refs", [], |row| row.get(0))
        .unwrap()
}

fn settled_through(db: &Connection) -> i64 {
    db.query_row("SELECT through FROM alert_ext_refs_settled", [], |row| {
        row.get(0)
    })
    .unwrap()
}

#[test]
fn keys_differ_wherever_the_parts_are_cut() {
    assert_ne!(ext_ref_key("ab", "c", "d"), ext_ref_key("a", "bc", "d"));
    assert_ne!(ext_ref_key("a", "b", "cd"), ext_ref_key("a", "bc", "d"));
    assert_eq!(ext_ref_key("a", "b", "c"), ext_ref_key("a", "b", "c"));
}

#[test]
fn every_alert_is_found_while_its_key_moves_from_memory_to_the_table_and_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index.db");
    let mut db = open(&path);
    let mut index = ExtRefIndex::with_freeze_at(40);
    let names: Vec<String> = (0..300).map(|n| format!("ref-{n:03}")).collect();
    let mut created = Vec::new();
    for chunk in names.chunks(7) {
        let chunk: Vec<&str> = chunk.iter().map(String::as_str).collect();
        let seqs = create_all(&mut db, &mut index, &chunk);
        created.extend(chunk.into_iter().zip(seqs));
        for (ext_ref, seq) in &created {
            assert_eq!(find(&mut db, &mut index, ext_ref), Some(*seq), "{ext_ref}");
        }
    }
    // Generations were frozen and written out, with the mark of how far.
    let mark = settled_through(&db);
    assert!((150..300).contains(&mark), "settled through {mark}");
    assert!(in_table(&db) >= mark, "{} keys in the table", in_table(&db));
    assert_eq!(find(&mut db, &mut index, "ref-never"), None);

    // A writer that starts finds them all: those in the table and those it reads back.
    drop(db);
    let mut db = open(&path);
    let mut restarted = ExtRefIndex::with_freeze_at(40);
    for (ext_ref, seq) in &created {
        assert_eq!(
            find(&mut db, &mut restarted, ext_ref),
            Some(*seq),
            "{ext_ref}"
        );
    }
    let read_back = restarted.recent.len() + restarted.frozen.len();
    assert_eq!(
        read_back as i64,
        300 - mark,
        "only the alerts after the mark are read back"
    );
}

/// The writer reads the index as it starts: a look-up outside any write already finds the
/// alerts whose keys are in the table and those read back from their rows.
#[test]
fn a_warmed_up_index_finds_every_stored_alert_before_the_first_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index.db");
    let mut db = open(&path);
    let mut index = ExtRefIndex::with_freeze_at(8);
    let created = create_many(&mut db, &mut index, 60, 5);
    let mark = settled_through(&db);
    assert!((1..60).contains(&mark), "settled through {mark}");

    drop(db);
    let mut db = open(&path);
    let mut restarted = ExtRefIndex::with_freeze_at(8);
    restarted.warm_up(&mut db).unwrap();
    for (ext_ref, seq) in &created {
        assert_eq!(
            restarted.find(&db, &key(ext_ref)).unwrap(),
            Some(*seq),
            "{ext_ref}"
        );
    }
    assert_eq!(restarted.find(&db, &key("ref-never")).unwrap(), None);
    assert_eq!(restarted.table_len as i64, in_table(&db));
    // A second warm-up, or the first write's begin, reads nothing twice.
    restarted.warm_up(&mut db).unwrap();
    assert_eq!(
        find(&mut db, &mut restarted, &created[0].0),
        Some(created[0].1)
    );
    assert_eq!(restarted.table_len as i64, in_table(&db));
}

#[test]
fn a_rolled_back_transaction_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let mut db = open(&dir.path().join("index.db"));
    let mut index = ExtRefIndex::with_freeze_at(4);
    create_all(&mut db, &mut index, &["a", "b", "c", "d"]);
    assert_eq!(index.frozen.len(), 4, "frozen once four were recent");

    let tx = db.transaction().unwrap();
    index.begin(&tx).unwrap();
    let seq = insert_alert(&tx, "e");
    index.stage(key("e"), seq);
    index.write_slice(&tx, 1).unwrap();
    drop(tx);
    index.rolled_back();

    assert_eq!(find(&mut db, &mut index, "e"), None);
    assert_eq!(
        index.frozen.len(),
        4,
        "the rolled-back slice is still to write"
    );
    assert_eq!(in_table(&db), 0);
    assert_eq!(settled_through(&db), 0);
    // The next transaction writes them.
    create_all(&mut db, &mut index, &["e"]);
    assert_eq!(in_table(&db), 4);
    assert_eq!(settled_through(&db), 4);
    assert!(index.frozen.is_empty());
}

#[test]
fn a_generation_grows_with_the_table() {
    let dir = tempfile::tempdir().unwrap();
    let mut db = open(&dir.path().join("index.db"));
    let mut index = ExtRefIndex::with_freeze_at(4);
    // As if the table held 80 keys: a generation freezes at an eighth of them, 10.
    index.warm_up(&mut db).unwrap();
    index.table_len = 80;
    create_all(
        &mut db,
        &mut index,
        &["a", "b", "c", "d", "e", "f", "g", "h", "i"],
    );
    assert!(index.frozen.is_empty(), "nine are not an eighth of 80");
    create_all(&mut db, &mut index, &["j"]);
    assert_eq!(index.frozen.len(), 10);
    assert!(index.recent.is_empty());
}

#[test]
fn alerts_another_writer_created_are_found() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index.db");
    let mut first = open(&path);
    let mut second = open(&path);
    let mut first_index = ExtRefIndex::with_freeze_at(3);
    let mut second_index = ExtRefIndex::with_freeze_at(3);
    // Both loaded before either created anything.
    assert_eq!(find(&mut first, &mut first_index, "x"), None);
    assert_eq!(find(&mut second, &mut second_index, "x"), None);
    for round in 0..5 {
        let a = format!("first-{round}");
        let b = format!("second-{round}");
        let [a_seq] = create_all(&mut first, &mut first_index, &[&a])[..] else {
            panic!()
        };
        let [b_seq] = create_all(&mut second, &mut second_index, &[&b])[..] else {
            panic!()
        };
        assert_eq!(find(&mut second, &mut second_index, &a), Some(a_seq));
        assert_eq!(find(&mut first, &mut first_index, &b), Some(b_seq));
    }
}

#[test]
fn a_purged_alert_leaves_the_table_and_is_not_written_once_gone() {
    let dir = tempfile::tempdir().unwrap();
    let mut db = open(&dir.path().join("index.db"));
    let mut index = ExtRefIndex::with_freeze_at(2);
    create_all(&mut db, &mut index, &["a", "b"]);
    // "a" is purged while its key waits in memory: the slice skips it.
    db.execute("DELETE FROM alerts WHERE ext_ref = 'a'", [])
        .unwrap();
    create_all(&mut db, &mut index, &["c"]);
    let keys: Vec<i64> = db
        .prepare("SELECT alert_seq FROM alert_ext_refs ORDER BY alert_seq")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(keys, vec![2], "only b's key is written");
    // "b" is purged after: its row in the table goes with it.
    db.execute("DELETE FROM alerts WHERE ext_ref = 'b'", [])
        .unwrap();
    assert_eq!(in_table(&db), 0);
}

#[test]
fn the_migration_keeps_every_alert_its_revisions_and_its_ext_ref() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    {
        // A database as the release before the index left it, with an alert and a revision.
        let db = Connection::open(&path).unwrap();
        register_key_function(&db).unwrap();
        for sql in &connection::MIGRATIONS[..14] {
            db.execute_batch(sql).unwrap();
        }
        db.pragma_update(None, "user_version", 14).unwrap();
        db.execute_batch(
            "INSERT INTO alerts (id, partner_id, company_id, ext_ref, user_id, template_id, \
             template_version, msg_type, created_at, expires_at, revision, body_hash, \
             received_at, updated_at) VALUES ('alt_old', 'p', 'c', 'old-ref', 'u', 'T', 1, '', \
             'x', 0, 1, 'h', 'x', 'x'); \
             INSERT INTO alert_revisions (alert_id, revision, template_version, body_hash, \
             payload, recorded_at) VALUES ('alt_old', 1, 1, 'h', '{}', 'x');",
        )
        .unwrap();
    }
    let mut db = open(&path);
    let revisions: i64 = db
        .query_row("SELECT count(*) FROM alert_revisions", [], |row| row.get(0))
        .unwrap();
    assert_eq!(revisions, 1, "the rebuild did not cascade to the revisions");
    let foreign_keys: i64 = db
        .query_row("PRAGMA foreign_keys", [], |row| row.get(0))
        .unwrap();
    assert_eq!(
        foreign_keys, 1,
        "foreign keys are back on after the migration"
    );
    assert_eq!(settled_through(&db), 1);
    let mut index = ExtRefIndex::default();
    assert_eq!(find(&mut db, &mut index, "old-ref"), Some(1));
    let [seq] = create_all(&mut db, &mut index, &["new-ref"])[..] else {
        panic!()
    };
    assert_eq!(seq, 2, "sequence numbers continue after the old rowids");
}
