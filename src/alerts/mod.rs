//! Maestro v4 alerts: what a partner may submit, and what happens when it does.

mod body;
mod canonical;
mod metadata;
pub mod request;
mod service;

pub use body::AlertBody;
pub use request::AlertRequest;
pub use service::{AlertService, Receipt, ReceiptStatus, Submitter, is_alert_id};
