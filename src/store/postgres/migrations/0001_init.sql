-- The PostgreSQL schema: the same tables as the SQLite backend, in PostgreSQL's own types.

CREATE TABLE signing_keys (
    kid         TEXT PRIMARY KEY,
    algorithm   TEXT NOT NULL,
    private_pem TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE partners (
    id                  TEXT PRIMARY KEY,
    name                TEXT NOT NULL,
    allowed_url_domains TEXT NOT NULL,          -- JSON array of domains
    postback_url        TEXT,
    postback_secret     TEXT NOT NULL,
    rate_limit_per_sec  BIGINT,
    rate_limit_burst    BIGINT,
    updated_at          TIMESTAMPTZ NOT NULL
);

CREATE TABLE templates (
    partner_id   TEXT NOT NULL REFERENCES partners(id),
    template_id  TEXT NOT NULL,
    version      BIGINT NOT NULL,
    schema_json  TEXT NOT NULL,
    sources_json TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (partner_id, template_id, version)
);

CREATE TABLE alerts (
    id               TEXT PRIMARY KEY,
    partner_id       TEXT NOT NULL,
    company_id       TEXT NOT NULL,
    ext_ref          TEXT NOT NULL,
    user_id          TEXT NOT NULL,
    template_id      TEXT NOT NULL,
    template_version BIGINT NOT NULL,
    msg_type         TEXT NOT NULL,
    topic            TEXT,
    title            TEXT,
    created_at       TEXT NOT NULL,          -- as the partner sent it (RFC 3339)
    expires_at       TIMESTAMPTZ NOT NULL,
    revision         BIGINT NOT NULL,
    body_hash        TEXT NOT NULL,
    received_at      TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL,
    -- extRef identifies an alert within (partner, company); the constraint settles races
    -- between instances.
    CONSTRAINT alerts_ext_ref_key UNIQUE (partner_id, company_id, ext_ref)
);

CREATE INDEX alerts_by_user ON alerts (company_id, user_id, expires_at);

-- Every revision's body; the alert's current body is the row of its current revision.
CREATE TABLE alert_revisions (
    alert_id         TEXT NOT NULL REFERENCES alerts(id) ON DELETE CASCADE,
    revision         BIGINT NOT NULL,
    template_version BIGINT NOT NULL,
    body_hash        TEXT NOT NULL,
    payload          TEXT NOT NULL,
    recorded_at      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (alert_id, revision)
);

CREATE TABLE outbox (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_type  TEXT NOT NULL,
    alert_id    TEXT NOT NULL,
    revision    BIGINT NOT NULL,
    partner_id  TEXT NOT NULL,
    company_id  TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    occurred_at TIMESTAMPTZ NOT NULL
);
