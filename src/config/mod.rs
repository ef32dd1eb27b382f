//! Settings, read once at start-up from their layers (declared defaults, the configuration file,
//! `MAESTRO_*` variables, flags; see `layers.rs`) and then passed down explicitly: no global
//! configuration.
//!
//! A setting is declared once, as a field here: its `#[arg]` attribute gives its flag, its
//! variable (`env`) and its default; its key in the file is the flag's name with `_` for `-`.
//! Its serde attribute says how it reads from text when the type does not (`text::duration`
//! for durations, `text::parsed` and `text::list` for `FromStr` types, `text::choice` for a
//! `ValueEnum`).

mod layers;
pub mod show;
pub mod text;

use std::{path::PathBuf, time::Duration};

use clap::{Args, ValueEnum};
use serde::{Deserialize, Serialize};

pub use layers::{CONFIG_ARG, Declared, Layer, Layered, Origin, declared, load};

use crate::{
    auth::issuers::TrustedSource,
    downstream::{parse_stream_name, parse_subject_prefix},
    notifications::retry::RetrySchedule,
};

/// Which parts of maestro an instance runs, so that API and workers can scale apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Role {
    /// The API and the background workers.
    All,
    /// The HTTP API only.
    Api,
    /// The background workers only (with the probes and metrics endpoints).
    Worker,
}

impl Role {
    pub fn serves_api(self) -> bool {
        self != Role::Worker
    }

    pub fn runs_workers(self) -> bool {
        self != Role::Api
    }
}

/// The default database: a SQLite file in the working directory, created on first start.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://maestro.db";

/// The default of `--public-url`, which `serve`, `token issue` and `inbox open-url` share.
pub const DEFAULT_PUBLIC_URL: &str = "http://127.0.0.1:8080";

/// Where the data lives. Shared by `serve` and every admin command, so that `maestro token issue`
/// signs with the very keys the server trusts.
#[derive(Args, Clone, Debug, Deserialize, Serialize)]
pub struct DatabaseArgs {
    /// `sqlite://PATH` (default; made by `serve` and `migrate` if missing) or `postgres://…`.
    #[arg(long = "database-url", env = "MAESTRO_DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
    #[serde(rename = "database_url", serialize_with = "show::without_password")]
    pub url: String,
    /// How long a database call may take before the request answers 504.
    #[arg(long, env = "MAESTRO_DATABASE_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    #[serde(with = "text::duration")]
    pub database_timeout: Duration,
    /// Connections in the pool (PostgreSQL; SQLite has one writer and a few readers).
    #[arg(long, env = "MAESTRO_DATABASE_MAX_CONNECTIONS", default_value_t = 10)]
    pub database_max_connections: u32,
    /// The key the stored secrets (signing keys, postback secrets) are encrypted under: 32
    /// random bytes in standard base64 (`openssl rand -base64 32`). Required on PostgreSQL; on
    /// SQLite, when not given, a key file beside the database (`PATH.key`) is made and used.
    #[arg(long, env = "MAESTRO_MASTER_KEY", hide_env_values = true)]
    pub master_key: Option<Secret>,
}

/// A setting that is a secret: its `Debug` never shows it, so settings can be logged. It is
/// checked where it is used (a malformed value is reported without being echoed, which clap's
/// own value errors would do). It serializes as `<redacted>`: `config show` prints no secret.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(show::REDACTED)
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Ok(Secret(value.to_owned()))
    }
}

