//! The App Center's secrets: client secrets (shown once, stored as Argon2id hashes) and opaque
//! request and refresh tokens (random, stored as SHA-256 digests: they carry 256 bits of
//! randomness, so a fast digest cannot be searched backwards, unlike a chosen password).

use argon2::{
    Argon2, PasswordHash, PasswordHasher, PasswordVerifier,
    password_hash::{SaltString, rand_core::OsRng},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use rand::RngCore;

use crate::digest::sha256_hex;

/// A fresh random token with a prefix that says what it is (and lets secret scanners find it).
pub fn random_token(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// What the store keeps of an opaque token.
pub fn token_digest(token: &str) -> String {
    sha256_hex(token.as_bytes())
}

/// A new client secret: `mcs_` and 256 random bits.
pub fn new_client_secret() -> String {
    random_token("mcs_")
}

/// The Argon2id hash of a client secret (the crate's defaults: 19 MiB, 2 passes, the OWASP
/// recommendation), as a PHC string with its salt. Slow on purpose: call it off the runtime's
/// threads.
pub fn hash_secret(secret: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Ok(Argon2::default()
        .hash_password(secret.as_bytes(), &salt)
        .map_err(|err| anyhow::anyhow!("hashing a client secret: {err}"))?
        .to_string())
}

/// Whether `secret` is the one `hash` was made from. A hash that does not parse matches nothing.
pub fn secret_matches(secret: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(secret.as_bytes(), &parsed)
            .is_ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_matches_its_hash_only() {
        let secret = new_client_secret();
        assert!(
            secret.starts_with("mcs_") && secret.len() == 4 + 43,
            "{secret}"
        );
        let hash = hash_secret(&secret).unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(!hash.contains(&secret[4..]));
        assert!(secret_matches(&secret, &hash));
        assert!(!secret_matches(&new_client_secret(), &hash));
        assert!(!secret_matches(&secret, "not a hash"));
        assert_ne!(hash, hash_secret(&secret).unwrap(), "salted");
    }

    #[test]
    fn tokens_are_random_and_kept_as_digests() {
        let (a, b) = (random_token("mrt_"), random_token("mrt_"));
        assert_ne!(a, b);
        assert_eq!(token_digest(&a).len(), 64);
        assert_ne!(token_digest(&a), token_digest(&b));
    }
}
