//! Building the application from settings, and serving it on a listener until a shutdown signal.
//! Tests use the same two calls with a port-0 listener.

use std::{future::Future, sync::Arc};

use tokio::{net::TcpListener, sync::Semaphore};

use crate::{
    Settings,
    alerts::AlertService,
    auth::{KeyRing, signing},
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
    pub metrics: Arc<Metrics>,
    /// Permits for requests in flight; when none is left the API answers 503.
    pub admission: Arc<Semaphore>,
}

impl App {
    /// Opens (creating and migrating) the database, imports the bundled partners into an empty
    /// one, and loads the signing keys (generating the first).
    pub async fn open(settings: Settings) -> anyhow::Result<Arc<App>> {
        let store = open_store(&settings.database).await?;
        let keys = signing::ensure_server_keys(&store).await?;
        let keyring = KeyRing::new(&keys, settings.trusted_jwks.as_deref())?;
        let catalog = Arc::new(Catalog::new(store.clone(), settings.catalog_refresh));
        let metrics = Arc::new(Metrics::new());
        let delivery = DeliveryWorker::new(
            store.clone(),
            DeliveryConfig {
                schedule: settings.delivery_retry_schedule.clone(),
                request_timeout: settings.delivery_timeout,
                lease: settings.delivery_lease(),
                concurrency: settings.delivery_concurrency,
                poll_interval: settings.delivery_poll_interval,
                public_url: settings.public_url.clone(),
                policy: Arc::new(EgressPolicy::new(settings.delivery_allowed_subnets.clone())),
            },
            metrics.clone(),
        )?;
        // Only a worker in this process is worth waking; others poll.
        let local_worker = settings.role.runs_workers().then(|| delivery.clone());
        Ok(Arc::new(App {
            alerts: AlertService::new(store.clone(), catalog.clone()),
            subscriptions: SubscriptionService::new(store.clone(), catalog.clone()),
            events: EventIntake::new(store.clone(), local_worker.clone()),
            objects: ObjectService::new(store.clone()),
            delivery_admin: DeliveryAdmin::new(store.clone(), local_worker),
            delivery,
            admission: Arc::new(Semaphore::new(settings.max_concurrent_requests.max(1))),
            metrics,
            settings,
            store,
            keyring,
            catalog,
        }))
    }
}

/// The store with its schema current and, if it has no partner yet, the bundled ones.
pub async fn open_store(database: &crate::config::DatabaseArgs) -> anyhow::Result<DynStore> {
    let store = store::connect(database).await?;
    if store.partner_count().await? == 0 {
        for partner in bundle::bundled()? {
            let report = store.import_partner(&partner).await?;
            tracing::info!(partner = %report.partner_id, "imported a bundled partner into the empty database");
        }
    }
    Ok(store)
}

/// Serves `app` on `listener` until `shutdown` completes, then stops accepting, lets in-flight
/// requests finish for up to the configured grace period, and returns.
pub async fn serve(
    app: Arc<App>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let grace = app.settings.shutdown_grace;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let workers = app
        .settings
        .role
        .runs_workers()
        .then(|| tokio::spawn(app.delivery.clone().run(stop_rx.clone())));
    let router = crate::http::router(app);
    let signal = async move {
        shutdown.await;
        tracing::info!("shutting down: no new connections, finishing requests in flight");
        let _ = stop_tx.send(true);
    };
    let server = axum::serve(listener, router).with_graceful_shutdown(signal);
    let deadline = async move {
        let mut stop_rx = stop_rx;
        let _ = stop_rx.wait_for(|stopped| *stopped).await;
        tokio::time::sleep(grace).await;
    };
    // Requests in flight and the delivery pass in flight both finish (drain), within the grace.
    let drained = async move {
        server.await?;
        if let Some(workers) = workers {
            workers.await?;
        }
        anyhow::Ok(())
    };
    tokio::select! {
        result = drained => result?,
        () = deadline => tracing::warn!(?grace, "work still in flight after the grace period; exiting"),
    }
    Ok(())
}
