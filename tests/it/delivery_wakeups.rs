//! Workers woken rather than polling. On PostgreSQL an instance's intake wakes the idle worker
//! of another at once (LISTEN/NOTIFY), and still does after the listening connection was cut:
//! the worker here polls once an hour, so only a wake-up can deliver within the test's bound.

use std::time::Duration;

use sqlx::Connection;
use tokio::sync::watch;

use crate::{
    delivery_helpers::{allow_loopback, event, publish, spawn, subscribe},
    helpers::*,
    receiver::Receiver,
};

/// Far longer than any wait of the test: a delivery within the test's bound was woken up.
const NEVER: Duration = Duration::from_secs(3600);
const BOUND: Duration = Duration::from_secs(15);

#[tokio::test]
async fn another_instances_intake_wakes_an_idle_worker_also_after_its_listener_was_cut() {
    if !backend_available(Backend::Postgres).await {
        return;
    }
    let receiver = Receiver::start().await;
    let intake = spawn(Backend::Postgres, &receiver).await;
    subscribe(&intake, "itinerary").await;
    // The worker's connections carry a name of their own, so the test finds its listener.
    let name = format!("wakeups_{}", uuid::Uuid::new_v4().simple());
    let worker = TestApp::spawn_on(intake.db.clone(), |s| {
        allow_loopback(s);
        s.delivery_poll_interval = NEVER;
        s.database.url = format!("{}&application_name={name}", s.database.url);
    })
    .await;
    let (stop, stopped) = watch::channel(false);
    let running = tokio::spawn(worker.app.delivery.clone().run(stopped));
    let mut admin = sqlx::PgConnection::connect(&test_database_url())
        .await
        .unwrap();
    let first_listener = listener_of(&mut admin, &name, None).await;

    publish(&intake, &event("itinerary")).await;
    tokio::time::timeout(BOUND, receiver.wait_for(1))
        .await
        .expect("the other instance's intake woke the worker");

    // The listener's connection is cut: it connects again by itself and is woken again.
    let cut: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(first_listener)
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert!(cut);
    listener_of(&mut admin, &name, Some(first_listener)).await;
    publish(&intake, &event("itinerary")).await;
    tokio::time::timeout(BOUND, receiver.wait_for(2))
        .await
        .expect("the worker listens again after its connection was cut");

    stop.send(true).unwrap();
    running.await.unwrap();
    let ids: std::collections::HashSet<String> = receiver
        .received()
        .iter()
        .map(|r| r.webhook_id().to_owned())
        .collect();
    assert_eq!(ids.len(), 2, "two deliveries, each once");
}

/// The backend process of the worker's listening connection (other than `not`), once it
/// listens: waited for within the test's bound.
async fn listener_of(admin: &mut sqlx::PgConnection, name: &str, not: Option<i32>) -> i32 {
    let found = async {
        loop {
            let pid: Option<i32> = sqlx::query_scalar(
                "SELECT pid FROM pg_stat_activity WHERE application_name = $1 \
                 AND query LIKE 'LISTEN%' AND pid IS DISTINCT FROM $2 LIMIT 1",
            )
            .bind(name)
            .bind(not)
            .fetch_optional(&mut *admin)
            .await
            .unwrap();
            if let Some(pid) = pid {
                return pid;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(BOUND, found)
        .await
        .expect("the worker listens for new deliveries")
}

/// On SQLite, where one process owns the database, the intake wakes its own worker directly:
/// nothing but that wake-up would deliver before the hour's poll.
#[tokio::test]
async fn on_sqlite_the_intake_wakes_its_own_worker() {
    let receiver = Receiver::start().await;
    let t = TestApp::spawn_with(Backend::Sqlite, |s| {
        allow_loopback(s);
        s.delivery_poll_interval = NEVER;
        s.role = maestro::config::Role::All;
    })
    .await;
    crate::delivery_helpers::register(&t, &receiver).await;
    subscribe(&t, "itinerary").await;
    for _ in 0..3 {
        publish(&t, &event("itinerary")).await;
    }
    tokio::time::timeout(BOUND, receiver.wait_for(3))
        .await
        .expect("the intake woke the worker");
}
