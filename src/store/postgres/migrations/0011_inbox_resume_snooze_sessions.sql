-- What an inbox user and the host product's front end can count on (SPEC §5): a resumable
-- stream, snooze, exact unread counts, sessions that sign out on the server, single-use links.

-- A resumed stream replays one user's events after an id: a range of this index, however long
-- the outbox grows. The outbox is not purged (see docs/ARCHITECTURE.md, "the outbox").
CREATE INDEX outbox_by_user ON outbox (company_id, user_id, id);

-- Snooze: the alert is out of the inbox while snoozed_until is ahead, by the clock, like
-- expiry; the sweeper clears the column after it (with alert.unsnoozed). A nullable column
-- without a default is added without rewriting the table. The first index is the sweeper's
-- queue, the second a user's snoozed alerts.
ALTER TABLE alerts ADD COLUMN snoozed_until TIMESTAMPTZ;
CREATE INDEX alerts_snoozed ON alerts (snoozed_until) WHERE snoozed_until IS NOT NULL;
CREATE INDEX alerts_snoozed_by_user ON alerts (company_id, user_id, snoozed_until)
    WHERE snoozed_until IS NOT NULL;

-- Exact unread counts at any size (docs/PERFORMANCE.md, "unread counts"): each user's count of
-- the alerts that are unread and not expired (by the sweeper's mark), dismissed, withdrawn or
-- snoozed, kept by a trigger in the transaction of every change, whichever statement makes it.
-- What the clock decides since the sweeper's last pass (an expiry passed, a snooze ended) is
-- corrected in the read, from the two partial indexes: alerts_unread's entries at or before
-- now, and alerts_snoozed_by_user's — both only what changed since that pass.
CREATE TABLE inbox_counters (
    company_id TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    unread     BIGINT NOT NULL,
    PRIMARY KEY (company_id, user_id)
);
CREATE INDEX alerts_unread ON alerts (company_id, user_id, expires_at)
    WHERE expired_at IS NULL AND dismissed_at IS NULL AND withdrawn_at IS NULL
        AND snoozed_until IS NULL
        AND (read_revision IS NULL OR read_revision < revision);
INSERT INTO inbox_counters (company_id, user_id, unread)
    SELECT company_id, user_id, COUNT(*) FROM alerts
    WHERE expired_at IS NULL AND dismissed_at IS NULL AND withdrawn_at IS NULL
        AND snoozed_until IS NULL
        AND (read_revision IS NULL OR read_revision < revision)
    GROUP BY company_id, user_id;

CREATE FUNCTION inbox_count_alert() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    delta   integer := 0;
    company text;
    owner   text;
BEGIN
    IF TG_OP <> 'INSERT' THEN
        company := OLD.company_id;
        owner := OLD.user_id;
        IF OLD.expired_at IS NULL AND OLD.dismissed_at IS NULL AND OLD.withdrawn_at IS NULL
        AND OLD.snoozed_until IS NULL
        AND (OLD.read_revision IS NULL OR OLD.read_revision < OLD.revision) THEN
            delta := delta - 1;
        END IF;
    END IF;
    IF TG_OP <> 'DELETE' THEN
        company := NEW.company_id;
        owner := NEW.user_id;
        IF NEW.expired_at IS NULL AND NEW.dismissed_at IS NULL AND NEW.withdrawn_at IS NULL
        AND NEW.snoozed_until IS NULL
        AND (NEW.read_revision IS NULL OR NEW.read_revision < NEW.revision) THEN
            delta := delta + 1;
        END IF;
    END IF;
    IF delta <> 0 THEN
        INSERT INTO inbox_counters AS c (company_id, user_id, unread) VALUES (company, owner, delta)
            ON CONFLICT (company_id, user_id) DO UPDATE SET unread = c.unread + EXCLUDED.unread;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER alerts_count_unread
    AFTER INSERT OR DELETE OR UPDATE OF revision, read_revision, dismissed_at, withdrawn_at,
        expired_at, snoozed_until
    ON alerts FOR EACH ROW EXECUTE FUNCTION inbox_count_alert();

-- The inbox page's sessions: the cookie holds a random secret, this table its SHA-256, so that
-- a sign-out ends the session for every instance and a copy of the database signs nobody in.
CREATE TABLE inbox_sessions (
    digest     TEXT PRIMARY KEY,
    company_id TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    ended_at   TIMESTAMPTZ
);
CREATE INDEX inbox_sessions_by_expiry ON inbox_sessions (expires_at);

-- Sign-in links used so far (a link works once), until they would have expired anyway.
CREATE TABLE inbox_sign_ins (
    jti        TEXT PRIMARY KEY,
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX inbox_sign_ins_by_expiry ON inbox_sign_ins (expires_at);
