//! The App Center's storage (SPEC §2.1): OAuth2 clients, company connections, and the request
//! and refresh tokens of the token endpoint. A trait of its own, which [`super::Store`] extends,
//! so that each backend implements it in a file of its own.
//!
//! Secrets never reach this layer in the clear: client secrets arrive as Argon2id hashes, request
//! and refresh tokens as SHA-256 digests.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::StoreResult;

/// An OAuth2 client as registered: a partner (its id is the partner's) or an internal producer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientRecord {
    pub id: String,
    /// The partner the client is; `None` for an internal producer.
    pub partner_id: Option<String>,
    /// What the client may be granted.
    pub scopes: Vec<String>,
    pub redirect_uris: Vec<String>,
    /// The current secret's Argon2id hash (PHC string); `None` until credentials are made.
    pub secret_hash: Option<String>,
    /// The secret before the last rotation, accepted until `previous_secret_until`.
    pub previous_secret_hash: Option<String>,
    pub previous_secret_until: Option<OffsetDateTime>,
}

/// What registering a client sets (its secrets are set apart, by [`SecretChange`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientRegistration {
    pub id: String,
    pub partner_id: Option<String>,
    pub scopes: Vec<String>,
    pub redirect_uris: Vec<String>,
}

/// A new secret for a client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretChange {
    pub client_id: String,
    pub secret_hash: String,
    /// Keep accepting the current secret until then (a rotation with a grace period).
    pub previous_valid_until: Option<OffsetDateTime>,
    /// Refuse every token of the client issued before then, and revoke its refresh tokens.
    pub revoke_tokens_before: Option<OffsetDateTime>,
}

/// A company's connection of a partner app, as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionRecord {
    pub partner_id: String,
    pub company_id: String,
    pub connected_at: OffsetDateTime,
    pub connected_by: String,
}

/// A request token issued by a connection (only its digest).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewRequestToken {
    pub token_hash: String,
    pub partner_id: String,
    pub company_id: String,
    /// The administrator who connected the app.
    pub user_id: String,
    pub expires_at: OffsetDateTime,
}

/// A refresh token to store (only its digest).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewRefreshToken {
    pub token_hash: String,
    /// The grant it descends from; a rotation keeps the chain of the token it replaces.
    pub chain_id: String,
    pub client_id: String,
    pub company_id: String,
    pub scopes: Vec<String>,
    pub issued_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
}

/// What became of a refresh token presented for rotation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RefreshOutcome {
    /// It was live: it is now used, and `next` (same chain, company and scopes) replaces it.
    Rotated {
        chain_id: String,
        company_id: String,
        scopes: Vec<String>,
    },
    /// It had been used already: the whole chain is now revoked.
    Reused { chain_id: String },
    /// Live, but holding less than the scopes asked for: left as it was.
    ScopeNotHeld,
    /// Unknown, expired, revoked, or another client's.
    Invalid,
}

/// Tokens refused because of a revocation: of a client for one company (a disconnection), or
/// of a client for every company (`company_id` `None`: a secret revoked at once).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Revocation {
    pub client_id: String,
    pub company_id: Option<String>,
    /// Tokens issued before this instant are refused.
    pub revoked_before: OffsetDateTime,
    /// The pair is disconnected now: every token of it is refused, whenever issued.
    pub disconnected: bool,
}

#[async_trait]
pub trait AppCenterStore: Send + Sync {
    /// Creates the client, or updates its scopes and redirect URIs; its secrets are kept.
    async fn register_client(&self, client: &ClientRegistration) -> StoreResult<()>;
    /// Creates the client unless one with its id exists. True when created.
    async fn create_client(&self, client: &ClientRegistration) -> StoreResult<bool>;
    async fn client(&self, client_id: &str) -> StoreResult<Option<ClientRecord>>;
    /// Sets a client's secret (see [`SecretChange`]). False when there is no such client.
    async fn change_client_secret(
        &self,
        change: &SecretChange,
        now: OffsetDateTime,
    ) -> StoreResult<bool>;

    /// Connects the partner to the company (or keeps an existing connection) and stores a new
    /// request token for it, the only one of the pair that can still be redeemed.
    async fn connect(&self, request: &NewRequestToken, now: OffsetDateTime) -> StoreResult<()>;
    /// The company's connected partners, by partner id.
    async fn connections(&self, company_id: &str) -> StoreResult<Vec<ConnectionRecord>>;
    /// Disconnects the pair: its request and refresh tokens stop working, and its tokens issued
    /// until `now` stay refused. False when the pair was not connected.
    async fn disconnect(
        &self,
        partner_id: &str,
        company_id: &str,
        now: OffsetDateTime,
    ) -> StoreResult<bool>;

    /// Redeems a request token of `partner_id` for `company_id` — once, unexpired, while the
    /// pair is connected — and stores `refresh`, in one transaction. The connecting
    /// administrator's id when it was redeemed.
    async fn redeem_request_token(
        &self,
        token_hash: &str,
        refresh: &NewRefreshToken,
        now: OffsetDateTime,
    ) -> StoreResult<Option<String>>;
    /// Rotates the client's refresh token `token_hash` into `next` (whose chain, company and
    /// scopes are taken from it), in one transaction, provided it holds every scope of
    /// `asked`; see [`RefreshOutcome`].
    async fn rotate_refresh_token(
        &self,
        token_hash: &str,
        asked: Option<&[String]>,
        next: &NewRefreshToken,
        now: OffsetDateTime,
    ) -> StoreResult<RefreshOutcome>;

    /// Every revocation in force (a small table: disconnections and revoked secrets).
    async fn revocations(&self) -> StoreResult<Vec<Revocation>>;
    /// The refresh-token chains revoked at `since` or later (a replay, a disconnection, a
    /// revoked secret): access tokens that name one (`sid`) are refused.
    async fn revoked_grants(&self, since: OffsetDateTime) -> StoreResult<Vec<String>>;
    /// Deletes request and refresh tokens that expired before `now`. How many.
    async fn purge_expired_grants(&self, now: OffsetDateTime) -> StoreResult<u64>;
}
