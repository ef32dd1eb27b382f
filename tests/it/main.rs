//! One integration-test binary (one link step) holding every black-box suite.

mod alerts_api;
mod app_center_helpers;
mod browser;
mod company_events;
mod connections;
mod deliveries;
mod durability;
mod helpers;
mod hostile_input;
mod inbox_api;
mod inbox_helpers;
mod inbox_page;
mod inbox_store;
mod issuers;
mod jwks_server;
mod legacy_subscriptions;
mod limits;
mod multi_instance;
mod onboarding_cli;
mod ops;
mod receiver;
mod slow_clients;
mod store_conformance;
mod token_endpoint;
mod tokens;
