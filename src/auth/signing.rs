//! Minting tokens, and the server's signing keys: RSA-2048 for RS256, generated on first use,
//! stored (encrypted) in the database so that every instance and the CLI share them.

use anyhow::Context;
use rsa::pkcs8::{EncodePrivateKey, LineEnding};
use time::OffsetDateTime;

use super::{Claims, KeyRing, TokenKind, server_keys::ServerKeys};
use crate::store::{DynStore, SigningKeyRecord};

const RSA_BITS: usize = 2048;

/// A recorded lifetime is rounded up to a whole hour: most signings then find it recorded and
/// write nothing; the price is that retiring a key may wait up to an hour longer.
const RECORD_GRANULARITY_SECS: i64 = 3600;

/// Mints a token: signs `claims` with the server's current key (RS256, the newest key not
/// retired), after making sure the database records that this key signed a token valid until
/// `claims.exp` (`signed_until`, rounded up to the hour; written, before the token exists, only
/// when the recorded value falls short). `maestro keys retire` relies on that record to refuse
/// retiring a key while a token it signed may still be live, so **every token maestro hands out
/// is minted here**: `maestro token issue`, inbox sign-in links and sessions, the token endpoint.
///
/// Should the key have been retired since this instance loaded it, the keys are reloaded and
/// the newest signs. Fails when the database cannot record the lifetime: no token is made then.
pub async fn issue(store: &DynStore, keyring: &KeyRing, claims: &Claims) -> anyhow::Result<String> {
    if let Some(token) = keyring.sign_recorded(claims)? {
        return Ok(token);
    }
    let until = round_up(claims.exp);
    let at =
        OffsetDateTime::from_unix_timestamp(until).context("the token's exp is out of range")?;
    for _ in 0..3 {
        let signer = keyring.signer();
        if store.record_signed_until(signer.kid(), at).await? {
            signer.recorded(until);
            return signer.sign(claims);
        }
        keyring.refresh(store).await?;
    }
    anyhow::bail!("the server's signing keys kept changing while a token was being signed; retry")
}

fn round_up(exp: i64) -> i64 {
    let rest = exp.rem_euclid(RECORD_GRANULARITY_SECS);
    if rest == 0 {
        exp
    } else {
        exp.saturating_add(RECORD_GRANULARITY_SECS - rest)
    }
}

/// The server's keys, generating the first one if the database has none. Instances starting
/// together store only one first key, so they all share it.
pub async fn server_keys(store: &DynStore) -> anyhow::Result<ServerKeys> {
    let mut records = store.signing_keys().await?;
    if records.is_empty() {
        let record = tokio::task::spawn_blocking(generate).await??;
        if store.add_first_signing_key(&record).await? {
            tracing::info!(kid = %record.kid, "generated the server's signing key");
        }
        records = store.signing_keys().await?;
    }
    ServerKeys::from_records(&records)
}

/// A new RSA-2048 key (slow: run it on a blocking thread).
pub(super) fn generate() -> anyhow::Result<SigningKeyRecord> {
    let private = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, RSA_BITS)?;
    let pem = private.to_pkcs8_pem(LineEnding::LF)?;
    Ok(SigningKeyRecord::new(
        &format!("maestro-{}", uuid::Uuid::new_v4().simple()),
        "RS256",
        pem.to_string(),
        OffsetDateTime::now_utc(),
    ))
}

/// What `maestro token issue` is asked for.
#[derive(Clone, Debug)]
pub struct TokenRequest {
    pub kind: TokenKind,
    pub subject: String,
    pub app_id: Option<String>,
    pub scopes: Vec<String>,
    pub company: Option<String>,
    pub roles: Vec<String>,
    pub ttl_secs: i64,
}

impl TokenRequest {
    pub fn claims(&self, issuer: &str) -> anyhow::Result<Claims> {
        anyhow::ensure!(self.ttl_secs > 0, "the token's lifetime must be positive");
        anyhow::ensure!(
            self.kind != TokenKind::User || self.company.is_some(),
            "a user token needs --company"
        );
        let now = OffsetDateTime::now_utc().unix_timestamp();
        Ok(Claims {
            sub: self.subject.clone(),
            kind: self.kind,
            scopes: self.scopes.clone(),
            app_id: self.app_id.clone(),
            company: self.company.clone(),
            roles: self.roles.clone(),
            iss: Some(issuer.to_owned()),
            iat: Some(now),
            exp: now + self.ttl_secs,
            nbf: Some(now),
            jti: Some(uuid::Uuid::new_v4().to_string()),
            sid: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes_are_recorded_rounded_up_to_the_hour() {
        assert_eq!(round_up(7200), 7200);
        assert_eq!(round_up(7201), 10800);
        assert_eq!(round_up(10799), 10800);
    }
}
