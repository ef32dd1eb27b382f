//! The connection to NATS JetStream: connect (with a timeout), make sure of the stream, publish
//! a batch and wait for its acknowledgements (within the timeout).

use std::time::Duration;

use anyhow::Context as _;
use async_nats::{
    ConnectOptions,
    jetstream::{
        self,
        message::PublishMessage,
        stream::{Config, DiscardPolicy, StorageType},
    },
};
use tokio::time::Instant;

use super::{Credentials, Outgoing, PublisherConfig};

/// A stream maestro creates keeps a week, as long as expired alerts are kept by default.
const MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
/// A bound on the disk it takes, the oldest messages going first.
const MAX_BYTES: i64 = 8 * 1024 * 1024 * 1024;
/// How long JetStream remembers message ids: a republish after a crash or a takeover (within
/// the publisher's lease, 30 s or more) must fall inside it to be dropped.
const DUPLICATE_WINDOW: Duration = Duration::from_secs(5 * 60);
/// The client's pings: a connection that went silent is noticed within two of them.
const PING_INTERVAL: Duration = Duration::from_secs(10);

pub struct Broker {
    context: jetstream::Context,
}

/// What publishing a batch came to.
pub struct Published {
    /// How many messages, from the first, JetStream acknowledged.
    pub acknowledged: usize,
    /// Of those, how many it had already (a republish).
    pub duplicates: usize,
    /// Why it stopped short, when it did.
    pub error: Option<anyhow::Error>,
}

impl Broker {
    /// Connects and makes sure of the stream: one that exists is used as it is; a missing one
    /// is created with maestro's limits.
    pub async fn connect(config: &PublisherConfig) -> anyhow::Result<Broker> {
        crate::tls::install_crypto_provider();
        let mut options = ConnectOptions::new()
            .name("maestro")
            .connection_timeout(config.timeout)
            .request_timeout(Some(config.timeout))
            .ping_interval(PING_INTERVAL)
            .require_tls(config.servers.tls());
        options = match config.servers.credentials() {
            Some(Credentials::UserAndPassword(user, password)) => {
                options.user_and_password(user.clone(), password.clone())
            }
            Some(Credentials::Token(token)) => options.token(token.clone()),
            None => options,
        };
        let client = options
            .connect(config.servers.addresses())
            .await
            .with_context(|| format!("could not connect to NATS at {}", config.servers))?;
        let mut context = jetstream::new(client);
        context.set_timeout(config.timeout);
        let broker = Broker { context };
        broker.ensure_stream(config).await?;
        Ok(broker)
    }

    async fn ensure_stream(&self, config: &PublisherConfig) -> anyhow::Result<()> {
        let stream = Config {
            name: config.stream.clone(),
            description: Some("maestro's alert and company events as CloudEvents".to_owned()),
            subjects: config.naming.stream_subjects(),
            storage: StorageType::File,
            max_age: MAX_AGE,
            max_bytes: MAX_BYTES,
            discard: DiscardPolicy::Old,
            duplicate_window: DUPLICATE_WINDOW,
            ..Config::default()
        };
        self.context
            .get_or_create_stream(stream)
            .await
            .with_context(|| format!("could not find or create the stream {}", config.stream))?;
        Ok(())
    }

    /// Publishes `messages` in order, all sent before any acknowledgement is awaited, and
    /// waits up to `timeout` for the acknowledgements.
    pub async fn publish(&self, messages: &[Outgoing], timeout: Duration) -> Published {
        let mut pending = Vec::with_capacity(messages.len());
        let mut error = None;
        for message in messages {
            let publish = PublishMessage::build()
                .payload(message.body.clone().into())
                .message_id(&message.id)
                .header(
                    "Content-Type",
                    "application/cloudevents+json; charset=utf-8",
                );
            match self
                .context
                .send_publish(message.subject.clone(), publish)
                .await
            {
                Ok(ack) => pending.push(ack),
                Err(err) => {
                    error = Some(anyhow::Error::new(err).context("publishing to JetStream"));
                    break;
                }
            }
        }
        let deadline = Instant::now() + timeout;
        let mut published = Published {
            acknowledged: 0,
            duplicates: 0,
            error: None,
        };
        for ack in pending {
            match tokio::time::timeout_at(deadline, ack.into_future()).await {
                Ok(Ok(ack)) => {
                    published.acknowledged += 1;
                    published.duplicates += usize::from(ack.duplicate);
                }
                Ok(Err(err)) => {
                    published.error = Some(anyhow::Error::new(err).context("JetStream refused"));
                    return published;
                }
                Err(_) => {
                    published.error = Some(anyhow::anyhow!(
                        "JetStream did not acknowledge within {timeout:?}"
                    ));
                    return published;
                }
            }
        }
        published.error = error;
        published
    }
}
