-- Delivery to postback URLs. Times a worker compares (when a delivery is due, until when a
-- claim holds) are unix milliseconds, so that "due now" is an index range; the table is rebuilt
-- to turn the text `next_attempt_at` of 0003 into such a column.
CREATE TABLE deliveries_v2 (
    id              TEXT PRIMARY KEY,
    event_id        TEXT NOT NULL REFERENCES company_events(id),
    partner_id      TEXT NOT NULL,
    status          TEXT NOT NULL,         -- pending | delivered | failed
    attempts        INTEGER NOT NULL,
    replayed_after  INTEGER NOT NULL DEFAULT 0, -- attempts made before the latest replay
    next_attempt_ms INTEGER NOT NULL,
    lease_owner     TEXT,                  -- the worker that claimed it, until lease_until_ms
    lease_until_ms  INTEGER,
    last_status     INTEGER,               -- HTTP status of the latest attempt, if any
    last_error      TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
INSERT INTO deliveries_v2 (id, event_id, partner_id, status, attempts, next_attempt_ms,
                           created_at, updated_at)
    SELECT id, event_id, partner_id, status, attempts,
           CAST(round(unixepoch(next_attempt_at, 'subsec') * 1000) AS INTEGER),
           created_at, created_at
    FROM deliveries;
DROP TABLE deliveries;
ALTER TABLE deliveries_v2 RENAME TO deliveries;

CREATE INDEX deliveries_due ON deliveries (next_attempt_ms) WHERE status = 'pending';
CREATE INDEX deliveries_by_event ON deliveries (event_id);
CREATE INDEX deliveries_recent ON deliveries (created_at);

-- Every attempt, kept for the admin: when, how long, what the partner answered.
CREATE TABLE delivery_attempts (
    id            INTEGER PRIMARY KEY,
    delivery_id   TEXT NOT NULL REFERENCES deliveries(id),
    attempt       INTEGER NOT NULL,
    started_at    TEXT NOT NULL,
    duration_ms   INTEGER NOT NULL,
    status_code   INTEGER,               -- absent when no HTTP answer came
    error         TEXT,                  -- why, when it did not succeed
    response_body TEXT,                  -- the first KiB of the answer
    outcome       TEXT NOT NULL          -- delivered | retry | failed | gone
);
CREATE INDEX delivery_attempts_by_delivery ON delivery_attempts (delivery_id, id);

-- The snapshots behind a notification's ObjectURI: the latest trip or profile sent with an event.
CREATE INDEX company_events_trips ON company_events (company_id, trip_id)
    WHERE object_type = 'itinerary' AND object IS NOT NULL;
CREATE INDEX company_events_profiles ON company_events (company_id, user_login)
    WHERE object_type = 'profile' AND object IS NOT NULL;
