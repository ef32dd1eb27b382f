//! OAuth2 clients: what a registration may hold, credentials (made, rotated, shown once), and
//! client authentication at the token endpoint.

use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;

use super::secrets;
use crate::{
    auth::SCOPES,
    error::{Error, ErrorCode, Result},
    store::{ClientRecord, ClientRegistration, DynStore, SecretChange},
};

/// What a partner's client may be granted when its `partner.toml` does not say.
pub const DEFAULT_PARTNER_SCOPES: [&str; 1] = [crate::auth::SCOPE_ALERTS_WRITE];

/// Every scope must be one maestro grants.
pub fn check_scopes(scopes: &[String]) -> anyhow::Result<()> {
    for scope in scopes {
        anyhow::ensure!(
            SCOPES.contains(&scope.as_str()),
            "unknown scope {scope:?} (known: {})",
            SCOPES.join(", ")
        );
    }
    Ok(())
}

/// A redirect URI must be absolute, https (plain http only to this machine, for development,
/// as RFC 8252 allows loopback redirects), and without a fragment (RFC 6749 §3.1.2).
pub fn check_redirect_uri(uri: &str) -> anyhow::Result<()> {
    let parsed =
        url::Url::parse(uri).map_err(|err| anyhow::anyhow!("redirect URI {uri:?}: {err}"))?;
    let loopback = match parsed.host() {
        Some(url::Host::Domain(domain)) => domain == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    anyhow::ensure!(
        parsed.scheme() == "https" || (parsed.scheme() == "http" && loopback),
        "redirect URI {uri:?} must be https (http only to localhost)"
    );
    anyhow::ensure!(
        parsed.fragment().is_none(),
        "redirect URI {uri:?} may not have a fragment"
    );
    Ok(())
}

/// A client's credentials, printed once when made.
#[derive(Clone, Debug, Serialize)]
pub struct Credentials {
    pub client_id: String,
    pub client_secret: String,
}

/// How a new secret replaces the current one.
#[derive(Clone, Copy, Debug)]
pub struct Rotation {
    /// How long the current secret keeps working.
    pub grace: Duration,
    /// Refuse every token issued to the client so far (a leaked secret), and its refresh tokens.
    pub revoke_tokens: bool,
}

pub struct Clients {
    store: DynStore,
}

impl Clients {
    pub fn new(store: DynStore) -> Self {
        Clients { store }
    }

    /// Credentials for a partner's client: made the first time; after that only with a
    /// rotation, since a secret is shown once and kept only as a hash.
    pub async fn partner_credentials(
        &self,
        partner_id: &str,
        rotation: Option<Rotation>,
    ) -> anyhow::Result<Credentials> {
        let client = self
            .store
            .client(partner_id)
            .await?
            .filter(|client| client.partner_id.as_deref() == Some(partner_id))
            .ok_or_else(|| anyhow::anyhow!("no partner {partner_id:?} is registered"))?;
        self.new_secret(&client, rotation).await
    }

    /// Registers an internal producer (a client without a partner) with its credentials, or
    /// with `rotation`, makes an existing one a new secret.
    pub async fn internal_credentials(
        &self,
        client_id: &str,
        scopes: &[String],
        rotation: Option<Rotation>,
    ) -> anyhow::Result<Credentials> {
        check_scopes(scopes)?;
        let registration = ClientRegistration {
            id: client_id.to_owned(),
            partner_id: None,
            scopes: scopes.to_vec(),
            redirect_uris: Vec::new(),
        };
        if !self.store.create_client(&registration).await? {
            let existing = self.store.client(client_id).await?.expect("it exists");
            anyhow::ensure!(
                existing.partner_id.is_none(),
                "{client_id:?} is a partner; use `maestro partner credentials {client_id}`"
            );
            anyhow::ensure!(
                rotation.is_some(),
                "client {client_id:?} exists; --rotate makes it a new secret"
            );
            if !scopes.is_empty() {
                self.store.register_client(&registration).await?;
            }
        }
        let client = self.store.client(client_id).await?.expect("it exists");
        self.new_secret(&client, rotation).await
    }

    async fn new_secret(
        &self,
        client: &ClientRecord,
        rotation: Option<Rotation>,
    ) -> anyhow::Result<Credentials> {
        anyhow::ensure!(
            client.secret_hash.is_none() || rotation.is_some(),
            "client {:?} has credentials already; its secret was shown when it was made. \
             --rotate makes a new one (the current one keeps working for --grace)",
            client.id
        );
        let secret = secrets::new_client_secret();
        let hash = {
            let secret = secret.clone();
            tokio::task::spawn_blocking(move || secrets::hash_secret(&secret)).await??
        };
        let now = OffsetDateTime::now_utc();
        let grace = rotation
            .filter(|r| !r.revoke_tokens && client.secret_hash.is_some())
            .map(|r| now + r.grace)
            .filter(|until| *until > now);
        let change = SecretChange {
            client_id: client.id.clone(),
            secret_hash: hash,
            previous_valid_until: grace,
            revoke_tokens_before: rotation.filter(|r| r.revoke_tokens).map(|_| now),
        };
        self.store.change_client_secret(&change, now).await?;
        Ok(Credentials {
            client_id: client.id.clone(),
            client_secret: secret,
        })
    }

    /// The client whose id and secret these are (the current secret, or the previous one during
    /// its grace period). The hash is checked on a blocking thread: it takes tens of
    /// milliseconds by design.
    pub async fn authenticate(&self, client_id: &str, secret: &str) -> Result<ClientRecord> {
        let refused = || {
            Error::new(
                ErrorCode::InvalidClient,
                "Client authentication failed: unknown client or wrong secret.",
            )
        };
        let Some(client) = self.store.client(client_id).await? else {
            return Err(refused());
        };
        let now = OffsetDateTime::now_utc();
        let hashes: Vec<String> = client
            .secret_hash
            .iter()
            .cloned()
            .chain(client.previous_secret_hash.clone().filter(|_| {
                client
                    .previous_secret_until
                    .is_some_and(|until| until > now)
            }))
            .collect();
        let secret = secret.to_owned();
        let matched = tokio::task::spawn_blocking(move || {
            hashes
                .iter()
                .any(|hash| secrets::secret_matches(&secret, hash))
        })
        .await
        .map_err(anyhow::Error::from)?;
        if matched { Ok(client) } else { Err(refused()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_must_be_known() {
        check_scopes(&["maestro.alerts.writeonly".into(), "maestro.admin".into()]).unwrap();
        assert!(check_scopes(&["maestro.everything".into()]).is_err());
    }

    #[test]
    fn redirect_uris_are_https_without_fragment_or_loopback_http() {
        for good in [
            "https://www.groundspan.com/concur/connect",
            "https://partner.example/cb?tenant=1",
            "http://localhost:3000/cb",
            "http://127.0.0.1/cb",
            "http://[::1]:8080/cb",
        ] {
            check_redirect_uri(good).unwrap();
        }
        for bad in [
            "http://partner.example/cb",
            "http://10.0.0.1/cb",
            "https://partner.example/cb#x",
            "/relative",
            "javascript:alert(1)",
        ] {
            assert!(check_redirect_uri(bad).is_err(), "{bad}");
        }
    }
}
