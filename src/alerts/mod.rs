//! Maestro v4 alerts: what a partner may submit, and what happens when it does.

mod body;
mod canonical;
mod discovery;
mod metadata;
mod preview;
pub mod request;
mod service;
mod withdrawal;

pub use body::AlertBody;
pub use preview::Preview;
pub use request::AlertRequest;
pub use service::{AlertService, PartnerCaller, Receipt, ReceiptStatus, Submitter, is_alert_id};
