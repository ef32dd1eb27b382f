//! Building the application from settings, and serving it on a listener until a shutdown signal.
//! Tests use the same two calls with a port-0 listener.

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use tokio::{net::TcpListener, sync::Semaphore};

use crate::{
    Settings,
    alerts::AlertService,
    apps::{Clients, Connections, GrantSettings, Grants, Revocations},
    auth::{KeyRing, Principal, issuers::Issuers, signing},
    clock::Clock,
    downstream::{Publisher, PublisherConfig},
    http::server::{ConnectionLimits, connection_cap, serve_connections},
    inbox::{InboxFeed, InboxService, Sweeper},
    notifications::{
        DeliveryAdmin, DeliveryConfig, DeliveryWorker, EventIntake, ObjectService,
        SubscriptionService, egress::EgressPolicy,
    },
    partners::{Catalog, bundle},
    store::{self, DynStore},
    telemetry::Metrics,
};

/// Everything a request handler may need, built once at start-up.
pub struct App {
    pub settings: Settings,
    pub store: DynStore,
    pub keyring: KeyRing,
    pub catalog: Arc<Catalog>,
    pub alerts: AlertService,
    pub subscriptions: SubscriptionService,
    pub events: EventIntake,
    pub objects: ObjectService,
    /// Sends deliveries; its loop runs in `serve` when the instance's role includes workers,
    /// and tests drive it one pass at a time.
    pub delivery: Arc<DeliveryWorker>,
    pub delivery_admin: DeliveryAdmin,
    pub inbox: Arc<InboxService>,
    /// The outbox reader behind the live inbox streams; its loop runs in `serve` when the
    /// instance serves the API, and tests drive it one pass at a time.
    pub inbox_feed: Arc<InboxFeed>,
    /// Announces and purges expired alerts; its loop runs in `serve` when the instance's role
    /// includes workers, tests call `run_once`.
    pub sweeper: Arc<Sweeper>,
    /// The time the domain runs on (tests pin it).
    pub clock: Arc<Clock>,
    pub metrics: Arc<Metrics>,
    /// Permits for requests in flight; when none is left the API answers 503.
    pub admission: Arc<Semaphore>,
    /// The App Center: clients, company connections, the token endpoint's grants.
    pub clients: Arc<Clients>,
    pub connections: Connections,
    pub grants: Grants,
    /// Tokens refused after the fact; its loop runs with the API.
    pub revocations: Arc<Revocations>,
    /// Set on a shutdown signal: `/readyz` answers 503 from then on while requests are still
    /// served, for `drain_delay`, so that load balancers stop routing here first.
    pub draining: AtomicBool,
    /// Ends the drain before its delay (a second signal).
    drain_cut: tokio::sync::Notify,
    /// Publishes the outbox to NATS JetStream when `MAESTRO_NATS_URL` is set; its loop runs in
    /// `serve` when the instance's role includes workers, tests call `run_once`.
    pub downstream: Option<Arc<Publisher>>,
}

