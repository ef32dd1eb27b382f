//! Signing in to the inbox page without a password: `maestro inbox open-url` prints a link whose
//! token is short-lived and good for one thing only (scope `maestro.inbox.login`: exchanging it
//! for the inbox cookie, never calling the API). `GET /inbox/login?token=…` exchanges it for a
//! session: a user token with the inbox scope, kept in an `HttpOnly`, `SameSite=Strict` cookie.
//! Both are JWTs minted with the server's key (`signing::issue`), so any instance accepts them.

use std::time::Duration;

use crate::{
    auth::{
        KeyRing, Principal, SCOPE_INBOX, SCOPE_INBOX_LOGIN, TokenKind,
        signing::{self, TokenRequest},
    },
    error::{Error, Result},
    store::DynStore,
};

/// The cookie that carries the session.
pub const COOKIE: &str = "maestro_inbox";
/// The path the link points at.
pub const LOGIN_PATH: &str = "/inbox/login";

/// A sign-in link to the inbox of `user` in `company`, valid for `ttl`.
pub async fn sign_in_link(
    store: &DynStore,
    keyring: &KeyRing,
    public_url: &str,
    user: &str,
    company: &str,
    ttl: Duration,
) -> anyhow::Result<String> {
    let claims = TokenRequest {
        kind: TokenKind::User,
        subject: user.to_owned(),
        app_id: None,
        scopes: vec![SCOPE_INBOX_LOGIN.to_owned()],
        company: Some(company.to_owned()),
        roles: vec![],
        ttl_secs: ttl.as_secs().max(1) as i64,
    }
    .claims(public_url)?;
    Ok(format!(
        "{}{LOGIN_PATH}?token={}",
        public_url.trim_end_matches('/'),
        signing::issue(store, keyring, &claims).await?
    ))
}

/// A signed-in session: the cookie's token and how long it lasts.
pub struct Session {
    pub token: String,
    pub max_age: Duration,
}

/// Exchanges a sign-in link's token for a session of `ttl`. Only a verified user token with the
/// sign-in scope will do.
pub async fn exchange(
    store: &DynStore,
    keyring: &KeyRing,
    public_url: &str,
    link_token: &str,
    ttl: Duration,
) -> Result<Session> {
    let principal: Principal = keyring.verify(link_token)?;
    if principal.kind != TokenKind::User || !principal.has_scope(SCOPE_INBOX_LOGIN) {
        return Err(Error::unauthenticated(
            "This is not an inbox sign-in link; ask for a new one (maestro inbox open-url).",
        ));
    }
    let claims = TokenRequest {
        kind: TokenKind::User,
        subject: principal.subject,
        app_id: None,
        scopes: vec![SCOPE_INBOX.to_owned()],
        company: principal.company_id,
        roles: vec![],
        ttl_secs: ttl.as_secs().max(1) as i64,
    }
    .claims(public_url)
    .map_err(Error::Internal)?;
    Ok(Session {
        token: signing::issue(store, keyring, &claims)
            .await
            .map_err(Error::Internal)?,
        max_age: ttl,
    })
}
