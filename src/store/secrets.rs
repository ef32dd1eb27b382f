//! Secrets at rest: the server's private signing keys and the partners' postback secrets are
//! stored encrypted under the master key, so that a copy of the database (a backup, a dump, a
//! stolen disk) gives away neither.
//!
//! The store seals a secret on its way in and opens it on its way out: records crossing the
//! `Store` trait carry secrets in the clear, the domain never sees a ciphertext, and both
//! backends share this one envelope. That is why this lives in `store`, not in `auth`: it is how
//! rows rest, not who may call.
//!
//! The envelope is `enc:v1:` and the standard base64 of a random 24-byte nonce followed by the
//! XChaCha20-Poly1305 ciphertext (with its tag). The associated data binds the ciphertext to its
//! column and row (`signing_keys.private_pem` and the kid; `partners.postback_secret` and the
//! partner id), so a ciphertext copied into another row or column does not open. Random nonces
//! are safe at 24 bytes, so instances need no shared counter.

use anyhow::{Context, anyhow, bail};
use base64::{Engine, engine::general_purpose::STANDARD};
use chacha20poly1305::{
    KeyInit, XChaCha20Poly1305, XNonce,
    aead::{Aead, Payload},
};
use rand::RngCore;

use super::{ClaimedDelivery, PartnerImport, PartnerRecord, SigningKeyRecord};

/// What a sealed value starts with; the version names the envelope, should it ever change.
pub const SEALED_PREFIX: &str = "enc:v1:";
const NONCE_BYTES: usize = 24;
const KEY_BYTES: usize = 32;

/// 32 bytes that never show in `Debug`.
#[derive(Clone)]
pub struct MasterKey([u8; KEY_BYTES]);

impl MasterKey {
    /// From its standard base64 form (what `openssl rand -base64 32` prints); surrounding
    /// whitespace is ignored. The error never repeats the value.
    pub fn from_base64(text: &str) -> anyhow::Result<MasterKey> {
        let bytes = STANDARD
            .decode(text.trim())
            .ok()
            .and_then(|bytes| <[u8; KEY_BYTES]>::try_from(bytes).ok())
            .context("it must be 32 bytes in standard base64 (openssl rand -base64 32)")?;
        Ok(MasterKey(bytes))
    }

    pub fn generate() -> MasterKey {
        let mut bytes = [0; KEY_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        MasterKey(bytes)
    }

    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

/// The columns that hold sealed values; each is part of the associated data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Column {
    /// `signing_keys.private_pem`, by kid.
    SigningKey,
    /// `partners.postback_secret` and `previous_postback_secret`, by partner id: a rotation
    /// moves the current ciphertext to the previous column as it is.
    PostbackSecret,
}

impl Column {
    fn label(self) -> &'static str {
        match self {
            Column::SigningKey => "signing_keys.private_pem",
            Column::PostbackSecret => "partners.postback_secret",
        }
    }

    fn what(self) -> &'static str {
        match self {
            Column::SigningKey => "signing key",
            Column::PostbackSecret => "the postback secret of partner",
        }
    }
}

/// Seals and opens stored secrets under one master key.
#[derive(Clone)]
pub struct Secrets {
    cipher: XChaCha20Poly1305,
    /// Where the key came from (the variable, or the key file), for error messages.
    source: String,
}

