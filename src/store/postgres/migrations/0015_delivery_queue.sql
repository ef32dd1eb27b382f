-- The deliveries still owed, in a narrow table of their own (docs/ARCHITECTURE.md,
-- "Deliveries"). Claims walked the partial index of pending deliveries from its oldest end,
-- where every delivery recorded since the last vacuum left a dead entry: a claim read them all,
-- so the worker slowed as it delivered (0.4 ms a claim after 50,000). A row here is deleted with
-- the delivery's final outcome, and this table stays as small as the backlog, so a vacuum of it
-- costs little and the workers run one themselves every so many outcomes (`queue_upkeep.rs`),
-- whatever the server's autovacuum settings. The delivery's row itself, no longer in an index
-- on its status, is updated in place (HOT) when its outcome is recorded, with room left on its
-- page for that (fillfactor).
CREATE TABLE delivery_queue (
    delivery_id     TEXT PRIMARY KEY,
    partner_id      TEXT NOT NULL,
    next_attempt_at TIMESTAMPTZ NOT NULL
);
-- A claim: each partner's oldest due; the idle wait: the first not yet due.
CREATE INDEX delivery_queue_by_partner ON delivery_queue (partner_id, next_attempt_at);
CREATE INDEX delivery_queue_due ON delivery_queue (next_attempt_at);
ALTER TABLE delivery_queue SET (autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 1000);

INSERT INTO delivery_queue (delivery_id, partner_id, next_attempt_at)
    SELECT id, partner_id, next_attempt_at FROM deliveries WHERE status = 'pending';
DROP INDEX deliveries_due;
DROP INDEX deliveries_due_by_partner;
ALTER TABLE deliveries SET (fillfactor = 80);
