-- Finding an alert by its extRef without writing a random index page per alert (issue 17).
--
-- The unique (partner_id, company_id, ext_ref) index put every alert with a partner's random
-- extRef (a UUID) on a leaf of its own: each commit rewrote a 4 KiB page per alert, nearly half
-- of the WAL, and the checkpoints copied those pages back all over the file. The alerts now
-- carry a digest of their extRef (`ext_ref_key`), and `alert_ext_refs` maps digests to alerts.
-- The writer adds the recent alerts to it in key order, a slice per commit, many to a page,
-- and keeps those not written there yet in memory (ext_refs.rs); `alert_ext_refs_settled`
-- holds the alerts' `seq` up to which every alert is in `alert_ext_refs`, so that a restarted
-- writer reads back only the alerts after it.
--
-- SQLite drops no constraint in place, so the table is rebuilt, as its documentation
-- describes (the migration runs with foreign keys off: dropping the old table must not
-- cascade to the revisions). `seq` is the old rowid, now AUTOINCREMENT: the watermark above
-- counts on sequence numbers never being reused after a purge.
CREATE TABLE alerts_rebuilt (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    id               TEXT NOT NULL UNIQUE,
    partner_id       TEXT NOT NULL,
    company_id       TEXT NOT NULL,
    ext_ref          TEXT NOT NULL,
    user_id          TEXT NOT NULL,
    template_id      TEXT NOT NULL,
    template_version INTEGER NOT NULL,
    msg_type         TEXT NOT NULL,
    topic            TEXT,
    title            TEXT,
    created_at       TEXT NOT NULL,          -- as the partner sent it (RFC 3339)
    expires_at       INTEGER NOT NULL,       -- unix milliseconds, for range queries
    revision         INTEGER NOT NULL,
    body_hash        TEXT NOT NULL,
    received_at      TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    read_revision    INTEGER,
    dismissed_at     TEXT,
    expired_at       TEXT,
    withdrawn_at     TEXT,
    snoozed_until    INTEGER,
    -- maestro_ext_ref_key(partner_id, company_id, ext_ref): 16 bytes of a SHA-256.
    ext_ref_key      BLOB NOT NULL
);
INSERT INTO alerts_rebuilt (seq, id, partner_id, company_id, ext_ref, user_id, template_id,
    template_version, msg_type, topic, title, created_at, expires_at, revision, body_hash,
    received_at, updated_at, read_revision, dismissed_at, expired_at, withdrawn_at,
    snoozed_until, ext_ref_key)
SELECT rowid, id, partner_id, company_id, ext_ref, user_id, template_id, template_version,
    msg_type, topic, title, created_at, expires_at, revision, body_hash, received_at, updated_at,
    read_revision, dismissed_at, expired_at, withdrawn_at, snoozed_until,
    maestro_ext_ref_key(partner_id, company_id, ext_ref)
FROM alerts ORDER BY rowid;
DROP TABLE alerts;
ALTER TABLE alerts_rebuilt RENAME TO alerts;

-- The indexes and triggers of the old table, as migrations 0005 and 0013 made them.
CREATE INDEX alerts_inbox ON alerts (company_id, user_id, id);
CREATE INDEX alerts_to_expire ON alerts (expires_at) WHERE expired_at IS NULL;
CREATE INDEX alerts_to_purge ON alerts (expires_at) WHERE expired_at IS NOT NULL;
CREATE INDEX alerts_snoozed ON alerts (snoozed_until) WHERE snoozed_until IS NOT NULL;
CREATE INDEX alerts_snoozed_by_user ON alerts (company_id, user_id, snoozed_until)
    WHERE snoozed_until IS NOT NULL;
CREATE INDEX alerts_unread ON alerts (company_id, user_id, expires_at)
    WHERE expired_at IS NULL AND dismissed_at IS NULL AND withdrawn_at IS NULL
        AND snoozed_until IS NULL
        AND (read_revision IS NULL OR read_revision < revision);
CREATE TRIGGER alerts_count_insert AFTER INSERT ON alerts
    WHEN NEW.expired_at IS NULL AND NEW.dismissed_at IS NULL AND NEW.withdrawn_at IS NULL
        AND NEW.snoozed_until IS NULL
        AND (NEW.read_revision IS NULL OR NEW.read_revision < NEW.revision)
BEGIN
    INSERT INTO inbox_counters (company_id, user_id, unread) VALUES (NEW.company_id, NEW.user_id, 1)
        ON CONFLICT (company_id, user_id) DO UPDATE SET unread = unread + 1;
END;
CREATE TRIGGER alerts_count_update
    AFTER UPDATE OF revision, read_revision, dismissed_at, withdrawn_at, expired_at, snoozed_until
    ON alerts
    WHEN (
        OLD.expired_at IS NULL AND OLD.dismissed_at IS NULL AND OLD.withdrawn_at IS NULL
        AND OLD.snoozed_until IS NULL
        AND (OLD.read_revision IS NULL OR OLD.read_revision < OLD.revision)
    ) <> (
        NEW.expired_at IS NULL AND NEW.dismissed_at IS NULL AND NEW.withdrawn_at IS NULL
        AND NEW.snoozed_until IS NULL
        AND (NEW.read_revision IS NULL OR NEW.read_revision < NEW.revision))
BEGIN
    INSERT INTO inbox_counters (company_id, user_id, unread)
        VALUES (NEW.company_id, NEW.user_id, (
        NEW.expired_at IS NULL AND NEW.dismissed_at IS NULL AND NEW.withdrawn_at IS NULL
        AND NEW.snoozed_until IS NULL
        AND (NEW.read_revision IS NULL OR NEW.read_revision < NEW.revision)
    ) - (
        OLD.expired_at IS NULL AND OLD.dismissed_at IS NULL AND OLD.withdrawn_at IS NULL
        AND OLD.snoozed_until IS NULL
        AND (OLD.read_revision IS NULL OR OLD.read_revision < OLD.revision)))
        ON CONFLICT (company_id, user_id) DO UPDATE SET unread = unread + excluded.unread;
END;
CREATE TRIGGER alerts_count_delete AFTER DELETE ON alerts
    WHEN OLD.expired_at IS NULL AND OLD.dismissed_at IS NULL AND OLD.withdrawn_at IS NULL
        AND OLD.snoozed_until IS NULL
        AND (OLD.read_revision IS NULL OR OLD.read_revision < OLD.revision)
BEGIN
    UPDATE inbox_counters SET unread = unread - 1
        WHERE company_id = OLD.company_id AND user_id = OLD.user_id;
END;

-- extRef digest -> alert. An alert purged leaves it with its row.
CREATE TABLE alert_ext_refs (
    key       BLOB PRIMARY KEY,
    alert_seq INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO alert_ext_refs (key, alert_seq) SELECT ext_ref_key, seq FROM alerts ORDER BY ext_ref_key;
CREATE TRIGGER alerts_ext_ref_purge AFTER DELETE ON alerts
BEGIN
    DELETE FROM alert_ext_refs WHERE key = OLD.ext_ref_key AND alert_seq = OLD.seq;
END;

-- One row: every alert up to this seq is in alert_ext_refs.
CREATE TABLE alert_ext_refs_settled (through INTEGER NOT NULL);
INSERT INTO alert_ext_refs_settled (through) SELECT coalesce(max(seq), 0) FROM alerts;
