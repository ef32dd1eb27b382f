-- Company events (legacy v1.0 notifications) and the deliveries they owe: one per subscription
-- that matched when the event arrived, written in the same transaction as the event. A
-- delivery's id is its Standard Webhooks `webhook-id`, stable across retries.
CREATE TABLE company_events (
    id          TEXT PRIMARY KEY,
    object_type TEXT NOT NULL,             -- itinerary | profile | fop
    event_type  TEXT NOT NULL,             -- CREATE | UPDATE | CANCEL
    company_id  TEXT NOT NULL,
    user_login  TEXT,
    trip_id     TEXT,
    occurred_at TEXT NOT NULL,
    object      TEXT,                      -- JSON snapshot of the trip or profile, if sent
    received_at TEXT NOT NULL
);

CREATE TABLE deliveries (
    id              TEXT PRIMARY KEY,
    event_id        TEXT NOT NULL REFERENCES company_events(id),
    partner_id      TEXT NOT NULL,
    status          TEXT NOT NULL,         -- pending | delivered | failed
    attempts        INTEGER NOT NULL,
    next_attempt_at TEXT NOT NULL,
    created_at      TEXT NOT NULL
);

CREATE INDEX deliveries_due ON deliveries (status, next_attempt_at);
