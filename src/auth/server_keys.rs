//! The server's own keys as a running instance holds them: every key not retired verifies and is
//! published at `/oauth2/v0/jwks`, and the newest of them signs. `maestro keys rotate | retire`
//! change them in the database; each instance reloads them every `MAESTRO_CATALOG_REFRESH`
//! (`KeyRing::refresh`), so a rotation or a retirement reaches every instance without a restart.
//!
//! The set is swapped whole behind a lock held only to clone an `Arc`: verification (whose
//! cache hits never come here) reads one consistent set, and a reload never blocks it.

use std::{
    collections::HashMap,
    sync::{
        Arc, RwLock,
        atomic::{AtomicI64, Ordering},
    },
};

use anyhow::Context;
use jsonwebtoken::{
    Algorithm, DecodingKey, EncodingKey, Header,
    jwk::{Jwk, JwkSet, PublicKeyUse},
};

use super::{Claims, keyring::Verifier};
use crate::store::SigningKeyRecord;

/// One server key, ready to verify, to publish and to sign.
struct LoadedKey {
    verifier: Verifier,
    jwk: Jwk,
    signer: Arc<Signer>,
}

/// Signs with one key, and remembers until when the database records it as having signed.
pub struct Signer {
    kid: String,
    key: EncodingKey,
    /// Unix seconds; `i64::MIN` when the key has signed nothing.
    recorded_until: AtomicI64,
}

impl Signer {
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// Whether the database already records this key as signing until `exp` or later.
    pub(super) fn covers(&self, exp: i64) -> bool {
        self.recorded_until.load(Ordering::Acquire) >= exp
    }

    /// The database now records this key as signing until `until`.
    pub(super) fn recorded(&self, until: i64) {
        self.recorded_until.fetch_max(until, Ordering::AcqRel);
    }

    /// Signs unconditionally: callers have checked `covers` or recorded the lifetime.
    pub(super) fn sign(&self, claims: &Claims) -> anyhow::Result<String> {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.kid.clone());
        Ok(jsonwebtoken::encode(&header, claims, &self.key)?)
    }
}

/// The keys of one load, oldest first.
pub(super) struct KeySet {
    keys: Vec<Arc<LoadedKey>>,
    by_kid: HashMap<String, Arc<LoadedKey>>,
    jwks: Arc<JwkSet>,
}

impl KeySet {
    pub(super) fn verifier(&self, kid: &str) -> Option<&Verifier> {
        self.by_kid.get(kid).map(|key| &key.verifier)
    }

    pub(super) fn kids(&self) -> impl Iterator<Item = &str> {
        self.by_kid.keys().map(String::as_str)
    }

    fn signer(&self) -> &Arc<Signer> {
        &self.keys.last().expect("a key set is never empty").signer
    }
}

pub struct ServerKeys {
    current: RwLock<Arc<KeySet>>,
}

impl ServerKeys {
    /// From the stored keys (retired ones are left out).
    pub fn from_records(records: &[SigningKeyRecord]) -> anyhow::Result<ServerKeys> {
        Ok(ServerKeys {
            current: RwLock::new(Arc::new(build(records, None)?)),
        })
    }

    pub(super) fn current(&self) -> Arc<KeySet> {
        self.current
            .read()
            .expect("server keys lock poisoned")
            .clone()
    }

    pub(super) fn signer(&self) -> Arc<Signer> {
        self.current().signer().clone()
    }

    pub(super) fn public_jwks(&self) -> Arc<JwkSet> {
        self.current().jwks.clone()
    }

    /// Takes the stored keys as they are now, reusing the keys already loaded (no key is parsed
    /// twice). True when a key this instance trusted is gone (retired).
    pub(super) fn update(&self, records: &[SigningKeyRecord]) -> anyhow::Result<bool> {
        let previous = self.current();
        let next = build(records, Some(&previous))?;
        let dropped = previous.kids().any(|kid| !next.by_kid.contains_key(kid));
        *self.current.write().expect("server keys lock poisoned") = Arc::new(next);
        Ok(dropped)
    }
}

