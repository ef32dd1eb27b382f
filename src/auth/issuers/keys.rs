//! Reading a source's keys: which are accepted, pinned to which algorithm, and who owns a `kid`.

use std::{collections::HashMap, sync::Arc};

use anyhow::Context;
use jsonwebtoken::{
    Algorithm, DecodingKey,
    jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse},
};

use super::{ExternalKey, Issuers, TrustedSource};

impl Issuers {
    /// Makes `keys` source `index`'s keys, in place of those it had. At start-up a key
    /// without a `kid` or with a `kid` already taken is an error; later it is refused, logged,
    /// and the other keys are served.
    pub(super) fn install(
        &self,
        index: usize,
        keys: Vec<serde_json::Value>,
        at_start: bool,
    ) -> anyhow::Result<()> {
        let source = &self.sources[index];
        let refuse = |problem: String| -> anyhow::Result<()> {
            if at_start {
                anyhow::bail!("{}: {problem}", source.described);
            }
            tracing::error!(source = %source.described, "{problem}: the key is refused, the source's other keys are served");
            Ok(())
        };
        let mut fresh: HashMap<String, (Algorithm, Jwk, DecodingKey)> = HashMap::new();
        for value in keys {
            let Some(jwk) = readable(value) else { continue };
            let Some(kid) = jwk.common.key_id.clone() else {
                refuse("every trusted key needs a kid".into())?;
                continue;
            };
            let Some(algorithm) = pinned_algorithm(&jwk) else {
                tracing::warn!(%kid, source = %source.described, "ignoring a trusted key: only RS256, ES256 (P-256) and EdDSA (Ed25519) signing keys are accepted");
                continue;
            };
            if fresh.contains_key(&kid) {
                refuse(format!("key id {kid} appears twice among the trusted keys"))?;
                continue;
            }
            match DecodingKey::from_jwk(&jwk) {
                Ok(key) => {
                    fresh.insert(kid, (algorithm, jwk, key));
                }
                Err(err) => refuse(format!("key {kid} cannot be used ({err})"))?,
            }
        }
        let mut keys = self.keys.write().expect("issuer keys lock poisoned");
        let mut installed = HashMap::new();
        for (kid, (algorithm, jwk, key)) in fresh {
            match keys.get(&kid) {
                Some(held) if held.source != index => {
                    refuse(format!(
                        "key id {kid} appears twice among the trusted keys (another source publishes it)"
                    ))?;
                }
                Some(held) if held.jwk == jwk => {
                    installed.insert(kid, held.clone());
                }
                _ => {
                    let key = Arc::new(ExternalKey {
                        kid: kid.clone(),
                        algorithm,
                        key,
                        jwk,
                        source: index,
                        issuer: source.issuer.clone(),
                        audience: source.audience.clone(),
                    });
                    installed.insert(kid, key);
                }
            }
        }
        if installed.is_empty() {
            tracing::warn!(source = %source.described, "this trusted JWKS source has no usable key");
        }
        keys.retain(|_, key| key.source != index);
        keys.extend(installed);
        Ok(())
    }
}

/// The members of a JWKS document's `keys`, each read on its own (see [`readable`]).
pub(super) fn document_keys(
    document: &[u8],
    source: &TrustedSource,
) -> anyhow::Result<Vec<serde_json::Value>> {
    #[derive(serde::Deserialize)]
    struct Document {
        keys: Vec<serde_json::Value>,
    }
    let document: Document = serde_json::from_slice(document)
        .with_context(|| format!("{} is not a JWKS document", source.location))?;
    Ok(document.keys)
}

/// A key as jsonwebtoken reads it, or `None` with a warning: an IdP that starts publishing a
/// key type this server does not know must not stop its other keys from being served.
fn readable(value: serde_json::Value) -> Option<Jwk> {
    let kid = value.get("kid").map(ToString::to_string);
    let kid = kid.as_deref();
    match serde_json::from_value(value) {
        Ok(jwk) => Some(jwk),
        Err(err) => {
            tracing::warn!(kid, error = %err, "ignoring a trusted key this server cannot read");
            None
        }
    }
}

/// The algorithm a key is pinned to, or `None` for keys maestro will not accept tokens from:
/// symmetric keys, encryption keys, other algorithms or curves.
fn pinned_algorithm(jwk: &Jwk) -> Option<Algorithm> {
    let inferred = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Some(Algorithm::RS256),
        AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => {
            Some(Algorithm::ES256)
        }
        AlgorithmParameters::OctetKeyPair(okp) if okp.curve == EllipticCurve::Ed25519 => {
            Some(Algorithm::EdDSA)
        }
        _ => None,
    };
    let declared = match jwk.common.key_algorithm {
        None => inferred,
        Some(KeyAlgorithm::RS256) => Some(Algorithm::RS256),
        Some(KeyAlgorithm::ES256) => Some(Algorithm::ES256),
        Some(KeyAlgorithm::EdDSA) => Some(Algorithm::EdDSA),
        Some(_) => None,
    };
    let signs = matches!(
        jwk.common.public_key_use,
        None | Some(PublicKeyUse::Signature)
    );
    match (declared, inferred) {
        (Some(algorithm), Some(family)) if algorithm == family && signs => Some(algorithm),
        _ => None,
    }
}
