-- A claim gives no partner more than its share of deliveries in flight: it counts each
-- partner's live claims and takes each partner's oldest due deliveries. Both are index ranges,
-- so a claim costs as little beside a partner with a long backlog as beside an idle one.
CREATE INDEX deliveries_due_by_partner ON deliveries (partner_id, next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX deliveries_claimed ON deliveries (partner_id, lease_until)
    WHERE status = 'pending' AND lease_until IS NOT NULL;