fn build(records: &[SigningKeyRecord], previous: Option<&KeySet>) -> anyhow::Result<KeySet> {
    let mut keys = Vec::new();
    for record in records.iter().filter(|r| r.retired_at.is_none()) {
        let recorded = record.signed_until.map_or(i64::MIN, |t| t.unix_timestamp());
        let key = match previous.and_then(|set| set.by_kid.get(&record.kid)) {
            Some(loaded) => loaded.clone(),
            None => Arc::new(load(record)?),
        };
        // Another instance may have recorded a later lifetime: this one need not write it again.
        key.signer.recorded(recorded);
        keys.push(key);
    }
    anyhow::ensure!(
        !keys.is_empty(),
        "the server has no signing key that is not retired"
    );
    let by_kid = keys
        .iter()
        .map(|key| (key.signer.kid.clone(), key.clone()))
        .collect();
    let jwks = Arc::new(JwkSet {
        keys: keys.iter().map(|key| key.jwk.clone()).collect(),
    });
    Ok(KeySet { keys, by_kid, jwks })
}

fn load(record: &SigningKeyRecord) -> anyhow::Result<LoadedKey> {
    anyhow::ensure!(
        record.algorithm == "RS256",
        "signing key {} uses {}, which this version cannot sign with",
        record.kid,
        record.algorithm
    );
    let key = EncodingKey::from_rsa_pem(record.private_pem.as_bytes())
        .with_context(|| format!("signing key {} is not a valid RSA key", record.kid))?;
    let mut jwk = Jwk::from_encoding_key(&key, Algorithm::RS256)?;
    jwk.common.key_id = Some(record.kid.clone());
    jwk.common.public_key_use = Some(PublicKeyUse::Signature);
    Ok(LoadedKey {
        verifier: Verifier {
            algorithm: Algorithm::RS256,
            key: DecodingKey::from_jwk(&jwk)?,
        },
        jwk,
        signer: Arc::new(Signer {
            kid: record.kid.clone(),
            key,
            recorded_until: AtomicI64::new(i64::MIN),
        }),
    })
}

#[cfg(test)]
mod tests {
    use time::{Duration, OffsetDateTime};

    use super::*;
    use crate::auth::{KeyRing, TokenKind};

    /// Keys with the fixture's key material under several kids: enough for the set's logic.
    fn record(kid: &str, minutes_ago: i64) -> SigningKeyRecord {
        SigningKeyRecord::new(
            kid,
            "RS256",
            include_str!("../../tests/fixtures/keys/rsa.pem").into(),
            OffsetDateTime::now_utc() - Duration::minutes(minutes_ago),
        )
    }

    fn claims(exp: i64) -> Claims {
        Claims {
            sub: "c".into(),
            kind: TokenKind::Company,
            scopes: vec![],
            app_id: None,
            company: None,
            roles: vec![],
            iss: None,
            iat: None,
            exp,
            nbf: None,
            jti: None,
            sid: None,
        }
    }

    #[test]
    fn the_newest_key_not_retired_signs_and_a_retired_key_leaves_the_set() {
        let (old, mut new) = (record("old", 10), record("new", 5));
        let keys = ServerKeys::from_records(&[old.clone(), new.clone()]).unwrap();
        assert_eq!(keys.signer().kid(), "new");
        let kids = |keys: &ServerKeys| -> Vec<Option<String>> {
            keys.public_jwks()
                .keys
                .iter()
                .map(|k| k.common.key_id.clone())
                .collect()
        };
        assert_eq!(kids(&keys), [Some("old".into()), Some("new".into())]);
        assert!(
            !keys.update(&[old.clone(), new.clone()]).unwrap(),
            "nothing left"
        );
        new.retired_at = Some(OffsetDateTime::now_utc());
        assert!(
            keys.update(&[old.clone(), new.clone()]).unwrap(),
            "a key left"
        );
        assert_eq!(keys.signer().kid(), "old");
        assert!(keys.current().verifier("new").is_none());
        assert!(keys.update(&[new]).is_err(), "no key left to sign with");
        assert_eq!(keys.signer().kid(), "old", "a failed update keeps the keys");
    }

    #[test]
    fn only_a_recorded_lifetime_is_signed_without_the_database() {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let mut stored = record("k", 1);
        let ring = |stored: &SigningKeyRecord| {
            KeyRing::new(
                ServerKeys::from_records(std::slice::from_ref(stored)).unwrap(),
                None,
            )
            .unwrap()
        };
        assert!(
            ring(&stored)
                .sign_recorded(&claims(now + 60))
                .unwrap()
                .is_none()
        );
        // Recorded (by this instance or another): loading the keys brings the value.
        stored.signed_until = OffsetDateTime::from_unix_timestamp(now + 3600).ok();
        let ring = ring(&stored);
        let token = ring.sign_recorded(&claims(now + 60)).unwrap().unwrap();
        assert_eq!(ring.verify(&token).unwrap().subject, "c");
        assert!(ring.sign_recorded(&claims(now + 7200)).unwrap().is_none());
    }
}
