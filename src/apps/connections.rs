//! Company connections (SPEC §2.1): a company administrator connects a partner app, which hands
//! the partner a single-use request token through the administrator's redirect; lists the
//! connected apps; and disconnects one, after which its refresh tokens fail at once and its
//! access tokens are refused (here at once, on other instances within their refresh).

use std::sync::Arc;

use time::{Duration, OffsetDateTime};

use super::{Revocations, secrets};
use crate::{
    auth::Principal,
    clock::Clock,
    error::{Error, ErrorCode, Result},
    store::{ConnectionRecord, DynStore, NewRequestToken, Revocation},
};

/// How long a request token can be redeemed.
pub const REQUEST_TOKEN_TTL: Duration = Duration::hours(24);

/// A company administrator: a user token of the company with an administrative role.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompanyAdmin {
    pub company_id: String,
    pub user_id: String,
}

impl CompanyAdmin {
    pub fn of(principal: &Principal) -> Result<CompanyAdmin> {
        match (&principal.company_id, principal.is_company_admin()) {
            (Some(company_id), true) => Ok(CompanyAdmin {
                company_id: company_id.clone(),
                user_id: principal.subject.clone(),
            }),
            _ => Err(Error::new(
                ErrorCode::RoleRequired,
                "Only a user of the company with an administrative role (CompanyAdministrator, \
                 WebServicesAdministrator or CanAdminister) may manage its connected apps.",
            )),
        }
    }
}

/// What connecting an app answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Connected {
    pub app_id: String,
    pub company_id: String,
    pub request_token: String,
    pub expires_at: OffsetDateTime,
    /// Where the administrator goes next: the partner's redirect URI with `id`,
    /// `requestToken` and `userId`.
    pub redirect_url: String,
}

pub struct Connections {
    store: DynStore,
    clock: Arc<Clock>,
    revocations: Arc<Revocations>,
}

impl Connections {
    pub fn new(store: DynStore, clock: Arc<Clock>, revocations: Arc<Revocations>) -> Self {
        Connections {
            store,
            clock,
            revocations,
        }
    }

    /// Connects `app_id` to the administrator's company (again, if it was), issuing a new
    /// request token; an earlier unredeemed one stops working.
    pub async fn connect(&self, admin: &CompanyAdmin, app_id: &str) -> Result<Connected> {
        let client = self
            .store
            .client(app_id)
            .await?
            .filter(|client| client.partner_id.is_some())
            .ok_or_else(|| unknown_app(app_id))?;
        let Some(redirect) = client.redirect_uris.first() else {
            return Err(Error::new(
                ErrorCode::AppNotConnectable,
                format!(
                    "The app {app_id:?} has no redirect URI registered (redirect_uris in its \
                     partner.toml), so it cannot be connected."
                ),
            ));
        };
        let now = self.clock.now();
        let request_token = secrets::random_token("mrq_");
        let request = NewRequestToken {
            token_hash: secrets::token_digest(&request_token),
            partner_id: client.id.clone(),
            company_id: admin.company_id.clone(),
            user_id: admin.user_id.clone(),
            expires_at: now + REQUEST_TOKEN_TTL,
        };
        self.store.connect(&request, now).await?;
        self.revocations.reconnected(&client.id, &admin.company_id);
        let mut redirect_url = url::Url::parse(redirect).map_err(anyhow::Error::from)?;
        redirect_url
            .query_pairs_mut()
            .append_pair("id", &admin.company_id)
            .append_pair("requestToken", &request_token)
            .append_pair("userId", &admin.user_id);
        tracing::info!(app = %client.id, company = %admin.company_id, "app connected");
        Ok(Connected {
            app_id: client.id,
            company_id: admin.company_id.clone(),
            request_token,
            expires_at: request.expires_at,
            redirect_url: redirect_url.into(),
        })
    }

    /// The apps connected to the administrator's company.
    pub async fn list(&self, admin: &CompanyAdmin) -> Result<Vec<ConnectionRecord>> {
        Ok(self.store.connections(&admin.company_id).await?)
    }

    /// Disconnects `app_id` from the administrator's company; disconnecting an app that is not
    /// connected is a success too.
    pub async fn disconnect(&self, admin: &CompanyAdmin, app_id: &str) -> Result<()> {
        let known = self
            .store
            .client(app_id)
            .await?
            .is_some_and(|client| client.partner_id.is_some());
        if !known {
            return Err(unknown_app(app_id));
        }
        let now = self.clock.now();
        if self
            .store
            .disconnect(app_id, &admin.company_id, now)
            .await?
        {
            self.revocations.note(&Revocation {
                client_id: app_id.to_owned(),
                company_id: Some(admin.company_id.clone()),
                revoked_before: now,
                disconnected: true,
            });
            tracing::info!(app = %app_id, company = %admin.company_id, "app disconnected");
        }
        Ok(())
    }
}

/// The `appId` of a connection request.
pub fn app_id_of(body: &serde_json::Value) -> Result<&str> {
    match body.get("appId") {
        Some(serde_json::Value::String(id)) if !id.trim().is_empty() => Ok(id),
        None | Some(serde_json::Value::Null) => Err(Error::at(
            ErrorCode::MissingField,
            "/appId",
            "appId is required.",
        )),
        Some(_) => Err(Error::at(
            ErrorCode::InvalidField,
            "/appId",
            "appId must be a non-empty string.",
        )),
    }
}

fn unknown_app(app_id: &str) -> Error {
    Error::at(
        ErrorCode::AppNotFound,
        "/appId",
        format!("No app {app_id:?} is registered."),
    )
}
