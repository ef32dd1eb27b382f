//! The server's own signing keys: RSA-2048 for RS256, generated on first use, stored in the
//! database so that every instance and `maestro token issue` share them.

use anyhow::Context;
use jsonwebtoken::{
    Algorithm, EncodingKey,
    jwk::{Jwk, PublicKeyUse},
};
use rsa::pkcs8::{EncodePrivateKey, LineEnding};
use time::OffsetDateTime;

use super::{Claims, TokenKind};
use crate::store::{DynStore, SigningKeyRecord};

const RSA_BITS: usize = 2048;

pub struct ServerKey {
    pub kid: String,
    pub algorithm: Algorithm,
    pub encoding_key: EncodingKey,
    pub public_jwk: Jwk,
}

/// Loads the server's keys, generating the first one if the database has none. The oldest key
/// signs; instances starting together store only one first key, so they all share it.
pub async fn ensure_server_keys(store: &DynStore) -> anyhow::Result<Vec<ServerKey>> {
    let mut records = store.signing_keys().await?;
    if records.is_empty() {
        let record = tokio::task::spawn_blocking(generate).await??;
        if store.add_first_signing_key(&record).await? {
            tracing::info!(kid = %record.kid, "generated the server's signing key");
        }
        records = store.signing_keys().await?;
    }
    records.iter().map(server_key).collect()
}

fn generate() -> anyhow::Result<SigningKeyRecord> {
    let private = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, RSA_BITS)?;
    let pem = private.to_pkcs8_pem(LineEnding::LF)?;
    Ok(SigningKeyRecord {
        kid: format!("maestro-{}", uuid::Uuid::new_v4().simple()),
        algorithm: "RS256".to_owned(),
        private_pem: pem.to_string(),
        created_at: OffsetDateTime::now_utc(),
    })
}

pub(crate) fn server_key(record: &SigningKeyRecord) -> anyhow::Result<ServerKey> {
    anyhow::ensure!(
        record.algorithm == "RS256",
        "signing key {} uses {}, which this version cannot sign with",
        record.kid,
        record.algorithm
    );
    let encoding_key = EncodingKey::from_rsa_pem(record.private_pem.as_bytes())
        .with_context(|| format!("signing key {} is not a valid RSA key", record.kid))?;
    let mut public_jwk = Jwk::from_encoding_key(&encoding_key, Algorithm::RS256)?;
    public_jwk.common.key_id = Some(record.kid.clone());
    public_jwk.common.public_key_use = Some(PublicKeyUse::Signature);
    Ok(ServerKey {
        kid: record.kid.clone(),
        algorithm: Algorithm::RS256,
        encoding_key,
        public_jwk,
    })
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
        })
    }
}
