-- A partner's withdrawal of an alert (SPEC §4.1), set in the transaction that writes
-- alert.withdrawn. A withdrawn alert leaves every inbox, takes no more updates and keeps its
-- extRef.
--
-- No index changes: the inbox reads test it like dismissed_at, on the rows alerts_inbox has
-- found, and a withdrawal finds its alert by primary key. The sweeper's queues stay as they
-- are: a withdrawn alert is marked expired at its expires_at (without an alert.expired event)
-- and purged after the retention, like any other.
ALTER TABLE alerts ADD COLUMN withdrawn_at TEXT;
