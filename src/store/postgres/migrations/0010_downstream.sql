-- Downstream publishing (SPEC §4.2): the outbox and the company events published to NATS
-- JetStream by a publisher that keeps its cursor here.

-- What an alert event says of its alert as of the event, so that a late publication tells the
-- truth after later revisions or the purge: its template and its expiry. And when the event was
-- recorded, which the publisher's lag counts from (`occurred_at` of an `alert.expired` is the
-- expiry, before the sweeper wrote it); `now()` is the transaction's start.
ALTER TABLE outbox
    ADD COLUMN template_id TEXT,
    ADD COLUMN expires_at  TIMESTAMPTZ,
    ADD COLUMN recorded_at TIMESTAMPTZ NOT NULL DEFAULT now();

-- Company events in the order they were recorded (their ids are not ordered), written in the
-- event's transaction after the event itself: like the outbox, a transaction takes its id
-- after its first write (see postgres/downstream.rs, the publisher's horizon).
CREATE TABLE company_outbox (
    id       BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id TEXT NOT NULL REFERENCES company_events(id)
);

-- The publisher's cursor in each feed (every event up to the id is published or is not one to
-- publish) and the lease of the instance publishing. One row, 'nats'. It starts at the end of
-- the outbox: events recorded before this migration lack the columns above and are not
-- published.
CREATE TABLE downstream_publishers (
    name          TEXT PRIMARY KEY,
    alerts_after  BIGINT NOT NULL,
    company_after BIGINT NOT NULL,
    lease_owner   TEXT,
    lease_until   TIMESTAMPTZ
);
INSERT INTO downstream_publishers (name, alerts_after, company_after)
SELECT 'nats', COALESCE(MAX(id), 0), 0 FROM outbox;
