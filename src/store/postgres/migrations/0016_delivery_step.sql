-- A delivery worker's step in one round trip (docs/ARCHITECTURE.md, "Deliveries"; claims.rs).
-- As separate statements, a step cost six round trips — BEGIN, the advisory lock, the outcomes,
-- the claim, the next due, COMMIT — and on a busy server each one waited for the worker's task
-- to be scheduled again while the transaction held the claim lock: ~2 ms of a 7 ms step.
-- Here the server runs the step from one call, in the statement's own transaction; each
-- statement below takes a fresh snapshot after the lock, as before. The function is the
-- schema's like any table: a change to it is a later migration's `CREATE OR REPLACE FUNCTION`,
-- and claims.rs binds its arguments in the order given here.
--
-- Returns the claimed deliveries, one row each, then one last row whose `id` is NULL and
-- which carries `kept` (the outcomes recorded: the deliveries whose lease this claimant still
-- held) and `next_due` (when an idle worker should look again; see claims.rs).
CREATE FUNCTION delivery_worker_step(
    claimant text,
    claim_lock bigint,
    -- The outcomes, one element per ended attempt.
    ended_ids text[], attempt_numbers int8[], started_ats timestamptz[], durations_ms int8[],
    status_codes int4[], errors text[], response_bodies text[], outcomes text[],
    statuses text[], next_ats timestamptz[],
    settled_ids text[], -- those that leave the queue: delivered, failed or gone
    gone_ids text[],    -- those whose subscription ends with them
    -- The claim.
    claimed_at timestamptz, lease_until timestamptz, claim_limit int8, per_partner_limit int8)
RETURNS TABLE (
    kept text[], next_due timestamptz,
    id text, attempts int8, replayed_after int8, next_attempt_at timestamptz, partner_id text,
    postback_url text, postback_secret text, previous_postback_secret text,
    event_id text, object_type text, event_type text, company_id text, user_login text,
    trip_id text, occurred_at timestamptz)
LANGUAGE plpgsql
-- No JIT: the planner cannot tell how few rows a partner's room admits, estimates a huge
-- claim, and compiling it took ~170 ms where running it took 0.2 ms (200,000 due). No
-- sequential scans: every access below has an index made for it, and a plan made while a
-- table was small must not scan it whole once it has grown (claims.rs, "Plans that stay put").
SET jit = off
SET enable_seqscan = off
AS $$
DECLARE
    recorded text[] := '{}';
