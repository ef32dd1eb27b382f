-- Rotation of the server's signing keys (`maestro keys rotate | retire`) and of partners'
-- postback secrets (`maestro partner rotate-secret`). The secrets themselves are encrypted by
-- the code right after migrating (src/store/secrets.rs): SQL cannot.

-- The latest `exp` of any token the key signed (rounded up), written before the token is handed
-- out: retiring the key is refused while it lies ahead. Keys that signed before this column
-- existed get "unknown" (9999-12-31 23:59:59 UTC): any token of theirs may still be live.
ALTER TABLE signing_keys ADD COLUMN signed_until TIMESTAMPTZ, ADD COLUMN retired_at TIMESTAMPTZ;
UPDATE signing_keys SET signed_until = '9999-12-31 23:59:59+00';

-- The secret the latest rotation replaced (encrypted like the current one), which deliveries
-- also sign with until `previous_secret_until`.
ALTER TABLE partners ADD COLUMN previous_postback_secret TEXT,
    ADD COLUMN previous_secret_until TIMESTAMPTZ;
