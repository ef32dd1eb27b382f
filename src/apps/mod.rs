//! The App Center (SPEC §2.1): partners and internal producers as OAuth2 clients, companies
//! connecting partner apps, and the token endpoint's grants. It issues tokens; `crate::auth`
//! verifies them, and asks [`Revocations`] whether one was revoked.

pub mod clients;
pub mod connections;
pub mod grants;
pub mod revocations;
pub mod secrets;
mod throttle;

pub use clients::{Clients, Credentials, Rotation};
pub use connections::{CompanyAdmin, Connected, Connections};
pub use grants::{Grant, GrantRequest, GrantSettings, Grants, Issued};
pub use revocations::Revocations;
