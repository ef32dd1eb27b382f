//! The token endpoint's grants (SPEC §2.1, RFC 6749): a company token for a redeemed request
//! token (`password` with `credtype=authtoken`), a rotation of a refresh token, and an app token
//! for the client itself (`client_credentials`). The client authenticates every time.

use std::{net::IpAddr, sync::Arc, time::Duration};

use time::OffsetDateTime;

use super::{Clients, Revocations, secrets, throttle::Throttle};
use crate::{
    auth::{Claims, KeyRing, TokenKind, normalize_company_id, signing},
    error::{Error, ErrorCode, Problem, Result},
    store::{ClientRecord, DynStore, NewRefreshToken, RefreshOutcome},
};

/// A token request, as the surface read it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrantRequest {
    pub client_id: String,
    pub client_secret: String,
    pub grant: Grant,
    /// The scopes asked for (a subset of what the client, or the refresh token, holds).
    pub scope: Option<Vec<String>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Grant {
    /// `password` with `credtype=authtoken`: the company and the request token its
    /// administrator's connection handed the partner.
    RequestToken {
        company_id: String,
        request_token: String,
    },
    RefreshToken {
        refresh_token: String,
    },
    ClientCredentials,
}

impl GrantRequest {
    /// Reads the form's parameters and the client's credentials (`basic`: from HTTP Basic,
    /// already decoded). Every parameter may appear once (RFC 6749 §3.2).
    pub fn from_params(
        params: &[(String, String)],
        basic: Option<(String, String)>,
    ) -> Result<GrantRequest> {
        let mut seen = std::collections::BTreeMap::new();
        for (name, value) in params {
            if seen.insert(name.as_str(), value.as_str()).is_some() {
                return Err(invalid(name, format!("{name} is given more than once.")));
            }
        }
        let get = |name: &str| seen.get(name).copied().filter(|v| !v.is_empty());
        let (client_id, client_secret) = match (basic, get("client_secret")) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "client_secret",
                    "The client authenticates one way: HTTP Basic or client_secret, not both.",
                ));
            }
            (Some((id, secret)), None) => {
                if get("client_id").is_some_and(|form_id| form_id != id) {
                    return Err(invalid("client_id", "client_id differs from HTTP Basic's."));
                }
                (id, secret)
            }
            (None, Some(secret)) => match get("client_id") {
                Some(id) => (id.to_owned(), secret.to_owned()),
                None => return Err(missing("client_id")),
            },
            (None, None) => {
                return Err(Error::new(
                    ErrorCode::InvalidClient,
                    "The client must authenticate: HTTP Basic, or client_id and client_secret.",
                ));
            }
        };
        let required = |name: &str| get(name).map(str::to_owned).ok_or_else(|| missing(name));
        let grant = match get("grant_type") {
            None => return Err(missing("grant_type")),
            Some("password") => {
                if get("credtype") != Some("authtoken") {
                    return Err(invalid(
                        "credtype",
                        "The password grant takes credtype=authtoken (a request token).",
                    ));
                }
                Grant::RequestToken {
                    company_id: normalize_company_id(&required("username")?),
                    request_token: required("password")?,
                }
            }
            Some("refresh_token") => Grant::RefreshToken {
                refresh_token: required("refresh_token")?,
            },
            Some("client_credentials") => Grant::ClientCredentials,
            Some(other) => {
                return Err(Error::new(
                    ErrorCode::UnsupportedGrantType,
                    format!(
                        "grant_type {other:?} is not supported (password, refresh_token, \
                         client_credentials)."
                    ),
                ));
            }
        };
        let scope = get("scope").map(|s| s.split_whitespace().map(str::to_owned).collect());
        Ok(GrantRequest {
            client_id,
            client_secret,
            grant,
            scope,
        })
    }
}

fn missing(name: &str) -> Error {
    Error::Rejected(vec![
        Problem::new(ErrorCode::MissingField, format!("{name} is required."))
            .with_detail("parameter", name),
    ])
}