/// Downstream publishing to NATS JetStream (SPEC §4.2).
#[derive(Args, Clone, Debug, Deserialize, Serialize)]
pub struct NatsArgs {
    /// NATS servers the outbox is published to, comma-separated (`nats://HOST:4222`, `tls://`
    /// for TLS; `nats://USER:PASSWORD@HOST` or `nats://TOKEN@HOST` to authenticate). Unset:
    /// nothing is published and nothing about NATS runs. A secret, since it may hold a password.
    #[arg(
        id = "nats_url",
        long = "nats-url",
        env = "MAESTRO_NATS_URL",
        hide_env_values = true
    )]
    #[serde(rename = "nats_url")]
    pub url: Option<Secret>,
    /// The JetStream stream; created with maestro's limits when missing, used as it is when not.
    #[arg(id = "nats_stream", long = "nats-stream", env = "MAESTRO_NATS_STREAM", default_value = "MAESTRO_ALERTS", value_parser = parse_stream_name)]
    #[serde(
        rename = "nats_stream",
        deserialize_with = "text::checked::stream_name"
    )]
    pub stream: String,
    /// The subjects' first token(s): `PREFIX.alerts.{partner}.{eventType}`,
    /// `PREFIX.company.{type}`.
    #[arg(id = "nats_subject_prefix", long = "nats-subject-prefix", env = "MAESTRO_NATS_SUBJECT_PREFIX", default_value = "maestro", value_parser = parse_subject_prefix)]
    #[serde(
        rename = "nats_subject_prefix",
        deserialize_with = "text::checked::subject_prefix"
    )]
    pub subject_prefix: String,
    /// How long connecting to NATS, and JetStream's acknowledgement of a batch, may take.
    #[arg(id = "nats_timeout", long = "nats-timeout", env = "MAESTRO_NATS_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    #[serde(rename = "nats_timeout", with = "text::duration")]
    pub timeout: Duration,
}

impl Default for DatabaseArgs {
    fn default() -> Self {
        defaults(&[])
    }
}

impl Layer for DatabaseArgs {}

impl Default for NatsArgs {
    fn default() -> Self {
        defaults(&[])
    }
}

impl Layer for NatsArgs {}

/// The public URL alone, for the commands that write it into what they print.
#[derive(Args, Clone, Debug, Deserialize, Serialize)]
pub struct PublicUrl {
    /// The URL the server is reached at (a token's `iss`, where a sign-in link points).
    #[arg(long, env = "MAESTRO_PUBLIC_URL", default_value = DEFAULT_PUBLIC_URL)]
    pub public_url: String,
}

impl Layer for PublicUrl {}