impl App {
    /// Opens (creating and migrating) the database, imports the bundled partners into an empty
    /// one, and loads the signing keys (generating the first).
    pub async fn open(settings: Settings) -> anyhow::Result<Arc<App>> {
        let store = open_store(&settings.database, store::Open::CreateIfMissing).await?;
        let clock = Arc::new(Clock::system());
        // A worker instance verifies no token: it neither reads nor fetches the issuers' keys.
        let issuers = match settings.role.serves_api() {
            true => {
                Issuers::load(
                    &settings.trusted_jwks,
                    settings.trusted_audience.as_deref(),
                    settings.trusted_jwks_ca.as_deref(),
                    clock.clone(),
                )
                .await?
            }
            false => Issuers::default(),
        };
        let keyring = KeyRing::new(signing::server_keys(&store).await?, Some(Arc::new(issuers)))?;
        let catalog = Arc::new(Catalog::new(store.clone(), settings.catalog_refresh));
        let metrics = Arc::new(Metrics::new());
        let downstream = PublisherConfig::from_settings(&settings)?
            .map(|config| Publisher::new(store.clone(), config, metrics.clone()));
        let delivery = DeliveryWorker::new(
            store.clone(),
            DeliveryConfig {
                schedule: settings.delivery_retry_schedule.clone(),
                request_timeout: settings.delivery_timeout,
                lease: settings.delivery_lease(),
                concurrency: settings.delivery_concurrency,
                partner_concurrency: settings.delivery_partner_concurrency,
                poll_interval: settings.delivery_poll_interval,
                lag_limit: settings.delivery_lag_limit,
                public_url: settings.public_url.clone(),
                policy: Arc::new(EgressPolicy::new(settings.delivery_allowed_subnets.clone())),
            },
            metrics.clone(),
            clock.clone(),
        )?;
        // Only a worker in this process is worth waking; others poll.
        let local_worker = settings.role.runs_workers().then(|| delivery.clone());
        // Intake is paced by this process's worker, or without one by the others' (see
        // `delivery::shared_lag`).
        let intake_pacing = settings.role.serves_api().then(|| delivery.clone());
        // An outbox id missing this long is taken for a rolled-back insert rather than a late
        // commit: well past the longest a transaction may run.
        let gap_grace = (settings.database.database_timeout * 3).max(Duration::from_secs(5));
        let inbox_feed = InboxFeed::start(
            store.clone(),
            settings.inbox_poll_interval,
            gap_grace,
            settings.role.serves_api(),
        )
        .await?;
        let revocations = Revocations::load(
            store.clone(),
            settings.revocation_refresh(),
            settings.access_token_ttl + Duration::from_secs(crate::auth::keyring::LEEWAY_SECS),
        )
        .await?;
        let clients = Arc::new(Clients::new(store.clone()));
        Ok(Arc::new(App {
            connections: Connections::new(store.clone(), clock.clone(), revocations.clone()),
            grants: Grants::new(
                store.clone(),
                clients.clone(),
                revocations.clone(),
                GrantSettings {
                    access_ttl: settings.access_token_ttl,
                    refresh_ttl: settings.refresh_token_ttl,
                    issuer: settings.public_url.clone(),
                },
            ),
            clients,
            revocations,
            downstream,
            alerts: AlertService::new(
                store.clone(),
                catalog.clone(),
                clock.clone(),
                inbox_feed.clone(),
            ),
            inbox: Arc::new(InboxService::new(
                store.clone(),
                clock.clone(),
                inbox_feed.clone(),
            )),
            sweeper: Arc::new(Sweeper::new(
                store.clone(),
                clock.clone(),
                inbox_feed.clone(),
                settings.sweep_interval,
                settings.expired_retention,
            )),
            inbox_feed,
            subscriptions: SubscriptionService::new(store.clone(), catalog.clone()),
            events: EventIntake::new(store.clone(), intake_pacing),
            objects: ObjectService::new(store.clone()),
            delivery_admin: DeliveryAdmin::new(store.clone(), local_worker, clock.clone()),
            clock,
            delivery,
            admission: Arc::new(Semaphore::new(settings.max_concurrent_requests.max(1))),
            metrics,
            settings,
            store,
            keyring,
            catalog,
            draining: AtomicBool::new(false),
            drain_cut: tokio::sync::Notify::new(),
        }))
    }
}

impl App {
    /// Whether the instance is draining (see `draining`).
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Cuts a drain under way (or the next one) short: the shutdown goes on at once.
    pub fn end_drain(&self) {
        self.drain_cut.notify_one();
    }

    /// The caller a bearer token speaks for: verified by the key ring, and not revoked since.
    pub fn authenticate(&self, token: &str) -> crate::error::Result<Principal> {
        let principal = self.keyring.verify(token)?;
        self.revocations.check(&principal)?;
        Ok(principal)
    }
}

