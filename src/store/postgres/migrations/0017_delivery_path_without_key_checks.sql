-- Every company event passes through three foreign keys on its way to a partner: its place in
-- the company feed and its deliveries refer to the event, and every attempt refers to its
-- delivery. Each check is a query run per inserted row after the statement (a probe of the
-- parent and a lock on its row): on the path that carries every event, seen with auto_explain,
-- they took about as long as the inserts they checked.
--
-- What they guarded cannot happen here: the feed's rows and the deliveries are written in the
-- very transaction that writes their event, from the ids it has just inserted (events.rs); an
-- attempt is logged only for a delivery that its worker claimed, which reads the delivery
-- (claims.rs); and nothing deletes an event or a delivery. So the keys go, and the indexes on
-- the referring columns stay for the reads that use them.
ALTER TABLE company_outbox DROP CONSTRAINT company_outbox_event_id_fkey;
ALTER TABLE deliveries DROP CONSTRAINT deliveries_event_id_fkey;
ALTER TABLE delivery_attempts DROP CONSTRAINT delivery_attempts_delivery_id_fkey;
