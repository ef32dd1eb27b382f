//! One integration-test binary (one link step) holding every black-box suite.

mod alerts_api;
mod company_events;
mod deliveries;
mod durability;
mod helpers;
mod legacy_subscriptions;
mod limits;
mod multi_instance;
mod ops;
mod receiver;
mod store_conformance;
mod tokens;