/// Reloads the server's keys every `catalog_refresh` until shutdown, so that a key rotated or
/// retired by the CLI or another instance is taken in without a restart. A failed reload keeps
/// the keys the instance has.
async fn refresh_keys(app: Arc<App>, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = stop.wait_for(|stopped| *stopped) => break,
            () = tokio::time::sleep(app.settings.catalog_refresh) => {}
        }
        if let Err(err) = app.keyring.refresh(&app.store).await {
            tracing::warn!(error = %err, "reloading the server's signing keys failed; will retry");
        }
    }
}

/// The store with its schema current and, if it has no partner yet, the bundled ones.
pub async fn open_store(
    database: &crate::config::DatabaseArgs,
    open: store::Open,
) -> anyhow::Result<DynStore> {
    let store = store::connect(database, open).await?;
    if store.partner_count().await? == 0 {
        for partner in bundle::bundled()? {
            let report = store.import_partner(&partner).await?;
            tracing::info!(partner = %report.partner_id, "imported a bundled partner into the empty database");
        }
    }
    Ok(store)
}

/// Serves `app` on `listener` until `shutdown` completes; then drains (`/readyz` answers 503 for
/// the drain delay while every request is still served), stops accepting, lets in-flight
/// requests finish for up to the configured grace period, and returns.
pub async fn serve(
    app: Arc<App>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let grace = app.settings.shutdown_grace;
    let drain = app.settings.drain_delay;
    let draining = app.clone();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut workers = Vec::new();
    if app.settings.role.serves_api() {
        workers.push(tokio::spawn(app.inbox_feed.clone().run(stop_rx.clone())));
        workers.push(tokio::spawn(app.revocations.clone().run(stop_rx.clone())));
        let issuers = app.keyring.issuers().clone();
        workers.push(tokio::spawn(issuers.run(stop_rx.clone())));
        workers.push(tokio::spawn(refresh_keys(app.clone(), stop_rx.clone())));
        if !app.settings.role.runs_workers() {
            let delivery = app.delivery.clone();
            workers.push(tokio::spawn(delivery.follow_workers_lag(stop_rx.clone())));
        }
    }
    if app.settings.role.runs_workers() {
        workers.push(tokio::spawn(app.delivery.clone().run(stop_rx.clone())));
        workers.push(tokio::spawn(app.sweeper.clone().run(stop_rx.clone())));
        if let Some(publisher) = &app.downstream {
            workers.push(tokio::spawn(publisher.clone().run(stop_rx.clone())));
        }
    }
    let feed = app.inbox_feed.clone();
    let limits = ConnectionLimits {
        header_read_timeout: app.settings.header_read_timeout,
        max_connections: connection_cap(
            app.settings.max_connections,
            app.settings.reserved_file_descriptors(),
        ),
    };
    let router = crate::http::router(app);
    let signal = async move {
        shutdown.await;
        draining.draining.store(true, Ordering::Relaxed);
        if !drain.is_zero() {
            tracing::info!(
                drain_delay = %crate::config::text::duration::format(drain),
                "draining: /readyz answers 503 while requests are still served"
            );
            tokio::select! {
                () = tokio::time::sleep(drain) => {}
                () = draining.drain_cut.notified() => {}
            }
        }
        drop(draining);
        tracing::info!("shutting down: no new connections, finishing requests in flight");
        let _ = stop_tx.send(true);
        // Live streams never end on their own; without this they would hold the shutdown.
        feed.close();
    };
    let server = serve_connections(listener, router, limits, signal);
    let deadline = async move {
        let mut stop_rx = stop_rx;
        let _ = stop_rx.wait_for(|stopped| *stopped).await;
        tokio::time::sleep(grace).await;
    };
    // Requests in flight and the workers' passes under way finish (drain), within the grace.
    let drained = async move {
        server.await;
        for worker in workers {
            worker.await?;
        }
        anyhow::Ok(())
    };
    tokio::select! {
        result = drained => result?,
        () = deadline => tracing::warn!(?grace, "work still in flight after the grace period; exiting"),
    }
    Ok(())
}