BEGIN
    -- The outcomes and claims of every instance take turns (claims.rs), and neither waits for
    -- the WAL's flush: a lost one only means a repeat under the same `webhook-id`.
    PERFORM set_config('synchronous_commit', 'off', true);
    PERFORM pg_advisory_xact_lock(claim_lock);

    IF cardinality(ended_ids) > 0 THEN
        -- The fence: only the leases this claimant still holds are released, and only their
        -- deliveries move on; every attempt is logged.
        WITH logged AS (
            INSERT INTO delivery_attempts (delivery_id, attempt, started_at, duration_ms,
                status_code, error, response_body, outcome)
            SELECT * FROM unnest(ended_ids, attempt_numbers, started_ats, durations_ms,
                status_codes, errors, response_bodies, outcomes)),
        released AS (
            DELETE FROM delivery_leases l
            WHERE l.delivery_id = ANY(ended_ids) AND l.owner = claimant
            RETURNING l.delivery_id)
        SELECT coalesce(array_agg(r.delivery_id), '{}') INTO recorded FROM released r;

        DELETE FROM delivery_queue q
        WHERE q.delivery_id = ANY(recorded) AND q.delivery_id = ANY(settled_ids);
        UPDATE delivery_queue q SET next_attempt_at = f.next_at
        FROM unnest(ended_ids, next_ats) AS f(delivery_id, next_at)
        WHERE q.delivery_id = f.delivery_id AND f.next_at IS NOT NULL
          AND f.delivery_id = ANY(recorded);
        UPDATE deliveries d SET status = f.status, attempts = greatest(d.attempts, f.attempt),
            next_attempt_at = coalesce(f.next_at, d.next_attempt_at),
            last_status = f.status_code, last_error = f.error, updated_at = f.started_at
        FROM unnest(ended_ids, attempt_numbers, started_ats, status_codes, errors, statuses,
            next_ats) AS f(delivery_id, attempt, started_at, status_code, error, status, next_at)
        WHERE d.id = ANY(recorded) AND f.delivery_id = d.id;
        -- A partner's endpoint that is gone ends the subscription the delivery came from.
        IF cardinality(gone_ids) > 0 THEN
            DELETE FROM subscriptions s USING deliveries d, company_events e
            WHERE d.id = ANY(recorded) AND d.id = ANY(gone_ids) AND e.id = d.event_id
              AND s.partner_id = d.partner_id AND s.company_id = e.company_id
              AND s.object_type = e.object_type;
        END IF;
    END IF;

    IF claim_limit > 0 THEN
        -- Partner by partner, the oldest due deliveries within each one's free room (its
        -- limit less its live leases), then the oldest of those overall; each claimed
        -- delivery and its event are read by a probe of their primary keys.
        RETURN QUERY
        WITH room AS (
            SELECT p.id AS partner_id, least(per_partner_limit - (SELECT count(*)
                FROM delivery_leases l WHERE l.partner_id = p.id AND l.until > claimed_at),
                claim_limit) AS free
            FROM partners p),
        due AS (
            SELECT oldest.* FROM room CROSS JOIN LATERAL (
                SELECT q.delivery_id AS id, q.next_attempt_at, q.partner_id
                FROM delivery_queue q
                WHERE q.partner_id = room.partner_id AND q.next_attempt_at <= claimed_at
                  AND coalesce((SELECT l.until FROM delivery_leases l
                      WHERE l.delivery_id = q.delivery_id), '-infinity') <= claimed_at
                ORDER BY q.next_attempt_at LIMIT greatest(room.free, 0)) oldest
            ORDER BY oldest.next_attempt_at, oldest.id LIMIT claim_limit),
        leased AS (
            INSERT INTO delivery_leases (delivery_id, partner_id, owner, until)
            SELECT due.id, due.partner_id, claimant, lease_until FROM due
            ON CONFLICT (delivery_id) DO UPDATE SET owner = excluded.owner,
                until = excluded.until)
        SELECT NULL::text[], NULL::timestamptz, c.id, d.attempts, d.replayed_after,
            c.next_attempt_at, c.partner_id, p.postback_url, p.postback_secret,
            CASE WHEN p.previous_secret_until > claimed_at THEN p.previous_postback_secret END,
            e.id, e.object_type, e.event_type, e.company_id, e.user_login, e.trip_id,
            e.occurred_at
        FROM due c
        CROSS JOIN LATERAL (SELECT x.attempts, x.replayed_after, x.event_id
            FROM deliveries x WHERE x.id = c.id LIMIT 1) d
        CROSS JOIN LATERAL (SELECT * FROM company_events x WHERE x.id = d.event_id LIMIT 1) e
        JOIN partners p ON p.id = c.partner_id;
    END IF;

    -- The first unclaimed delivery not yet due (an index range of `delivery_queue_due`), or a
    -- claimed one, due again when its lease lapses: a lease's delivery was due when claimed,
    -- so its lapse is the lease's own `until`, and the few live leases are read alone.
    RETURN QUERY
    SELECT recorded, (SELECT min(candidate) FROM (
        (SELECT q.next_attempt_at AS candidate FROM delivery_queue q
         WHERE q.next_attempt_at > claimed_at
           AND (SELECT 1 FROM delivery_leases l WHERE l.delivery_id = q.delivery_id) IS NULL
         ORDER BY q.next_attempt_at LIMIT 1)
        UNION ALL
        SELECT min(l.until) FROM delivery_leases l WHERE l.until > claimed_at) AS candidates),
        NULL::text, NULL::int8, NULL::int8, NULL::timestamptz, NULL::text, NULL::text,
        NULL::text, NULL::text, NULL::text, NULL::text, NULL::text, NULL::text, NULL::text,
        NULL::text, NULL::timestamptz;
END
$$;
