//! Identity: who is calling, proven by a JWT.
//!
//! `keyring` verifies tokens against the server's own keys and the trusted external issuers,
//! whose keys `issuers` reads, fetches and refreshes; `server_keys` is the running instance's
//! reloadable set of the server's keys; `signing` mints tokens (`signing::issue`) and creates the
//! first key; `rotation` is `maestro keys`; `claims` is the token's wire format.

pub mod claims;
pub mod issuers;
pub mod keyring;
pub mod rotation;
pub mod server_keys;
pub mod signing;

pub use claims::{Claims, TokenKind};
pub use keyring::KeyRing;

use crate::error::{Error, ErrorCode, Result};

pub const SCOPE_ALERTS_WRITE: &str = "maestro.alerts.writeonly";
pub const SCOPE_INBOX: &str = "maestro.inbox.readwrite";
/// The one thing an inbox sign-in link's token can do: be exchanged for the inbox cookie.
pub const SCOPE_INBOX_LOGIN: &str = "maestro.inbox.login";
pub const SCOPE_EVENTS_PUBLISH: &str = "maestro.events.publish";
pub const SCOPE_ADMIN: &str = "maestro.admin";

/// The roles that make a user an administrator of their company.
pub const ADMIN_ROLES: [&str; 3] = [
    "CompanyAdministrator",
    "WebServicesAdministrator",
    "CanAdminister",
];

/// Every scope maestro grants.
pub const SCOPES: [&str; 4] = [
    SCOPE_ALERTS_WRITE,
    SCOPE_INBOX,
    SCOPE_EVENTS_PUBLISH,
    SCOPE_ADMIN,
];

/// A caller whose token was verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub kind: TokenKind,
    /// Company id, user id or application id, depending on `kind`.
    pub subject: String,
    /// The partner application the token was issued to.
    pub app_id: Option<String>,
    /// The company the caller acts for, when the token carries one.
    pub company_id: Option<String>,
    pub scopes: Vec<String>,
    pub roles: Vec<String>,
    /// The last second the token is accepted in (its `exp` plus the verification leeway, in
    /// seconds since the Unix epoch): what a long-lived response, such as a live stream, may
    /// not outlast.
    pub accepted_until: i64,
    /// When the token was issued (`iat`, seconds since the Unix epoch), if it says.
    pub issued_at: Option<i64>,
    /// The refresh-token chain a token from the token endpoint descends from (`sid`).
    pub grant: Option<String>,
}

impl Principal {
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }

    /// A user of a company with one of the [`ADMIN_ROLES`].
    pub fn is_company_admin(&self) -> bool {
        self.kind == TokenKind::User
            && self.company_id.is_some()
            && self
                .roles
                .iter()
                .any(|role| ADMIN_ROLES.contains(&role.as_str()))
    }

    /// 403 unless the token carries `scope`.
    pub fn require_scope(&self, scope: &str) -> Result<()> {
        if self.has_scope(scope) {
            Ok(())
        } else {
            Err(Error::new(
                ErrorCode::InsufficientScope,
                format!("The token lacks the scope {scope}."),
            ))
        }
    }
}

/// Company ids are UUIDs, which compare without regard to case.
pub fn normalize_company_id(id: &str) -> String {
    id.trim().to_ascii_lowercase()
}

/// User ids (UUIDs, or logins) compare without regard to case, as company ids do: the alert's
/// `userId` and the user token's `sub` meet in this form.
pub fn normalize_user_id(id: &str) -> String {
    id.trim().to_ascii_lowercase()
}
