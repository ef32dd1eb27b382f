//! Signing in to the inbox page without a password: `maestro inbox open-url` prints a link whose
//! token is short-lived and good for one thing only (scope `maestro.inbox.login`: exchanging it
//! for the inbox cookie, never calling the API). `GET /inbox/login?token=…` exchanges it, once,
//! for a session kept in an `HttpOnly`, `SameSite=Strict` cookie.
//!
//! The link is a JWT minted with the server's key (`signing::issue`), so any instance accepts
//! it; its `jti` is recorded when it is exchanged, so it works once on every instance together.
//! The session is a record in the database and the cookie a random secret naming it (the
//! database keeps its SHA-256): signing out ends the record, and every instance refuses the
//! cookie from the next request on — which a self-contained token could not do.

use std::time::Duration;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use time::OffsetDateTime;

use crate::{
    apps::secrets::{random_token, token_digest},
    auth::{
        KeyRing, SCOPE_INBOX_LOGIN, TokenKind, normalize_user_id,
        signing::{self, TokenRequest},
    },
    error::{Error, Result},
    store::{DynStore, InboxOwner, InboxSession},
};

/// The cookie that carries the session.
pub const COOKIE: &str = "maestro_inbox";
/// The path the link points at.
pub const LOGIN_PATH: &str = "/inbox/login";
/// What a session cookie's value starts with (and secret scanners can find).
const SESSION_PREFIX: &str = "mis_";

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

/// A signed-in session: the cookie's value and how long it lasts.
pub struct Session {
    pub token: String,
    pub max_age: Duration,
}

fn refused() -> Error {
    Error::unauthenticated(
        "This is not an inbox sign-in link, or it was used already; ask for a new one \
         (maestro inbox open-url).",
    )
}

/// Exchanges a sign-in link's token for a session of `ttl`. Only a verified user token with the
/// sign-in scope will do, and only once.
pub async fn exchange(
    store: &DynStore,
    keyring: &KeyRing,
    link_token: &str,
    ttl: Duration,
    now: OffsetDateTime,
) -> Result<Session> {
    let principal = keyring.verify(link_token)?;
    if principal.kind != TokenKind::User || !principal.has_scope(SCOPE_INBOX_LOGIN) {
        return Err(refused());
    }
    let company_id = principal.company_id.ok_or_else(refused)?;
    let jti = verified_jti(link_token).ok_or_else(refused)?;
    // Kept until the link would be refused anyway (its `exp` plus the leeway).
    let link_lapses = OffsetDateTime::from_unix_timestamp(principal.accepted_until)
        .map_err(|_| refused())?
        + time::Duration::seconds(1);
    if !store.use_sign_in_link(&jti, link_lapses).await? {
        return Err(refused());
    }
    let token = random_token(SESSION_PREFIX);
    let session = InboxSession {
        digest: token_digest(&token),
        owner: InboxOwner {
            company_id,
            user_id: normalize_user_id(&principal.subject),
        },
        expires_at: now + ttl,
    };
    store.create_inbox_session(&session, now).await?;
    Ok(Session {
        token,
        max_age: ttl,
    })
}

/// The session a cookie names, while it lasts and was not ended.
pub async fn session(
    store: &DynStore,
    cookie: &str,
    now: OffsetDateTime,
) -> Result<Option<InboxSession>> {
    if !cookie.starts_with(SESSION_PREFIX) {
        return Ok(None);
    }
    Ok(store.inbox_session(&token_digest(cookie), now).await?)
}

/// Signs out: the session ends for every instance. False when it had ended already.
pub async fn sign_out(store: &DynStore, cookie: &str, now: OffsetDateTime) -> Result<bool> {
    if !cookie.starts_with(SESSION_PREFIX) {
        return Ok(false);
    }
    Ok(store.end_inbox_session(&token_digest(cookie), now).await?)
}

/// The `jti` of a token `keyring` has verified: read from its payload, which the signature
/// covers.
fn verified_jti(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
    claims["jti"]
        .as_str()
        .filter(|jti| !jti.is_empty() && jti.len() <= 200)
        .map(str::to_owned)
}
