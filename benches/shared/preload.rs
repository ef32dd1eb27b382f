//! Bulk-loads alerts straight into a migrated database, as a long-running deployment would
//! hold them: alert rows spread over 1,000 companies and 50,000 users, each with its first
//! revision (its payload without the metadata, naming one shared rendering and metadata
//! document, as the store writes a fan-out) and its `alert.created` event in the outbox, which
//! is never purged. One statement per table (a recursive CTE on SQLite, `generate_series` on
//! PostgreSQL) instead of millions of requests. Then the database is left as a long-running
//! deployment holds it, not in the middle of absorbing one huge transaction: on SQLite the WAL
//! is copied into the database file and emptied (the server's checkpointer would have done so
//! long ago; otherwise a store opened during the preload copies gigabytes in the background while
//! the harness measures), and no statistics are gathered, since maestro never runs `ANALYZE`
//! there; on PostgreSQL `VACUUM ANALYZE` does what autovacuum would have done and a `CHECKPOINT`
//! writes the loaded pages out, which the checkpointer would otherwise do during the run.
//!
//! Used by `benches/ingest.rs` and `benches/inbox_count.rs` (`--preload N`).

use sqlx::{Connection, Executor};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

/// The payload of a preloaded revision without its metadata, and where the metadata goes back.
const PAYLOAD: &str = r#"{"extRef":"preload","metadata":,"templateId":"NOTIFY_TEMPLATE_ID"}"#;
const METADATA_AT: i64 = 31;
const METADATA: &str = r#"{"partnerProvider":"Groundspan","packages":[]}"#;

