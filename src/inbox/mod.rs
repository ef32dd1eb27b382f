//! The user inbox, the display side of alerts (SPEC §5): what a user sees and marks, the live
//! feed of changes, the expiry sweeper, and the sign-in link of the inbox page.
//!
//! - `service.rs` — a page of a user's live alerts, read, dismiss, read-all and snooze;
//! - `watch.rs` — a user's view of the feed: the live stream's changes with their positions,
//!   and the replay of what a resuming client missed;
//! - `feed.rs` — one outbox reader per instance that hands every new event to the connected
//!   users (the live stream), allowing for events that commit out of id order;
//! - `sweeper.rs` — marks expired alerts (with `alert.expired`) and purges them after the
//!   retention, ends snoozes (with `alert.unsnoozed`), purges lapsed sessions;
//! - `login.rs` — the short-lived, single-use sign-in link and the session it is exchanged for
//!   (a database record, so that signing out ends it everywhere).

pub mod feed;
pub mod login;
pub mod service;
pub mod sweeper;
pub mod watch;

pub use feed::InboxFeed;
pub use service::{InboxService, MarkReceipt, Page, ReadAllReceipt, SnoozeReceipt};
pub use sweeper::{SweepReport, Sweeper};
pub use watch::{AlertChange, InboxChange, InboxWatch, Opening};
