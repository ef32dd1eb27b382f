-- Rotation of the server's signing keys (`maestro keys rotate | retire`) and of partners'
-- postback secrets (`maestro partner rotate-secret`). The secrets themselves are encrypted by
-- the code right after migrating (src/store/secrets.rs): SQL cannot.

-- The latest `exp` of any token the key signed (unix seconds, rounded up), written before the
-- token is handed out: retiring the key is refused while it lies ahead. Keys that signed before
-- this column existed get "unknown" (9999-12-31T23:59:59Z): any token of theirs may be live.
ALTER TABLE signing_keys ADD COLUMN signed_until INTEGER;
ALTER TABLE signing_keys ADD COLUMN retired_at TEXT;
UPDATE signing_keys SET signed_until = 253402300799;

-- The secret the latest rotation replaced (encrypted like the current one), which deliveries
-- also sign with until `previous_secret_until_ms` (unix milliseconds, as claims compare).
ALTER TABLE partners ADD COLUMN previous_postback_secret TEXT;
ALTER TABLE partners ADD COLUMN previous_secret_until_ms INTEGER;