/// Never the key: where it came from.
impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secrets")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl Secrets {
    pub fn new(key: &MasterKey, source: impl Into<String>) -> Secrets {
        Secrets {
            cipher: XChaCha20Poly1305::new(&key.0.into()),
            source: source.into(),
        }
    }

    pub fn is_sealed(stored: &str) -> bool {
        stored.starts_with(SEALED_PREFIX)
    }

    pub fn seal(&self, column: Column, row: &str, plaintext: &str) -> String {
        let mut nonce = [0; NONCE_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let aad = associated_data(column, row);
        let ciphertext = self
            .cipher
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: &aad,
                },
            )
            .expect("XChaCha20-Poly1305 encrypts any message shorter than 256 GiB");
        let mut sealed = nonce.to_vec();
        sealed.extend_from_slice(&ciphertext);
        format!("{SEALED_PREFIX}{}", STANDARD.encode(sealed))
    }

    /// The plaintext of a sealed value. A value stored in the clear is refused too: start-up
    /// seals every one, so a plaintext here was written behind maestro's back.
    pub fn open(&self, column: Column, row: &str, stored: &str) -> anyhow::Result<String> {
        let what = column.what();
        let Some(encoded) = stored.strip_prefix(SEALED_PREFIX) else {
            bail!(
                "{what} {row} is stored unencrypted; `maestro migrate` encrypts it under the \
                 master key"
            );
        };
        let sealed = STANDARD
            .decode(encoded)
            .ok()
            .filter(|sealed| sealed.len() > NONCE_BYTES)
            .ok_or_else(|| anyhow!("{what} {row} is not a well-formed {SEALED_PREFIX} value"))?;
        let (nonce, ciphertext) = sealed.split_at(NONCE_BYTES);
        let nonce: [u8; NONCE_BYTES] = nonce.try_into().expect("split at the nonce's length");
        let aad = associated_data(column, row);
        let plaintext = self
            .cipher
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| {
                anyhow!(
                    "the master key ({}) does not decrypt {what} {row}: it is not the key this \
                     database's secrets were encrypted with (or the value was moved from another \
                     row)",
                    self.source
                )
            })?;
        String::from_utf8(plaintext).with_context(|| format!("{what} {row} is not text"))
    }

    pub(super) fn seal_key(&self, key: &SigningKeyRecord) -> SigningKeyRecord {
        SigningKeyRecord {
            private_pem: self.seal(Column::SigningKey, &key.kid, &key.private_pem),
            ..key.clone()
        }
    }

    pub(super) fn open_keys(
        &self,
        mut keys: Vec<SigningKeyRecord>,
    ) -> anyhow::Result<Vec<SigningKeyRecord>> {
        for key in &mut keys {
            key.private_pem = self.open(Column::SigningKey, &key.kid, &key.private_pem)?;
        }
        Ok(keys)
    }

    pub(super) fn seal_import(&self, import: &PartnerImport) -> PartnerImport {
        let seal = |secret: &str| self.seal(Column::PostbackSecret, &import.id, secret);
        PartnerImport {
            postback_secret: import.postback_secret.as_deref().map(seal),
            generated_secret: seal(&import.generated_secret),
            ..import.clone()
        }
    }

    pub(super) fn open_partners(
        &self,
        partners: Vec<PartnerRecord>,
    ) -> anyhow::Result<Vec<PartnerRecord>> {
        partners.into_iter().map(|p| self.open_partner(p)).collect()
    }

    pub(super) fn open_partner(&self, mut partner: PartnerRecord) -> anyhow::Result<PartnerRecord> {
        let open = |stored: &str| self.open(Column::PostbackSecret, &partner.id, stored);
        partner.postback_secret = open(&partner.postback_secret)?;
        partner.previous_postback_secret = partner
            .previous_postback_secret
            .as_deref()
            .map(open)
            .transpose()?;
        Ok(partner)
    }

    pub(super) fn open_claims(
        &self,
        mut claims: Vec<ClaimedDelivery>,
    ) -> anyhow::Result<Vec<ClaimedDelivery>> {
        for claim in &mut claims {
            let open = |stored: &str| self.open(Column::PostbackSecret, &claim.partner_id, stored);
            claim.postback_secret = open(&claim.postback_secret)?;
            claim.previous_postback_secret = claim
                .previous_postback_secret
                .as_deref()
                .map(open)
                .transpose()?;
        }
        Ok(claims)
    }
}

fn associated_data(column: Column, row: &str) -> Vec<u8> {
    [column.label().as_bytes(), b"\0", row.as_bytes()].concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets(key: &MasterKey) -> Secrets {
        Secrets::new(key, "the test key")
    }

    #[test]
    fn a_sealed_value_opens_under_its_key_column_and_row_only() {
        let key = MasterKey::generate();
        let box_ = secrets(&key);
        let sealed = box_.seal(Column::PostbackSecret, "acme", "whsec_c2VjcmV0");
        assert!(sealed.starts_with("enc:v1:"), "{sealed}");
        assert!(!sealed.contains("whsec_"));
        let decoded = STANDARD.decode(&sealed["enc:v1:".len()..]).unwrap();
        assert_eq!(
            decoded.len(),
            24 + "whsec_c2VjcmV0".len() + 16,
            "nonce, text, tag"
        );
        assert_eq!(
            box_.open(Column::PostbackSecret, "acme", &sealed).unwrap(),
            "whsec_c2VjcmV0"
        );
        // A fresh nonce each time: equal secrets do not look equal.
        assert_ne!(
            sealed,
            box_.seal(Column::PostbackSecret, "acme", "whsec_c2VjcmV0")
        );

        let wrong_key = secrets(&MasterKey::generate());
        let message = wrong_key
            .open(Column::PostbackSecret, "acme", &sealed)
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("the test key") && message.contains("acme"),
            "{message}"
        );
        assert!(
            box_.open(Column::PostbackSecret, "other", &sealed).is_err(),
            "swapped into another partner's row"
        );
        assert!(
            box_.open(Column::SigningKey, "acme", &sealed).is_err(),
            "swapped into another column"
        );
    }

    #[test]
    fn plaintext_and_damaged_values_are_refused_without_showing_them() {
        let box_ = secrets(&MasterKey::generate());
        let plain = box_
            .open(Column::SigningKey, "k1", "-----BEGIN PRIVATE KEY-----")
            .unwrap_err()
            .to_string();
        assert!(
            plain.contains("unencrypted") && !plain.contains("BEGIN"),
            "{plain}"
        );
        let mut sealed = box_.seal(Column::SigningKey, "k1", "pem");
        sealed.pop();
        sealed.push(if sealed.ends_with('A') { 'B' } else { 'A' });
        assert!(box_.open(Column::SigningKey, "k1", &sealed).is_err());
        assert!(box_.open(Column::SigningKey, "k1", "enc:v1:AAAA").is_err());
        assert!(box_.open(Column::SigningKey, "k1", "enc:v1:!!").is_err());
    }

    #[test]
    fn a_master_key_is_32_bytes_of_standard_base64() {
        let key = MasterKey::generate();
        let again = MasterKey::from_base64(&format!(" {}\n", key.to_base64())).unwrap();
        assert_eq!(again.0, key.0);
        let short = STANDARD.encode([7u8; 16]);
        let message = MasterKey::from_base64(&short).unwrap_err().to_string();
        assert!(
            message.contains("32 bytes") && !message.contains(&short),
            "{message}"
        );
        assert!(MasterKey::from_base64("not base64 at all!").is_err());
        assert_eq!(format!("{key:?}"), "MasterKey(<redacted>)");
    }
}
