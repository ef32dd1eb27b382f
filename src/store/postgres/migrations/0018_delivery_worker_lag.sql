-- Each delivery worker's lag while it is behind (docs/ARCHITECTURE.md, "pacing"): how long the
-- deliveries it last claimed had waited for it (microseconds), and when it said so. An instance
-- serving the API without a worker paces company-event intake by the largest recent one. A
-- worker withdraws its row when it stops; rows an hour old are deleted by the next report.
-- UNLOGGED: the rows are bookkeeping a crash may lose (the table is then emptied), and their
-- writes skip the WAL.
CREATE UNLOGGED TABLE delivery_worker_lag (
    claimant    TEXT PRIMARY KEY,
    lag_us      BIGINT NOT NULL,
    reported_at TIMESTAMPTZ NOT NULL
);
