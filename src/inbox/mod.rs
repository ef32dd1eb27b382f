//! The user inbox, the display side of alerts (SPEC §5): what a user sees and marks, the live
//! feed of changes, the expiry sweeper, and the sign-in link of the inbox page.
//!
//! - `service.rs` — a page of a user's live alerts, read and dismiss, and a user's view of the
//!   feed;
//! - `feed.rs` — one outbox reader per instance that hands every new event to the connected
//!   users (the live stream), allowing for events that commit out of id order;
//! - `sweeper.rs` — marks expired alerts (with `alert.expired`) and purges them after the
//!   retention;
//! - `login.rs` — the short-lived sign-in link and the session it is exchanged for.

pub mod feed;
pub mod login;
pub mod service;
pub mod sweeper;

pub use feed::InboxFeed;
pub use service::{InboxChange, InboxService, InboxWatch, MarkReceipt, Page};
pub use sweeper::{SweepReport, Sweeper};
