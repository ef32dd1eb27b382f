-- Delivery to postback URLs: claims (leases) so that workers of several instances never send
-- one attempt twice at the same time, the latest outcome, and a log of every attempt.
ALTER TABLE deliveries
    ADD COLUMN replayed_after BIGINT NOT NULL DEFAULT 0, -- attempts made before the latest replay
    ADD COLUMN lease_owner    TEXT,          -- the worker that claimed it, until lease_until
    ADD COLUMN lease_until    TIMESTAMPTZ,
    ADD COLUMN last_status    INTEGER,       -- HTTP status of the latest attempt, if any
    ADD COLUMN last_error     TEXT,
    ADD COLUMN updated_at     TIMESTAMPTZ;
UPDATE deliveries SET updated_at = created_at;
ALTER TABLE deliveries ALTER COLUMN updated_at SET NOT NULL;

DROP INDEX deliveries_due;
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_by_event ON deliveries (event_id);
CREATE INDEX deliveries_recent ON deliveries (created_at);

-- Every attempt, kept for the admin: when, how long, what the partner answered.
CREATE TABLE delivery_attempts (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id   TEXT NOT NULL REFERENCES deliveries(id),
    attempt       BIGINT NOT NULL,
    started_at    TIMESTAMPTZ NOT NULL,
    duration_ms   BIGINT NOT NULL,
    status_code   INTEGER,               -- absent when no HTTP answer came
    error         TEXT,                  -- why, when it did not succeed
    response_body TEXT,                  -- the first KiB of the answer
    outcome       TEXT NOT NULL          -- delivered | retry | failed | gone
);
CREATE INDEX delivery_attempts_by_delivery ON delivery_attempts (delivery_id, id);

-- The snapshots behind a notification's ObjectURI: the latest trip or profile sent with an event.
CREATE INDEX company_events_trips ON company_events (company_id, trip_id, received_at)
    WHERE object_type = 'itinerary' AND object IS NOT NULL;
CREATE INDEX company_events_profiles ON company_events (company_id, user_login, received_at)
    WHERE object_type = 'profile' AND object IS NOT NULL;
