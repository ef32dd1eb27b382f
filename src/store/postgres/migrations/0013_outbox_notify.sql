-- Every instance's inbox feed wakes when any instance writes the outbox, rather than at its next
-- poll (docs/ARCHITECTURE.md, "the outbox"): each statement that inserts events notifies the
-- channel the feeds LISTEN to. A trigger, so that every writer of the outbox notifies, whichever
-- statement it uses. PostgreSQL delivers a notification at commit only (none for a rollback),
-- and folds identical ones of one transaction into one, so a transaction costs one however many
-- events it writes. The payload is empty: a feed reads the outbox from its own position anyway.
CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('maestro_outbox', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();
