-- Ingestion at the rate of the embedded default (docs/PERFORMANCE.md, "PostgreSQL ingestion"):
-- alert writes are committed in batches (postgres/batch.rs), and what a fan-out shares is
-- stored once, as on SQLite (its migrations 0006 and 0007).

-- Renderings stored once per distinct content. Revisions written before this keep their own
-- `rendered_*` columns; newer ones leave them empty and name their rendering by hash.
CREATE TABLE renderings (
    hash  BYTEA PRIMARY KEY,            -- SHA-256 of the title, card and text, length-prefixed
    title TEXT NOT NULL,
    html  TEXT NOT NULL,
    text  TEXT NOT NULL
);
-- Metadata documents stored once: a revision keeps its payload without the metadata's value,
-- names the document, and says where the value goes back (`metadata_at`, a byte offset).
CREATE TABLE metadata_documents (
    hash BYTEA PRIMARY KEY,             -- SHA-256 of the canonical JSON
    json TEXT NOT NULL
);
-- The foreign keys are what keeps a purge from taking a document that a revision committed
-- after the purge looked names: one of the two transactions fails instead (a batch is then
-- retried write by write, and stores the document again). Nullable columns without a default
-- are added without rewriting the table.
ALTER TABLE alert_revisions
    ADD COLUMN rendering_hash BYTEA REFERENCES renderings (hash),
    ADD COLUMN metadata_hash  BYTEA REFERENCES metadata_documents (hash),
    ADD COLUMN metadata_at    INTEGER;
-- For the purge: a document goes when no revision names it any more.
CREATE INDEX alert_revisions_by_rendering ON alert_revisions (rendering_hash)
    WHERE rendering_hash IS NOT NULL;
CREATE INDEX alert_revisions_by_metadata ON alert_revisions (metadata_hash)
    WHERE metadata_hash IS NOT NULL;

-- The unread counters (migration 0011) kept per statement rather than per row: a batch of
-- alerts for one user changes its counter once, with one upsert, instead of once per alert.
-- Transition tables are allowed only on triggers of one event without a column list, hence
-- three triggers; counters are upserted in key order, so that two statements changing several
-- users' counters lock them in the same order.
DROP TRIGGER alerts_count_unread ON alerts;
DROP FUNCTION inbox_count_alert();

CREATE FUNCTION inbox_count_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO inbox_counters AS c (company_id, user_id, unread)
        SELECT n.company_id, n.user_id, COUNT(*) FROM inserted n
        WHERE n.expired_at IS NULL AND n.dismissed_at IS NULL AND n.withdrawn_at IS NULL
            AND n.snoozed_until IS NULL
            AND (n.read_revision IS NULL OR n.read_revision < n.revision)
        GROUP BY n.company_id, n.user_id ORDER BY n.company_id, n.user_id
        ON CONFLICT (company_id, user_id) DO UPDATE SET unread = c.unread + EXCLUDED.unread;
    RETURN NULL;
END
$$;

CREATE FUNCTION inbox_count_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO inbox_counters AS c (company_id, user_id, unread)
        SELECT o.company_id, o.user_id, -COUNT(*) FROM deleted o
        WHERE o.expired_at IS NULL AND o.dismissed_at IS NULL AND o.withdrawn_at IS NULL
            AND o.snoozed_until IS NULL
            AND (o.read_revision IS NULL OR o.read_revision < o.revision)
        GROUP BY o.company_id, o.user_id ORDER BY o.company_id, o.user_id
        ON CONFLICT (company_id, user_id) DO UPDATE SET unread = c.unread + EXCLUDED.unread;
    RETURN NULL;
END
$$;

CREATE FUNCTION inbox_count_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO inbox_counters AS c (company_id, user_id, unread)
        SELECT company_id, user_id, SUM(delta) FROM (
            SELECT n.company_id, n.user_id, 1 AS delta FROM updated_to n
            WHERE n.expired_at IS NULL AND n.dismissed_at IS NULL AND n.withdrawn_at IS NULL
                AND n.snoozed_until IS NULL
                AND (n.read_revision IS NULL OR n.read_revision < n.revision)
            UNION ALL
            SELECT o.company_id, o.user_id, -1 FROM updated_from o
            WHERE o.expired_at IS NULL AND o.dismissed_at IS NULL AND o.withdrawn_at IS NULL
                AND o.snoozed_until IS NULL
                AND (o.read_revision IS NULL OR o.read_revision < o.revision)
        ) AS changes
        GROUP BY company_id, user_id HAVING SUM(delta) <> 0 ORDER BY company_id, user_id
        ON CONFLICT (company_id, user_id) DO UPDATE SET unread = c.unread + EXCLUDED.unread;
    RETURN NULL;
END
$$;

CREATE TRIGGER alerts_count_inserted AFTER INSERT ON alerts
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION inbox_count_inserted();
CREATE TRIGGER alerts_count_deleted AFTER DELETE ON alerts
    REFERENCING OLD TABLE AS deleted
    FOR EACH STATEMENT EXECUTE FUNCTION inbox_count_deleted();
CREATE TRIGGER alerts_count_updated AFTER UPDATE ON alerts
    REFERENCING OLD TABLE AS updated_from NEW TABLE AS updated_to
    FOR EACH STATEMENT EXECUTE FUNCTION inbox_count_updated();
