-- The App Center (SPEC §2.1): OAuth2 clients, company connections, request and refresh tokens.

-- Every partner is a client (client_id = partner id), registered by its import; internal
-- producers are clients without a partner. A secret is stored only as an Argon2id hash; after
-- a rotation the previous one is accepted until previous_secret_until_ms.
CREATE TABLE clients (
    id                        TEXT PRIMARY KEY,
    partner_id                TEXT REFERENCES partners (id),
    scopes                    TEXT NOT NULL,      -- JSON array of scope names
    redirect_uris             TEXT NOT NULL,      -- JSON array of URLs
    secret_hash               TEXT,
    previous_secret_hash      TEXT,
    previous_secret_until_ms  INTEGER,
    -- Tokens of this client issued before this instant are refused (a secret revoked at once).
    tokens_revoked_before_ms  INTEGER,
    created_at                TEXT NOT NULL,
    updated_at                TEXT NOT NULL
);

-- Partners imported before this migration are clients with the default scope.
INSERT INTO clients (id, partner_id, scopes, redirect_uris, created_at, updated_at)
    SELECT id, id, '["maestro.alerts.writeonly"]', '[]', updated_at, updated_at FROM partners;

-- A company's connection of a partner app. disconnected_at is NULL while connected; the last
-- disconnection is kept (revoked_before_ms) because tokens issued before it stay refused.
CREATE TABLE connections (
    partner_id         TEXT NOT NULL REFERENCES partners (id),
    company_id         TEXT NOT NULL,
    connected_at       TEXT NOT NULL,
    connected_by       TEXT NOT NULL,
    disconnected_at    TEXT,
    revoked_before_ms  INTEGER,
    PRIMARY KEY (partner_id, company_id)
);
CREATE INDEX connections_by_company ON connections (company_id);

-- Single-use request tokens handed to the partner through the administrator's redirect. Only a
-- SHA-256 of the token is kept.
CREATE TABLE request_tokens (
    token_hash  TEXT PRIMARY KEY,
    partner_id  TEXT NOT NULL,
    company_id  TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    expires_ms  INTEGER NOT NULL,
    used_ms     INTEGER
);
CREATE INDEX request_tokens_by_pair ON request_tokens (partner_id, company_id);

-- Refresh tokens (SHA-256 only), rotated on every use: a chain is every token descended from
-- one grant; presenting a used one revokes the chain.
CREATE TABLE refresh_tokens (
    token_hash  TEXT PRIMARY KEY,
    chain_id    TEXT NOT NULL,
    client_id   TEXT NOT NULL,
    company_id  TEXT NOT NULL,
    scopes      TEXT NOT NULL,   -- JSON array
    issued_ms   INTEGER NOT NULL,
    expires_ms  INTEGER NOT NULL,
    used_ms     INTEGER,
    revoked_ms  INTEGER
);
CREATE INDEX refresh_tokens_by_chain ON refresh_tokens (chain_id);
CREATE INDEX refresh_tokens_by_pair ON refresh_tokens (client_id, company_id);
CREATE INDEX refresh_tokens_by_expiry ON refresh_tokens (expires_ms);
-- The chains revoked lately, whose access tokens are refused too.
CREATE INDEX refresh_tokens_by_revocation ON refresh_tokens (revoked_ms)
    WHERE revoked_ms IS NOT NULL;
