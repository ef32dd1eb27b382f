//! maestro: a self-hostable partner notification platform.
//!
//! The layout follows the flow of a request: `http` (the surfaces) calls into the domain
//! modules (`alerts`, `partners`, `inbox`, `auth`, `notifications`), which persist through the
//! `store` trait; `downstream` publishes the outbox to NATS JetStream.
//! `docs/ARCHITECTURE.md` is the map.
#![forbid(unsafe_code)]

pub mod alerts;
pub mod app;
pub mod apps;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod config;
pub mod digest;
pub mod downstream;
pub mod error;
pub mod http;
pub mod inbox;
pub mod input;
pub mod notifications;
pub mod partners;
pub mod store;
pub mod telemetry;
pub mod tls;

pub use app::{App, serve};
pub use config::Settings;
pub use error::{Error, ErrorCode, Problem};