pub async fn preload(url: &str, count: u64) -> anyhow::Result<()> {
    use sha2::Digest;
    let count = count as i64;
    let now = OffsetDateTime::now_utc();
    let expires = now + time::Duration::days(30);
    let metadata_hash = sha2::Sha256::digest(METADATA.as_bytes()).to_vec();
    let rendering_hash = vec![0xAB; 32];
    debug_assert_eq!(&PAYLOAD[METADATA_AT as usize - 1..][..2], ":,");
    if let Some(path) = url.strip_prefix("sqlite://") {
        let conn = rusqlite::Connection::open(path)?;
        maestro::store::sqlite::register_sql_functions(&conn)?;
        // Millions of rows go into indexes on scattered keys in one transaction: with SQLite's
        // default 2 MB page cache every insert evicts a page and the WAL fills with the same
        // pages again and again (5 M alerts: over 4.5 GB of WAL after 9 minutes, unfinished).
        // A cache that holds the whole database writes each page once, at the commit.
        conn.pragma_update(None, "cache_size", -4 * 1024 * 1024)?;
        let now = now.format(&Rfc3339)?;
        let expires_ms = (expires.unix_timestamp_nanos() / 1_000_000) as i64;
        let series = "WITH RECURSIVE series(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM series \
                      WHERE x < ?1) ";
        conn.execute_batch("BEGIN")?;
        conn.execute(
            "INSERT INTO renderings (hash, title, html, text) VALUES (?1, 'Offers', \
             '<article>Offers</article>', 'Offers')",
            [&rendering_hash],
        )?;
        conn.execute(
            "INSERT INTO metadata_documents (hash, json) VALUES (?1, ?2)",
            rusqlite::params![metadata_hash, METADATA],
        )?;
        conn.execute(
            &format!(
                "{series} INSERT INTO alerts (id, partner_id, company_id, ext_ref, user_id, \
                 template_id, template_version, msg_type, created_at, expires_at, revision, \
                 body_hash, received_at, updated_at, ext_ref_key) \
                 SELECT printf('alt_preload_%012d', x), 'groundspan', 'company-' || (x % 1000), \
                 'preload-' || x, 'user-' || (x % 50000), 'NOTIFY_TEMPLATE_ID', 1, '', \
                 '2030-01-01T00:00:00Z', ?2, 1, 'h' || x, ?3, ?3, \
                 maestro_ext_ref_key('groundspan', 'company-' || (x % 1000), 'preload-' || x) \
                 FROM series"
            ),
            rusqlite::params![count, expires_ms, now],
        )?;
        // Their extRefs as the writer leaves them once it has caught up (ext_refs.rs).
        conn.execute_batch(
            "INSERT INTO alert_ext_refs (key, alert_seq) \
             SELECT ext_ref_key, seq FROM alerts ORDER BY ext_ref_key; \
             UPDATE alert_ext_refs_settled SET through = (SELECT max(seq) FROM alerts);",
        )?;
        conn.execute(
            &format!(
                "{series} INSERT INTO alert_revisions (alert_id, revision, template_version, \
                 body_hash, payload, rendering_hash, recorded_at, metadata_hash, metadata_at) \
                 SELECT printf('alt_preload_%012d', x), 1, 1, 'h' || x, ?2, ?3, ?4, ?5, ?6 \
                 FROM series"
            ),
            rusqlite::params![
                count,
                PAYLOAD,
                rendering_hash,
                now,
                metadata_hash,
                METADATA_AT
            ],
        )?;
        conn.execute(
            &format!(
                "{series} INSERT INTO outbox (event_type, alert_id, revision, partner_id, \
                 company_id, user_id, occurred_at, template_id, expires_at, recorded_at) \
                 SELECT 'alert.created', printf('alt_preload_%012d', x), 1, 'groundspan', \
                 'company-' || (x % 1000), 'user-' || (x % 50000), ?2, 'NOTIFY_TEMPLATE_ID', \
                 ?3, ?3 FROM series"
            ),
            rusqlite::params![count, now, expires_ms],
        )?;
        conn.execute_batch("COMMIT")?;
        // The store of `inbox_count` is open meanwhile, so closing this connection does not
        // checkpoint; wait for its readers and writer to be idle, then copy and empty the WAL.
        conn.busy_timeout(std::time::Duration::from_secs(60))?;
        let (busy, _, _): (i64, i64, i64) =
            conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?))
            })?;
        anyhow::ensure!(busy == 0, "the preload's WAL could not be checkpointed");
    } else {
        let mut conn = sqlx::PgConnection::connect(url).await?;
        let series = "WITH series(x) AS (SELECT generate_series(1, $1)) ";
        sqlx::query(
            "INSERT INTO renderings (hash, title, html, text) VALUES ($1, 'Offers', \
             '<article>Offers</article>', 'Offers')",
        )
        .bind(&rendering_hash)
        .execute(&mut conn)
        .await?;
        sqlx::query("INSERT INTO metadata_documents (hash, json) VALUES ($1, $2)")
            .bind(&metadata_hash)
            .bind(METADATA)
            .execute(&mut conn)
            .await?;
        sqlx::query(&format!(
            "{series} INSERT INTO alerts (id, partner_id, company_id, ext_ref, user_id, \
             template_id, template_version, msg_type, created_at, expires_at, revision, \
             body_hash, received_at, updated_at) \
             SELECT 'alt_preload_' || lpad(x::text, 12, '0'), 'groundspan', \
             'company-' || (x % 1000), 'preload-' || x, 'user-' || (x % 50000), \
             'NOTIFY_TEMPLATE_ID', 1, '', '2030-01-01T00:00:00Z', $2, 1, 'h' || x, $3, $3 \
             FROM series"
        ))
        .bind(count)
        .bind(expires)
        .bind(now)
        .execute(&mut conn)
        .await?;
        sqlx::query(&format!(
            "{series} INSERT INTO alert_revisions (alert_id, revision, template_version, \
             body_hash, payload, rendering_hash, metadata_hash, metadata_at, recorded_at) \
             SELECT 'alt_preload_' || lpad(x::text, 12, '0'), 1, 1, 'h' || x, $2, $3, $4, $5, \
             $6 FROM series"
        ))
        .bind(count)
        .bind(PAYLOAD)
        .bind(&rendering_hash)
        .bind(&metadata_hash)
        .bind(METADATA_AT as i32)
        .bind(now)
        .execute(&mut conn)
        .await?;
        sqlx::query(&format!(
            "{series} INSERT INTO outbox (event_type, alert_id, revision, partner_id, \
             company_id, user_id, occurred_at, template_id, expires_at) \
             SELECT 'alert.created', 'alt_preload_' || lpad(x::text, 12, '0'), 1, \
             'groundspan', 'company-' || (x % 1000), 'user-' || (x % 50000), $2, \
             'NOTIFY_TEMPLATE_ID', $3 FROM series"
        ))
        .bind(count)
        .bind(now)
        .bind(expires)
        .execute(&mut conn)
        .await?;
        // What autovacuum would have done by then: visibility map set, statistics current;
        // and the loaded pages written out now rather than by a checkpoint during the run.
        conn.execute("VACUUM ANALYZE").await?;
        conn.execute("CHECKPOINT").await?;
    }
    Ok(())
}
