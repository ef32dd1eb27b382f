//! The server's signing keys as the store keeps them (rotation: `maestro keys`).

use time::OffsetDateTime;

/// One of the server's signing keys. The store keeps `private_pem` encrypted; records carry it
/// in the clear.
#[derive(Clone, PartialEq)]
pub struct SigningKeyRecord {
    pub kid: String,
    pub algorithm: String,
    pub private_pem: String,
    pub created_at: OffsetDateTime,
    /// The latest `exp` of any token the key signed (rounded up), or `None` if it signed none;
    /// [`SIGNED_UNTIL_UNKNOWN`] for keys that signed before this was recorded. Ignored when a
    /// key is added.
    pub signed_until: Option<OffsetDateTime>,
    /// When the key stopped verifying. Ignored when a key is added.
    pub retired_at: Option<OffsetDateTime>,
}

impl SigningKeyRecord {
    /// A new key: it has signed nothing and is not retired.
    pub fn new(
        kid: &str,
        algorithm: &str,
        private_pem: String,
        created_at: OffsetDateTime,
    ) -> Self {
        SigningKeyRecord {
            kid: kid.to_owned(),
            algorithm: algorithm.to_owned(),
            private_pem,
            created_at,
            signed_until: None,
            retired_at: None,
        }
    }
}

/// Never the private key.
impl std::fmt::Debug for SigningKeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeyRecord")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .field("created_at", &self.created_at)
            .field("signed_until", &self.signed_until)
            .field("retired_at", &self.retired_at)
            .finish_non_exhaustive()
    }
}

/// `signed_until` of the keys that signed tokens before maestro recorded their lifetimes
/// (migration 0009): any of those tokens may still be live, for all maestro knows.
pub const SIGNED_UNTIL_UNKNOWN: OffsetDateTime = time::macros::datetime!(9999-12-31 23:59:59 UTC);

/// What `Store::retire_signing_key` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetireOutcome {
    Retired,
    UnknownKey,
    AlreadyRetired,
    /// The key is the one that signs (the newest not retired): nothing would sign without it.
    Signing,
    /// Tokens the key signed may be live until then (its `signed_until`); not retired.
    MayBeLive {
        until: OffsetDateTime,
    },
}
