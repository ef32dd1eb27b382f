//! Company-event intake paced to the delivery worker (`MAESTRO_DELIVERY_LAG_LIMIT`): while the
//! deliveries the worker claims had waited longer than the limit for it, a publish waits — at
//! most a second — and is recorded all the same. The app's clock, which the worker claims by, is
//! set ahead of the wall clock the intake stamps events with, so every delivery it claims looks
//! ten seconds late; the partner does not answer, and the worker looks for work only when woken.
//! An instance without a worker paces by the lag the others report.

use std::time::Duration;

use maestro::config::Role;
use time::OffsetDateTime;

use crate::{
    delivery_helpers::{PARTNER, SECRET, allow_loopback, app_token, event, publish, subscribe},
    helpers::*,
    receiver::SilentEndpoint,
};

const PACED: &str = "maestro_company_events_paced_total";

/// An app whose worker has just claimed a delivery ten seconds late, and waits on the partner.
async fn behind(backend: Backend, lag_limit: Duration) -> (TestApp, SilentEndpoint) {
    let stuck = SilentEndpoint::start().await;
    let t = TestApp::spawn_with(backend, |s| {
        allow_loopback(s);
        s.role = Role::All;
        s.delivery_lag_limit = lag_limit;
        // No step but those an intake or the test wakes: none that finds nothing to claim.
        s.delivery_poll_interval = Duration::from_secs(3600);
    })
    .await;
    t.import_partner(
        PARTNER,
        &format!(
            "postback_url = \"{}\"\npostback_secret = \"{SECRET}\"",
            stuck.url
        ),
    )
    .await;
    subscribe(&t, "itinerary").await;
    t.app
        .clock
        .pin(OffsetDateTime::now_utc() + Duration::from_secs(10));
    // Nothing claimed yet, so nothing to wait for.
    assert_eq!(publish(&t, &event("itinerary")).await.len(), 1);
    assert_eq!(sample(&t, PACED).await, None);
    until_connections(&stuck, 1).await;
    let lag = sample(&t, "maestro_delivery_worker_lag_seconds").await;
    assert!(lag.is_some_and(|lag| lag > 9.0), "{lag:?}");
    // The step that claimed it is timed too.
    let steps = sample(&t, "maestro_delivery_worker_step_seconds_count").await;
    assert!(steps.is_some_and(|steps| steps >= 1.0), "{steps:?}");
    (t, stuck)
}

/// Waits (10 s at most) until the partner has `n` requests in flight.
async fn until_connections(stuck: &SilentEndpoint, n: usize) {
    let claimed = async {
        while stuck.connections() < n {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    if tokio::time::timeout(Duration::from_secs(10), claimed)
        .await
        .is_err()
    {
        panic!("the partner has {} requests, not {n}", stuck.connections());
    }
}

/// Publishes an event from a task of its own (the publish may be held back); its status.
fn publish_in_background(t: &TestApp) -> tokio::task::JoinHandle<reqwest::StatusCode> {
    let (client, url) = (t.client.clone(), t.url("/internal/v1/company-events"));
    let token = app_token(t, &["maestro.events.publish"]);
    tokio::spawn(async move {
        let sent = client
            .post(url)
            .bearer_auth(token)
            .json(&event("itinerary"));
        sent.send().await.unwrap().status()
    })
}

/// The value of the first sample of the app's metrics whose name and labels start with `name`.
async fn sample(t: &TestApp, name: &str) -> Option<f64> {
    t.metrics()
        .await
        .lines()
        .find(|line| line.starts_with(name))
        .and_then(|line| line.rsplit(' ').next()?.parse().ok())
}

fn paced(outcome: &str) -> String {
    format!("{PACED}{{outcome=\"{outcome}\"}}")
}

async fn a_publish_waits_until_the_worker_catches_up(backend: Backend) {
    let (t, stuck) = behind(backend, Duration::from_millis(50)).await;
    // The worker does not catch up (its one attempt hangs, and it is not woken): the publish
    // waits the whole second, then is recorded with its delivery, and gets its 202.
    assert_eq!(publish(&t, &event("itinerary")).await.len(), 1);
    assert_eq!(sample(&t, &paced("waited_out")).await, Some(1.0));
    assert_eq!(sample(&t, &paced("caught_up")).await, None);
    // That delivery too is claimed ten seconds late; the next publish waits until the worker
    // has caught up: the partner hangs up, both attempts end (to be retried in ten seconds),
    // and nothing is left to claim.
    until_connections(&stuck, 2).await;
    let next = publish_in_background(&t);
    // Held back: the gauge counts it while it waits, before it is recorded.
    until_gauge(&t, "maestro_company_events_waiting", 1).await;
    stuck.hang_up();
    assert_eq!(next.await.unwrap(), 202);
    assert_eq!(sample(&t, &paced("caught_up")).await, Some(1.0));
    assert_eq!(sample(&t, &paced("waited_out")).await, Some(1.0));
    until_gauge(&t, "maestro_company_events_waiting", 0).await;
    stop(t).await;
}

/// Stops the app and its worker (whose attempts have ended), so that no step of the worker is
/// left half done when the test's database is dropped.
async fn stop(mut t: TestApp) {
    let _ = t.shutdown_signal().send(());
    tokio::time::timeout(Duration::from_secs(10), t.server_task())
        .await
        .expect("the app stops")
        .unwrap()
        .unwrap();
}

async fn with_pacing_off_a_publish_never_waits(backend: Backend) {
    let (t, stuck) = behind(backend, Duration::ZERO).await;
    assert_eq!(publish(&t, &event("itinerary")).await.len(), 1);
    assert_eq!(sample(&t, PACED).await, None);
    stuck.hang_up();
    stop(t).await;
}

/// A publish to an instance without a worker (`--role api`) is paced by the lag the workers of
/// the others report through the database, as one to the worker's own instance is.
async fn an_instance_without_a_worker_paces_by_the_others(backend: Backend) {
    let (worker, stuck) = behind(backend, Duration::from_millis(50)).await;
    let api = TestApp::spawn_on(worker.db.clone(), |s| {
        s.role = Role::Api;
        s.delivery_lag_limit = Duration::from_millis(50);
    })
    .await;
    // It follows the reports (every 100 ms): its gauge shows the other instance's lag.
    let followed = async {
        while !sample(&api, "maestro_delivery_worker_lag_seconds")
            .await
            .is_some_and(|lag| lag > 9.0)
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), followed)
        .await
        .expect("the instance without a worker follows the other's lag");
    // The worker does not catch up: the publish waits the whole second, and is recorded.
    assert_eq!(publish(&api, &event("itinerary")).await.len(), 1);
    assert_eq!(sample(&api, &paced("waited_out")).await, Some(1.0));
    // The next one waits until the worker has caught up (the partner hangs up, every attempt
    // ends, nothing is left to claim) and has said so.
    let next = publish_in_background(&api);
    until_gauge(&api, "maestro_company_events_waiting", 1).await;
    stuck.hang_up();
    assert_eq!(next.await.unwrap(), 202);
    assert_eq!(sample(&api, &paced("caught_up")).await, Some(1.0));
    assert_eq!(sample(&api, &paced("waited_out")).await, Some(1.0));
    // The worker's own intake was never paced: none of it went through that instance.
    assert_eq!(sample(&worker, PACED).await, None);
    stop(api).await;
    stop(worker).await;
}

crate::on_both_backends!(
    a_publish_waits_until_the_worker_catches_up,
    with_pacing_off_a_publish_never_waits,
    an_instance_without_a_worker_paces_by_the_others,
);
