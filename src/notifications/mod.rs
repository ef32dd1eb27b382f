//! Company notifications (legacy v1.0): partner applications subscribe to a company's itinerary,
//! profile or form-of-payment events. (Event intake and delivery to postback URLs come next.)

mod subscriptions;

pub use subscriptions::{ADMIN_ROLES, ObjectType, SubscriptionService};
