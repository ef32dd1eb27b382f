//! Maestro v4 alerts: what a partner may submit, and what happens when it does.

mod canonical;
mod metadata;
pub mod request;
mod service;

pub use request::AlertRequest;
pub use service::{AlertService, Receipt, ReceiptStatus};