/// Everything `maestro serve` can be told.
#[derive(Args, Clone, Debug, Deserialize, Serialize)]
pub struct Settings {
    /// Address to listen on.
    #[arg(long, env = "MAESTRO_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Read from the same layers as the rest, by `Layer::extract` (serde's `flatten` would hide
    /// the text of its numbers from figment's conversions).
    #[command(flatten)]
    #[serde(skip)]
    pub database: DatabaseArgs,
    /// External token issuers whose tokens are trusted: comma-separated `[ISSUER=]SOURCE`, where
    /// SOURCE is a JWKS file or an `https://` URL. With `ISSUER=`, that source's tokens must
    /// carry exactly that `iss` (and the trusted audience, when set).
    #[arg(long, env = "MAESTRO_TRUSTED_JWKS", value_delimiter = ',')]
    #[serde(with = "text::list")]
    pub trusted_jwks: Vec<TrustedSource>,
    /// The `aud` a token of a trusted JWKS source written `ISSUER=SOURCE` must carry.
    #[arg(long, env = "MAESTRO_TRUSTED_AUDIENCE")]
    pub trusted_audience: Option<String>,
    /// PEM certificates of authorities trusted, besides the system's, for `https://` JWKS
    /// sources (an IdP with a private certificate authority).
    #[arg(long, env = "MAESTRO_TRUSTED_JWKS_CA")]
    pub trusted_jwks_ca: Option<PathBuf>,
    /// The URL partners reach this server at (used in links maestro hands out).
    #[arg(long, env = "MAESTRO_PUBLIC_URL", default_value = DEFAULT_PUBLIC_URL)]
    pub public_url: String,
    /// Largest request body accepted, in bytes; larger bodies answer 413.
    #[arg(long, env = "MAESTRO_MAX_BODY_BYTES", default_value_t = 256 * 1024)]
    pub max_body_bytes: usize,
    /// Requests handled at once; beyond it the API sheds load with 503 instead of queueing.
    /// A request still receiving its body holds none.
    #[arg(long, env = "MAESTRO_MAX_CONCURRENT_REQUESTS", default_value_t = 1024)]
    pub max_concurrent_requests: usize,
    /// How long a request's body may take to arrive, from the end of its headers; a body not
    /// received in time answers 408 `REQUEST_TIMEOUT`.
    #[arg(long, env = "MAESTRO_REQUEST_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    #[serde(with = "text::duration")]
    pub request_timeout: Duration,
    /// How long a client has to send a request's headers, counted from the connection's
    /// opening or the end of the previous answer; so also how long an idle keep-alive
    /// connection is kept. Past it the connection is closed.
    #[arg(long, env = "MAESTRO_HEADER_READ_TIMEOUT", default_value = "20s", value_parser = humantime::parse_duration)]
    #[serde(with = "text::duration")]
    pub header_read_timeout: Duration,
    /// Connections open at once (fewer if the open-files limit requires); at the cap new
    /// connections wait to be accepted.
    #[arg(long, env = "MAESTRO_MAX_CONNECTIONS", default_value_t = 8192)]
    pub max_connections: usize,
    /// How long partner and template changes made by `maestro partner import`, and signing keys
    /// rotated or retired by `maestro keys`, may take to reach a running server.
    #[arg(long, env = "MAESTRO_CATALOG_REFRESH", default_value = "5s", value_parser = humantime::parse_duration)]
    #[serde(with = "text::duration")]
    pub catalog_refresh: Duration,
    /// What this instance runs: `all` (API and background workers), `api`, or `worker`
    /// (delivery and other background work, no HTTP API but the probes and metrics).
    #[arg(long, env = "MAESTRO_ROLE", value_enum, default_value_t = Role::All)]
    #[serde(with = "text::choice")]
    pub role: Role,
    /// Delays between delivery attempts, e.g. `1s,2s,5s`; after the last a delivery fails.
    #[arg(
        long,
        env = "MAESTRO_DELIVERY_RETRY_SCHEDULE",
        default_value = crate::notifications::retry::DEFAULT_SCHEDULE
    )]
    #[serde(with = "text::parsed")]
    pub delivery_retry_schedule: RetrySchedule,
    /// Non-public subnets postback URLs may reach anyway, comma-separated (e.g. `127.0.0.0/8`).
    #[arg(
        long,
        env = "MAESTRO_DELIVERY_ALLOWED_SUBNETS",
        value_delimiter = ',',
        num_args = 0..
    )]
    #[serde(with = "text::list")]
    pub delivery_allowed_subnets: Vec<ipnet::IpNet>,
    /// How long a partner gets to answer a delivery.
    #[arg(long, env = "MAESTRO_DELIVERY_TIMEOUT", default_value = "15s", value_parser = humantime::parse_duration)]
    #[serde(with = "text::duration")]
    pub delivery_timeout: Duration,
    /// Deliveries one worker sends at once. (128: with deliveries claimed and recorded in
    /// batches, a partner's share moves in step — claim, send, record — so its rate is the share
    /// over that cycle; docs/PERFORMANCE.md.)
    #[arg(long, env = "MAESTRO_DELIVERY_CONCURRENCY", default_value_t = 128)]
    pub delivery_concurrency: usize,
    /// Deliveries one partner may have in flight at once, counted over every instance, so that
    /// a partner that answers slowly or never cannot take every slot (by default half of them).
    #[arg(
        long,
        env = "MAESTRO_DELIVERY_PARTNER_CONCURRENCY",
        default_value_t = 64
    )]
    pub delivery_partner_concurrency: usize,
    /// How far behind the delivery worker may fall (how long a delivery to a partner that
    /// answers within this time waits for it) before company-event intake waits for it, at
    /// most a second per event; `0s` never holds intake back.
    #[arg(long, env = "MAESTRO_DELIVERY_LAG_LIMIT", default_value = "50ms", value_parser = humantime::parse_duration)]
    #[serde(with = "text::duration")]
    pub delivery_lag_limit: Duration,
    /// How often an idle worker looks for deliveries recorded by other instances.
    #[arg(long, env = "MAESTRO_DELIVERY_POLL_INTERVAL", default_value = "1s", value_parser = humantime::parse_duration)]
    #[serde(with = "text::duration")]
    pub delivery_poll_interval: Duration,
    /// How often the live inbox stream looks for changes made by other instances (changes
    /// made on this one reach it at once).
    #[arg(long, env = "MAESTRO_INBOX_POLL_INTERVAL", default_value = "1s", value_parser = humantime::parse_duration)]
    #[serde(with = "text::duration")]
    pub inbox_poll_interval: Duration,
    /// How long the inbox page stays signed in after a sign-in link was used.
    #[arg(long, env = "MAESTRO_INBOX_SESSION_TTL", default_value = "8h", value_parser = humantime::parse_duration)]
    #[serde(with = "text::duration")]
    pub inbox_session_ttl: Duration,
    /// The host product's web origins allowed to call the inbox API from a browser (CORS):
    /// comma-separated `https://host[:port]`, with the bearer header, never cookies, never `*`.
    #[arg(
        long,
        env = "MAESTRO_INBOX_ALLOWED_ORIGINS",
        value_delimiter = ',',
        num_args = 0..,
        value_parser = crate::http::cors::parse_origin
    )]
    #[serde(deserialize_with = "text::checked::origins")]
    pub inbox_allowed_origins: Vec<String>,
    /// How often the sweeper announces expired alerts (`alert.expired`) and purges old ones.
    /// Users never see an expired alert, whenever the sweeper runs.
    #[arg(long, env = "MAESTRO_SWEEP_INTERVAL", default_value = "30s", value_parser = humantime::parse_duration)]
    #[serde(with = "text::duration")]
    pub sweep_interval: Duration,
    /// How long an expired alert (with its revisions) is kept before it is deleted.
    #[arg(long, env = "MAESTRO_EXPIRED_RETENTION", default_value = "7days", value_parser = humantime::parse_duration)]
    #[serde(with = "text::duration")]
    pub expired_retention: Duration,
    /// How long an access token from the token endpoint lasts.
    #[arg(long, env = "MAESTRO_ACCESS_TOKEN_TTL", default_value = "1h", value_parser = humantime::parse_duration)]
    #[serde(with = "text::duration")]
    pub access_token_ttl: Duration,
    /// How long a refresh token from the token endpoint lasts (each use replaces it).
    #[arg(long, env = "MAESTRO_REFRESH_TOKEN_TTL", default_value = "180days", value_parser = humantime::parse_duration)]
    #[serde(with = "text::duration")]
    pub refresh_token_ttl: Duration,
    /// How long, after SIGTERM or SIGINT, `/readyz` answers 503 while requests are still
    /// served, so that a load balancer stops sending any before the listener closes.
    #[arg(long, env = "MAESTRO_DRAIN_DELAY", default_value = "5s", value_parser = humantime::parse_duration)]
    #[serde(with = "text::duration")]
    pub drain_delay: Duration,
    /// Read from the same layers as the rest, by `Layer::extract`, like `database`.
    #[command(flatten)]
    #[serde(skip)]
    pub nats: NatsArgs,
    /// How long in-flight requests get to finish once the listener has closed.
    #[arg(long, env = "MAESTRO_SHUTDOWN_GRACE", default_value = "20s", value_parser = humantime::parse_duration)]
    #[serde(with = "text::duration")]
    pub shutdown_grace: Duration,
}

