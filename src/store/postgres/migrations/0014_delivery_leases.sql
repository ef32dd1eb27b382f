-- Live claims on deliveries live in a table of their own rather than in the delivery's row
-- (docs/ARCHITECTURE.md, "Deliveries"). In the row, a claim was a second update of a wide row
-- with six indexes, none of them HOT because the lease columns were indexed: a delivery cost two
-- new versions of its row and a dozen index entries. Here a claim is one narrow insert and its
-- end one delete; the delivery's row changes once, when its outcome is recorded.
-- No foreign key: a lease is only ever made from its delivery's row, deliveries are never
-- deleted, and the key's check would cost every claim a trigger per row.
CREATE TABLE delivery_leases (
    delivery_id TEXT PRIMARY KEY,
    partner_id  TEXT NOT NULL,       -- whose room the lease takes (a partner's limit in flight)
    owner       TEXT NOT NULL,       -- the worker that claimed it; its outcome is fenced on this
    until       TIMESTAMPTZ NOT NULL -- due again after this, should its worker have died
);
CREATE INDEX delivery_leases_by_partner ON delivery_leases (partner_id, until);
-- Every delivery passes through this table, so its dead rows pile up fast: vacuum it after a
-- thousand rather than after a fifth of its (small) size.
ALTER TABLE delivery_leases SET (autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 1000);

INSERT INTO delivery_leases (delivery_id, partner_id, owner, until)
    SELECT id, partner_id, lease_owner, lease_until FROM deliveries
    WHERE status = 'pending' AND lease_owner IS NOT NULL AND lease_until IS NOT NULL;
DROP INDEX deliveries_claimed;
ALTER TABLE deliveries DROP COLUMN lease_owner, DROP COLUMN lease_until;
