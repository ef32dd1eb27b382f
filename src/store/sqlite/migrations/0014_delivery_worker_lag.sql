-- Each delivery worker's lag while it is behind (docs/ARCHITECTURE.md, "pacing"): how long the
-- deliveries it last claimed had waited for it (microseconds), and when it said so (unix
-- milliseconds). An instance serving the API without a worker paces company-event intake by
-- the largest recent one. A worker withdraws its row when it stops; rows an hour old are
-- deleted by the next report.
CREATE TABLE delivery_worker_lag (
    claimant       TEXT PRIMARY KEY,
    lag_us         INTEGER NOT NULL,
    reported_at_ms INTEGER NOT NULL
);
