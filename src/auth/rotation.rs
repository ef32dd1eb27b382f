//! Rotating the server's signing keys (`maestro keys list | rotate | retire`).
//!
//! A rotation adds a key, which signs from then on (the newest key not retired signs); the
//! older keys keep verifying, and stay in the JWKS, until they are retired. Retiring is refused
//! while a token the key signed may still be accepted (its recorded `signed_until`, plus the
//! verification leeway), unless forced, and always for the key that signs. Running instances
//! take the change in at their next key refresh.

use anyhow::bail;
use time::{Duration, OffsetDateTime, format_description::well_known::Rfc3339};

use super::{keyring::LEEWAY_SECS, signing};
use crate::store::{DynStore, RetireOutcome, SIGNED_UNTIL_UNKNOWN, SigningKeyRecord};

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyState {
    /// The newest key not retired: new tokens are signed with it.
    Signing,
    /// Not retired: tokens it signed are accepted, and it is in the JWKS.
    Verifying,
    Retired,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Signing => "signing",
            KeyState::Verifying => "verifying",
            KeyState::Retired => "retired",
        }
    }
}

/// A key as `maestro keys list` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyInfo {
    pub kid: String,
    pub algorithm: String,
    pub created_at: OffsetDateTime,
    pub state: KeyState,
    /// Until when a token it signed may be accepted; `None` if it signed none (or if it signed
    /// before maestro recorded lifetimes, see `KeyInfo::lifetime_unknown`).
    pub tokens_live_until: Option<OffsetDateTime>,
    pub lifetime_unknown: bool,
}

/// Every key, oldest first.
pub async fn list(store: &DynStore) -> anyhow::Result<Vec<KeyInfo>> {
    let records = store.signing_keys().await?;
    let signing = records
        .iter()
        .rev()
        .find(|r| r.retired_at.is_none())
        .map(|r| r.kid.clone());
    Ok(records
        .into_iter()
        .map(|r| info(r, signing.as_deref()))
        .collect())
}

fn info(record: SigningKeyRecord, signing: Option<&str>) -> KeyInfo {
    let state = if record.retired_at.is_some() {
        KeyState::Retired
    } else if signing == Some(record.kid.as_str()) {
        KeyState::Signing
    } else {
        KeyState::Verifying
    };
    let lifetime_unknown = record.signed_until == Some(SIGNED_UNTIL_UNKNOWN);
    KeyInfo {
        tokens_live_until: record
            .signed_until
            .filter(|_| !lifetime_unknown)
            .map(accepted_until),
        lifetime_unknown,
        kid: record.kid,
        algorithm: record.algorithm,
        created_at: record.created_at,
        state,
    }
}

/// Adds a new RS256 key, which signs from now on. Returns its kid.
pub async fn rotate(store: &DynStore) -> anyhow::Result<String> {
    let record = tokio::task::spawn_blocking(signing::generate).await??;
    store.add_signing_key(&record).await?;
    tracing::info!(kid = %record.kid, "added a signing key; it signs from now on");
    Ok(record.kid)
}

/// What a successful `retire` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retired {
    Now,
    Already,
}

/// Retires `kid`: it stops verifying and leaves the JWKS. Refused for the signing key, and,
/// unless `force`, while a token it signed may still be accepted; the error says until when.
pub async fn retire(store: &DynStore, kid: &str, force: bool) -> anyhow::Result<Retired> {
    let now = OffsetDateTime::now_utc();
    // A token is accepted until its `exp` plus the leeway.
    let expired_before = now - Duration::seconds(LEEWAY_SECS as i64);
    match store
        .retire_signing_key(kid, now, expired_before, force)
        .await?
    {
        RetireOutcome::Retired => {
            tracing::info!(%kid, force, "retired a signing key");
            Ok(Retired::Now)
        }
        RetireOutcome::AlreadyRetired => Ok(Retired::Already),
        RetireOutcome::UnknownKey => {
            bail!("there is no signing key {kid} (`maestro keys list` shows them)")
        }
        RetireOutcome::Signing => bail!(
            "{kid} is the key that signs new tokens; rotate first (`maestro keys rotate`), then \
             retire it once the tokens it signed have expired"
        ),
        RetireOutcome::MayBeLive { until } if until == SIGNED_UNTIL_UNKNOWN => bail!(
            "{kid} signed tokens before maestro recorded their lifetimes, so any of them may \
             still be live; retire it with --force once none can be in use (they will be refused)"
        ),
        RetireOutcome::MayBeLive { until } => bail!(
            "tokens signed by {kid} may still be live until {}; retire it then, or now with \
             --force (those tokens will be refused)",
            format_time(accepted_until(until))
        ),
    }
}

fn accepted_until(signed_until: OffsetDateTime) -> OffsetDateTime {
    signed_until + Duration::seconds(LEEWAY_SECS as i64)
}

/// RFC 3339 to the second, as an operator reads it.
pub fn format_time(at: OffsetDateTime) -> String {
    let at = at.replace_nanosecond(0).unwrap_or(at);
    at.format(&Rfc3339).unwrap_or_else(|_| at.to_string())
}