fn invalid(name: &str, message: impl Into<String>) -> Error {
    Error::Rejected(vec![
        Problem::new(ErrorCode::InvalidField, message).with_detail("parameter", name),
    ])
}

/// What a grant hands out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issued {
    pub access_token: String,
    pub expires_in: Duration,
    /// A refresh token and when it expires (company tokens only).
    pub refresh: Option<(String, OffsetDateTime)>,
    pub scopes: Vec<String>,
    /// The company, on company tokens.
    pub company_id: Option<String>,
}

/// Lifetimes and the issuer name of the tokens handed out.
#[derive(Clone, Debug)]
pub struct GrantSettings {
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
    /// `iss` of the access tokens.
    pub issuer: String,
}

pub struct Grants {
    store: DynStore,
    clients: Arc<Clients>,
    /// Told at once of a chain this instance revokes (a replayed refresh token).
    revocations: Arc<Revocations>,
    throttle: Throttle,
    settings: GrantSettings,
}

impl Grants {
    pub fn new(
        store: DynStore,
        clients: Arc<Clients>,
        revocations: Arc<Revocations>,
        settings: GrantSettings,
    ) -> Self {
        Grants {
            store,
            clients,
            revocations,
            throttle: Throttle::default(),
            settings,
        }
    }

    /// Authenticates the client (throttled per client and address), then grants.
    pub async fn grant(
        &self,
        keyring: &KeyRing,
        request: &GrantRequest,
        address: Option<IpAddr>,
    ) -> Result<Issued> {
        let id = request.client_id.as_str();
        if let Err(retry_after_secs) = self.throttle.check(id, address) {
            return Err(Error::RateLimited { retry_after_secs });
        }
        let client = match self.clients.authenticate(id, &request.client_secret).await {
            Ok(client) => client,
            Err(err) => {
                if err.code() == ErrorCode::InvalidClient {
                    self.throttle.failed(id, address);
                }
                return Err(err);
            }
        };
        self.throttle.succeeded(id, address);
        let now = OffsetDateTime::now_utc();
        match &request.grant {
            Grant::RequestToken {
                company_id,
                request_token,
            } => {
                if client.partner_id.is_none() {
                    return Err(Error::new(
                        ErrorCode::UnauthorizedClient,
                        "Only a partner's client is connected by companies.",
                    ));
                }
                let scopes = granted(request.scope.as_deref(), &client.scopes)?;
                let (refresh, token) = self.new_refresh(&client, now);
                let token = NewRefreshToken {
                    chain_id: uuid::Uuid::new_v4().simple().to_string(),
                    company_id: company_id.clone(),
                    scopes: scopes.clone(),
                    ..token
                };
                let redeemed = self
                    .store
                    .redeem_request_token(&secrets::token_digest(request_token), &token, now)
                    .await?;
                if redeemed.is_none() {
                    return Err(Error::new(
                        ErrorCode::InvalidGrant,
                        "The request token is unknown, used, expired, or not for this client and \
                         company; connect the application again.",
                    ));
                }
                self.company_token(keyring, &client, company_id, scopes, now, refresh, &token)
                    .await
            }
            Grant::RefreshToken { refresh_token } => {
                let (refresh, next) = self.new_refresh(&client, now);
                let outcome = self
                    .store
                    .rotate_refresh_token(
                        &secrets::token_digest(refresh_token),
                        request.scope.as_deref(),
                        &next,
                        now,
                    )
                    .await?;
                let (chain_id, company_id, held) = match outcome {
                    RefreshOutcome::Rotated {
                        chain_id,
                        company_id,
                        scopes,
                    } => (chain_id, company_id, scopes),
                    RefreshOutcome::ScopeNotHeld => {
                        return Err(Error::new(
                            ErrorCode::InvalidScope,
                            "The scope asked for is more than the refresh token holds.",
                        ));
                    }
                    RefreshOutcome::Reused { chain_id } => {
                        self.revocations.note_grant(&chain_id);
                        tracing::warn!(client = %client.id, "a used refresh token was presented again; its chain is revoked");
                        return Err(Error::new(
                            ErrorCode::InvalidGrant,
                            "The refresh token was used already; every token of its chain is \
                             now revoked. Connect the application again.",
                        ));
                    }
                    RefreshOutcome::Invalid => {
                        return Err(Error::new(
                            ErrorCode::InvalidGrant,
                            "The refresh token is unknown, expired, revoked, or another client's.",
                        ));
                    }
                };
                let scopes = granted(request.scope.as_deref(), &held)?;
                let next = NewRefreshToken {
                    chain_id,
                    company_id: company_id.clone(),
                    scopes: held,
                    ..next
                };
                self.company_token(keyring, &client, &company_id, scopes, now, refresh, &next)
                    .await
            }
            Grant::ClientCredentials => {
                let scopes = granted(request.scope.as_deref(), &client.scopes)?;
                let claims = self.claims(&client, TokenKind::App, &client.id, &scopes, now);
                Ok(Issued {
                    access_token: signing::issue(&self.store, keyring, &claims).await?,
                    expires_in: self.settings.access_ttl,
                    refresh: None,
                    scopes,
                    company_id: None,
                })
            }
        }
    }