impl Layer for Settings {
    fn extract(figment: &figment::Figment) -> Result<Self, Box<figment::Error>> {
        let mut settings: Settings = figment.extract_lossy()?;
        settings.database = figment.extract_lossy()?;
        settings.nats = figment.extract_lossy()?;
        Ok(settings)
    }
}

impl Settings {
    /// How long a worker's claim on a delivery holds: the request timeout and a margin, so a
    /// live worker never loses a claim mid-request.
    pub fn delivery_lease(&self) -> Duration {
        self.delivery_timeout + Duration::from_secs(45)
    }

    /// Descriptors kept free of connections: the database pool, outbound deliveries, and files
    /// (the database, its WAL, logs) with room to spare.
    pub fn reserved_file_descriptors(&self) -> usize {
        128 + self.database.database_max_connections as usize + self.delivery_concurrency
    }

    /// How often an instance reads revocations made elsewhere: within the catalogue refresh,
    /// and at most 5 s, as the SPEC promises for a disconnection.
    pub fn revocation_refresh(&self) -> Duration {
        self.catalog_refresh.min(Duration::from_secs(5))
    }

    /// Settings for a server on `listen` with every other value at its default.
    pub fn with_database(listen: &str, database_url: &str) -> Self {
        defaults(&["--listen", listen, "--database-url", database_url])
    }
}

/// The values the flags' declarations give, with `args` on top, read through the same layers as
/// the command line's (without a file, and with the environment ignored): the defaults are
/// written once, in the `#[arg]` attributes above.
fn defaults<T: Layer>(args: &[&str]) -> T {
    let command = Layered::<T>::augment_args(clap::Command::new("maestro"));
    let matches = command
        .try_get_matches_from(std::iter::once("maestro").chain(args.iter().copied()))
        .expect("the declared defaults parse");
    load::<T>(&matches, None, &|_| None)
        .expect("the declared defaults parse")
        .into_inner()
}

#[cfg(test)]
mod tests;
