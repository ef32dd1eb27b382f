//! Subscribing a partner application to a company's events, on behalf of a company admin.

use std::sync::Arc;

use crate::{
    auth::Principal,
    error::{Error, ErrorCode, Problem, Result},
    partners::Catalog,
    store::{DynStore, Subscription},
};

/// The user roles that may subscribe a partner to their company's events.
pub use crate::auth::ADMIN_ROLES;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjectType {
    Itinerary,
    Profile,
    Fop,
}

impl ObjectType {
    /// The `type` parameter, in any case.
    pub fn parse(text: &str) -> Option<ObjectType> {
        match text.to_ascii_lowercase().as_str() {
            "itinerary" => Some(ObjectType::Itinerary),
            "profile" => Some(ObjectType::Profile),
            "fop" => Some(ObjectType::Fop),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ObjectType::Itinerary => "itinerary",
            ObjectType::Profile => "profile",
            ObjectType::Fop => "fop",
        }
    }
}

pub struct SubscriptionService {
    store: DynStore,
    catalog: Arc<Catalog>,
}

impl SubscriptionService {
    pub fn new(store: DynStore, catalog: Arc<Catalog>) -> Self {
        SubscriptionService { store, catalog }
    }

    /// Subscribes the caller's partner application; subscribing twice is still a success.
    pub async fn subscribe(&self, caller: &Principal, object_type: Option<&str>) -> Result<()> {
        let subscription = self.authorize(caller, object_type).await?;
        self.store.subscribe(&subscription).await?;
        Ok(())
    }

    /// Unsubscribes; removing a subscription that does not exist is still a success.
    pub async fn unsubscribe(&self, caller: &Principal, object_type: Option<&str>) -> Result<()> {
        let subscription = self.authorize(caller, object_type).await?;
        self.store.unsubscribe(&subscription).await?;
        Ok(())
    }

    /// Who may do it (an admin user of the company, for a registered partner), then what.
    async fn authorize(
        &self,
        caller: &Principal,
        object_type: Option<&str>,
    ) -> Result<Subscription> {
        if !caller.is_company_admin() {
            return Err(Error::new(
                ErrorCode::RoleRequired,
                "Only a user of the company with an administrative role (CompanyAdministrator, \
                 WebServicesAdministrator or CanAdminister) may manage subscriptions.",
            ));
        }
        let partner_id = caller.app_id.as_deref().ok_or_else(|| {
            Error::new(
                ErrorCode::UnknownPartner,
                "The token names no partner application.",
            )
        })?;
        if self.catalog.partner(partner_id).await?.is_none() {
            return Err(Error::new(
                ErrorCode::UnknownPartner,
                "The token's partner application is not registered with this service.",
            ));
        }
        let object_type = match object_type {
            None => {
                return Err(Error::Rejected(vec![Problem::at(
                    ErrorCode::MissingField,
                    "type",
                    "The type parameter is required (itinerary, profile or fop).",
                )]));
            }
            Some(text) => ObjectType::parse(text).ok_or_else(|| {
                Error::Rejected(vec![Problem::at(
                    ErrorCode::InvalidField,
                    "type",
                    "Unknown type; use itinerary, profile or fop.",
                )])
            })?,
        };
        Ok(Subscription {
            partner_id: partner_id.to_owned(),
            company_id: caller
                .company_id
                .clone()
                .expect("a verified user token carries its company"),
            object_type: object_type.as_str().to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_parse_in_any_case() {
        assert_eq!(ObjectType::parse("ITINERARY"), Some(ObjectType::Itinerary));
        assert_eq!(ObjectType::parse("Fop"), Some(ObjectType::Fop));
        assert_eq!(ObjectType::parse("profile"), Some(ObjectType::Profile));
        assert_eq!(ObjectType::parse("expense"), None);
    }
}