    /// A new refresh token of the client, in the clear and as stored; its chain, company and
    /// scopes are for the caller to set (a rotation has the store copy them from the token it
    /// replaces).
    fn new_refresh(&self, client: &ClientRecord, now: OffsetDateTime) -> (String, NewRefreshToken) {
        let token = secrets::random_token("mrt_");
        let stored = NewRefreshToken {
            token_hash: secrets::token_digest(&token),
            chain_id: String::new(),
            client_id: client.id.clone(),
            company_id: String::new(),
            scopes: Vec::new(),
            issued_at: now,
            expires_at: now + self.settings.refresh_ttl,
        };
        (token, stored)
    }

    #[allow(clippy::too_many_arguments)]
    async fn company_token(
        &self,
        keyring: &KeyRing,
        client: &ClientRecord,
        company_id: &str,
        scopes: Vec<String>,
        now: OffsetDateTime,
        refresh: String,
        stored: &NewRefreshToken,
    ) -> Result<Issued> {
        let mut claims = self.claims(client, TokenKind::Company, company_id, &scopes, now);
        // The grant the token descends from: revoking the chain revokes the token.
        claims.sid = Some(stored.chain_id.clone());
        Ok(Issued {
            access_token: signing::issue(&self.store, keyring, &claims).await?,
            expires_in: self.settings.access_ttl,
            refresh: Some((refresh, stored.expires_at)),
            scopes,
            company_id: Some(company_id.to_owned()),
        })
    }

    fn claims(
        &self,
        client: &ClientRecord,
        kind: TokenKind,
        subject: &str,
        scopes: &[String],
        now: OffsetDateTime,
    ) -> Claims {
        let issued = now.unix_timestamp();
        Claims {
            sub: subject.to_owned(),
            kind,
            scopes: scopes.to_vec(),
            app_id: Some(client.id.clone()),
            company: None,
            roles: Vec::new(),
            iss: Some(self.settings.issuer.clone()),
            iat: Some(issued),
            exp: issued + self.settings.access_ttl.as_secs() as i64,
            nbf: Some(issued),
            jti: Some(uuid::Uuid::new_v4().to_string()),
            sid: None,
        }
    }
}

/// The scopes a token gets: all `held`, or those asked for if every one of them is held.
fn granted(asked: Option<&[String]>, held: &[String]) -> Result<Vec<String>> {
    match asked {
        None => Ok(held.to_vec()),
        Some(asked) => match asked.iter().find(|scope| !held.contains(scope)) {
            Some(scope) => Err(Error::new(
                ErrorCode::InvalidScope,
                format!("The scope {scope:?} is not granted to this client."),
            )),
            None if asked.is_empty() => Ok(held.to_vec()),
            None => Ok(asked.to_vec()),
        },
    }
}
