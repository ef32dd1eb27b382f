//! Tokens refused after the fact: those of an app for a company that disconnected it (until it
//! connects the app again, and for ever those issued before the disconnection), and those of a
//! client whose secret was revoked at once. Checked on every verified token, whoever issued it,
//! from a copy of the store's (small) revocation table that each instance refreshes; the
//! instance that records a revocation applies it at once.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, RwLock},
    time::Duration,
};

use tokio::sync::watch;

use crate::{
    auth::Principal,
    error::{Error, Result},
    store::{DynStore, Revocation},
};

/// (client, company): `None` for the client's revocation across every company.
type Key = (String, Option<String>);

#[derive(Clone, Copy, Debug)]
struct Refused {
    /// Tokens issued (`iat`) before this instant, in unix milliseconds, are refused.
    before_ms: i128,
    /// Every token of the pair is refused, whenever issued.
    all: bool,
}

pub struct Revocations {
    store: DynStore,
    refresh: Duration,
    entries: RwLock<HashMap<Key, Refused>>,
    /// Refresh-token chains revoked within `grant_memory`: the access tokens they issued (whose
    /// `sid` names them) are refused. Older ones need no entry, their access tokens expired.
    grants: RwLock<HashSet<String>>,
    grant_memory: Duration,
}

impl Revocations {
    /// Loads the revocations in force; `refresh` is how often they are read again, and
    /// `grant_memory` how long an access token of a revoked chain may live (its TTL and the
    /// verification leeway).
    pub async fn load(
        store: DynStore,
        refresh: Duration,
        grant_memory: Duration,
    ) -> anyhow::Result<Arc<Self>> {
        let revocations = Arc::new(Revocations {
            store,
            refresh,
            entries: RwLock::default(),
            grants: RwLock::default(),
            grant_memory,
        });
        revocations.refresh().await?;
        Ok(revocations)
    }

    /// Reads the revocations again (what other instances and the CLI recorded).
    pub async fn refresh(&self) -> anyhow::Result<()> {
        let loaded = self.store.revocations().await?;
        let entries = loaded.iter().map(entry).collect();
        let since = time::OffsetDateTime::now_utc() - self.grant_memory;
        let grants = self
            .store
            .revoked_grants(since)
            .await?
            .into_iter()
            .collect();
        *self.entries.write().expect("revocations lock poisoned") = entries;
        *self.grants.write().expect("revocations lock poisoned") = grants;
        Ok(())
    }

    /// Applies the revocation of a refresh-token chain this instance recorded (a replay).
    pub fn note_grant(&self, chain_id: &str) {
        self.grants
            .write()
            .expect("revocations lock poisoned")
            .insert(chain_id.to_owned());
    }

    /// Applies a revocation this instance recorded, before the next refresh would.
    pub fn note(&self, revocation: &Revocation) {
        let (key, refused) = entry(revocation);
        self.entries
            .write()
            .expect("revocations lock poisoned")
            .insert(key, refused);
    }

    /// A pair this instance connected again: its new tokens are accepted from now on (those
    /// issued before its disconnection stay refused).
    pub fn reconnected(&self, client_id: &str, company_id: &str) {
        let key = (client_id.to_owned(), Some(company_id.to_owned()));
        if let Some(refused) = self
            .entries
            .write()
            .expect("revocations lock poisoned")
            .get_mut(&key)
        {
            refused.all = false;
        }
    }

    /// 401 when the token of `principal` has been revoked.
    pub fn check(&self, principal: &Principal) -> Result<()> {
        if let Some(grant) = &principal.grant
            && self
                .grants
                .read()
                .expect("revocations lock poisoned")
                .contains(grant)
        {
            return Err(Error::unauthenticated(
                "The token was revoked with its grant: a refresh token of it was used twice.",
            ));
        }
        let Some(app_id) = &principal.app_id else {
            return Ok(());
        };
        let entries = self.entries.read().expect("revocations lock poisoned");
        if entries.is_empty() {
            return Ok(());
        }
        let issued_ms = principal.issued_at.map(|iat| i128::from(iat) * 1000);
        for company in [principal.company_id.clone(), None] {
            let Some(refused) = entries.get(&(app_id.clone(), company.clone())) else {
                continue;
            };
            // A token without `iat` cannot show it came after the revocation.
            if refused.all || issued_ms.is_none_or(|issued| issued < refused.before_ms) {
                return Err(Error::unauthenticated(match company {
                    Some(_) => "The token was revoked: the company disconnected the application.",
                    None => "The token was revoked with the application's credentials.",
                }));
            }
        }
        Ok(())
    }

    /// Refreshes every `refresh` until `stop` turns true.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        while !*stop.borrow() {
            tokio::select! {
                () = tokio::time::sleep(self.refresh) => {
                    if let Err(err) = self.refresh().await {
                        tracing::warn!(error = format!("{err:#}"), "could not read revocations");
                    }
                }
                _ = stop.changed() => {}
            }
        }
    }
}

fn entry(revocation: &Revocation) -> (Key, Refused) {
    (
        (revocation.client_id.clone(), revocation.company_id.clone()),
        Refused {
            before_ms: revocation.revoked_before.unix_timestamp_nanos() / 1_000_000,
            all: revocation.disconnected,
        },
    )
}
