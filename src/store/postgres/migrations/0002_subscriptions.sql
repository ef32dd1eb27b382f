-- Company notification subscriptions (legacy v1.0): a partner application subscribed to one
-- kind of company event. Subscribing twice is one subscription.
CREATE TABLE subscriptions (
    partner_id  TEXT NOT NULL,
    company_id  TEXT NOT NULL,
    object_type TEXT NOT NULL,             -- itinerary | profile | fop
    created_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (partner_id, company_id, object_type)
);
