//! Company notifications (legacy v1.0): partner applications subscribe to a company's itinerary,
//! profile or form-of-payment events; company events are recorded with the deliveries they owe.
//! (Delivery to postback URLs comes next.)

pub mod events;
mod subscriptions;

pub use events::{EventIntake, Recorded};
pub use subscriptions::{ADMIN_ROLES, ObjectType, SubscriptionService};
