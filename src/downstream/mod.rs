//! Downstream consumers (SPEC §4.2): the outbox's alert events and the company events published
//! to NATS JetStream as CloudEvents, for the host product's other systems.
//!
//! - `publisher.rs` — the loop (roles `worker` and `all`, only when `MAESTRO_NATS_URL` is set):
//!   a lease in the database so that one instance publishes at a time, the events read below the
//!   horizon in id order, published, and the cursor moved on only over what JetStream
//!   acknowledged. At least once; normally exactly once, since `Nats-Msg-Id` is the event's id
//!   and JetStream drops a republish within its duplicate window.
//! - `horizon.rs` — up to where the feeds are final (PostgreSQL commits ids out of order).
//! - `cloudevent.rs` — subjects, the CloudEvents, and which events go downstream.
//! - `jetstream.rs` — the connection, the stream, a batch published and acknowledged.
//! - `asyncapi.rs` — `GET /asyncapi.json`, the AsyncAPI 3.0 document of the channels.
//! - `servers.rs` — `MAESTRO_NATS_URL`, its credentials kept out of sight.

pub mod asyncapi;
mod cloudevent;
mod horizon;
mod jetstream;
mod publisher;
mod servers;

use std::time::Duration;

pub use cloudevent::{INBOX_ONLY, Naming, Outgoing, is_published};
pub use horizon::{Horizon, Settled};
pub use publisher::{Pass, Publisher};
pub use servers::{Credentials, NatsServers};

use crate::config::Settings;

/// What the publisher needs to know.
#[derive(Clone, Debug)]
pub struct PublisherConfig {
    pub servers: NatsServers,
    pub stream: String,
    pub naming: Naming,
    /// Connecting, and waiting for JetStream's acknowledgements and answers.
    pub timeout: Duration,
}

impl PublisherConfig {
    /// The publisher's configuration, when NATS is configured. The URL is read here rather
    /// than by the command line's parser, whose error would repeat it, password and all.
    pub fn from_settings(settings: &Settings) -> anyhow::Result<Option<PublisherConfig>> {
        let nats = &settings.nats;
        let Some(url) = &nats.url else {
            return Ok(None);
        };
        let servers = url
            .expose()
            .parse::<NatsServers>()
            .map_err(|why| anyhow::anyhow!("MAESTRO_NATS_URL (--nats-url): {why}"))?;
        Ok(Some(PublisherConfig {
            servers,
            stream: nats.stream.clone(),
            naming: Naming {
                prefix: nats.subject_prefix.clone(),
                source: settings.public_url.clone(),
            },
            timeout: nats.timeout,
        }))
    }

    /// How long a lease on publishing holds: well past a pass (a batch waits at most
    /// `timeout` for JetStream), so a live publisher keeps it; an instance that died hands over
    /// after it.
    pub fn lease(&self) -> Duration {
        (self.timeout * 6).max(Duration::from_secs(30))
    }
}

/// A stream name as JetStream takes it: no spaces, `.`, `*`, `>`, path separators.
pub fn parse_stream_name(text: &str) -> Result<String, String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    match !text.is_empty() && text.len() <= 255 && text.chars().all(allowed) {
        true => Ok(text.to_owned()),
        false => Err("a stream name is letters, digits, `_` and `-`".to_owned()),
    }
}

/// A subject prefix: one or more subject tokens, no wildcards.
pub fn parse_subject_prefix(text: &str) -> Result<String, String> {
    let token = |t: &str| {
        !t.is_empty()
            && t.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    };
    match text.split('.').all(token) {
        true => Ok(text.to_owned()),
        false => {
            Err("a subject prefix is dot-separated tokens of letters, digits, `_`, `-`".into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    #[test]
    fn names_are_checked_and_a_bad_url_is_refused_without_being_repeated() {
        assert!(parse_stream_name("MAESTRO_ALERTS").is_ok());
        for bad in ["", "A.B", "A B", "A*", "A>", "a/b"] {
            assert!(parse_stream_name(bad).is_err(), "{bad:?}");
        }
        assert!(parse_subject_prefix("maestro").is_ok());
        assert!(parse_subject_prefix("acme.maestro").is_ok());
        for bad in ["", "a..b", ".a", "a.*", "a.>", "a b"] {
            assert!(parse_subject_prefix(bad).is_err(), "{bad:?}");
        }

        let mut settings = Settings::with_database("127.0.0.1:0", "sqlite://x.db");
        assert!(PublisherConfig::from_settings(&settings).unwrap().is_none());
        settings.nats.url = Some(Secret::new("http://app:s3cret@nats.example"));
        let refused = PublisherConfig::from_settings(&settings).unwrap_err();
        let shown = format!("{refused:#}");
        assert!(
            shown.contains("MAESTRO_NATS_URL") && !shown.contains("s3cret"),
            "{shown}"
        );
        settings.nats.url = Some(Secret::new("nats://app:s3cret@nats.example"));
        let config = PublisherConfig::from_settings(&settings).unwrap().unwrap();
        assert_eq!(config.stream, "MAESTRO_ALERTS");
        assert_eq!(config.naming.prefix, "maestro");
        assert_eq!(config.timeout, Duration::from_secs(5));
        assert_eq!(config.lease(), Duration::from_secs(30));
        assert!(!format!("{config:?}").contains("s3cret"));
    }
}
