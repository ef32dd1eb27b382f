-- The display side: each revision's rendering, the user's marks, and expiry.

-- What the template made of each revision (title and text are plain text; html is the card).
ALTER TABLE alert_revisions ADD COLUMN rendered_title TEXT NOT NULL DEFAULT '';
ALTER TABLE alert_revisions ADD COLUMN rendered_html  TEXT NOT NULL DEFAULT '';
ALTER TABLE alert_revisions ADD COLUMN rendered_text  TEXT NOT NULL DEFAULT '';

-- The revision the user last read: an alert is unread while this is below its revision, so a
-- partner's update makes it unread again without touching this column.
ALTER TABLE alerts ADD COLUMN read_revision BIGINT;
ALTER TABLE alerts ADD COLUMN dismissed_at  TIMESTAMPTZ;
-- Set when the sweeper announced the expiry (alert.expired); such alerts are purged after the
-- retention. Users never see an alert past expires_at, swept or not.
ALTER TABLE alerts ADD COLUMN expired_at    TIMESTAMPTZ;

-- A user's inbox, newest first (alert ids are time-ordered): keyset pages on id.
DROP INDEX alerts_by_user;
CREATE INDEX alerts_inbox ON alerts (company_id, user_id, id);
-- The sweeper's two queues; an alert is in exactly one of them.
CREATE INDEX alerts_to_expire ON alerts (expires_at) WHERE expired_at IS NULL;
CREATE INDEX alerts_to_purge ON alerts (expires_at) WHERE expired_at IS NOT NULL;
