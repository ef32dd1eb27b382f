//! One integration-test binary (one link step) holding every black-box suite.

mod alerts_api;
mod browser;
mod company_events;
mod deliveries;
mod durability;
mod helpers;
mod hostile_input;
mod inbox_api;
mod inbox_helpers;
mod inbox_page;
mod inbox_store;
mod legacy_subscriptions;
mod limits;
mod multi_instance;
mod ops;
mod receiver;
mod rotation;
mod secrets_at_rest;
mod slow_clients;
mod store_conformance;
mod tokens;
