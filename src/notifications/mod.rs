//! Company notifications (legacy v1.0): partner applications subscribe to a company's itinerary,
//! profile or form-of-payment events; company events are recorded with the deliveries they owe,
//! and the delivery worker POSTs each signed notification to the partner's postback URL.

pub mod admin;
pub mod delivery;
pub mod document;
pub mod egress;
pub mod events;
pub mod objects;
pub mod retry;
pub mod signature;
mod subscriptions;

pub use admin::DeliveryAdmin;
pub use delivery::{DeliveryConfig, DeliveryWorker, Pass};
pub use events::{EventIntake, Recorded};
pub use objects::ObjectService;
pub use subscriptions::{ADMIN_ROLES, ObjectType, SubscriptionService};
