//! Live streams across instances on PostgreSQL: an event committed by one instance wakes the
//! other's feed through the database's notification (LISTEN/NOTIFY), not its poll — the poll is
//! set to an hour here, so an event that arrives within the stream's bound came by the signal —
//! and keeps doing so after the listening connection is killed.

use std::time::Duration;

use serde_json::json;

use crate::helpers::*;

/// A poll no test waits for: whatever reaches the stream came another way.
const NEVER: Duration = Duration::from_secs(3600);

async fn post_as(t: &TestApp, ext_ref: &str) -> String {
    let mut body = post_seed();
    body["extRef"] = json!(ext_ref);
    t.create_alert(&body).await
}

async fn two_instances() -> Option<(TestApp, TestApp)> {
    if !backend_available(Backend::Postgres).await {
        return None;
    }
    let a = TestApp::spawn_with(Backend::Postgres, |s| s.inbox_poll_interval = NEVER).await;
    let b = TestApp::spawn_on(a.db.clone(), |s| s.inbox_poll_interval = NEVER).await;
    Some((a, b))
}

#[tokio::test]
async fn a_stream_on_another_postgres_instance_hears_of_an_alert_without_a_poll() {
    let Some((a, b)) = two_instances().await else {
        return;
    };
    let user = b.seed_user_token();
    let mut stream = b.stream(&user).await;
    let alert = post_as(&a, "across").await;
    let (name, data) = stream.next().await;
    assert_eq!(name, "alert.created", "{data}");
    assert_eq!(data["alertId"], alert.as_str());
    assert_eq!(data["unreadCount"], 1);
    // A mark on the stream's own instance, seen by a stream of the first.
    let mut other = a.stream(&user).await;
    assert_eq!(b.mark(&user, &alert, "read").await.status(), 200);
    let (name, data) = other.next().await;
    assert_eq!(name, "alert.read", "{data}");
    assert_eq!(data["unreadCount"], 0);
}

#[tokio::test]
async fn the_listener_listens_again_after_its_connection_is_killed() {
    let Some((a, b)) = two_instances().await else {
        return;
    };
    let user = b.seed_user_token();
    let mut stream = b.stream(&user).await;
    // Every listening connection of the database goes (other tests' too: they listen again as
    // well, and lose nothing, since listening again counts as a change).
    let mut side = b.db.side_connection().await;
    let killed = side
        .strings(
            "SELECT string_agg(pid::text, ',') FROM pg_stat_activity \
             WHERE query = 'LISTEN \"maestro_outbox\"'",
        )
        .await
        .remove(0);
    assert!(!killed.is_empty(), "the instances listen");
    side.execute(&format!(
        "SELECT pg_terminate_backend(pid) FROM unnest('{{{killed}}}'::int[]) AS pid"
    ))
    .await;
    // Gone for good before the alert is posted, so that only a new listener can hear of it.
    let gone =
        format!("SELECT count(*)::text FROM pg_stat_activity WHERE pid = ANY('{{{killed}}}')");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while side.strings(&gone).await != ["0"] {
        assert!(std::time::Instant::now() < deadline, "the listeners end");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let alert = post_as(&a, "after-the-kill").await;
    let (name, data) = stream.next().await;
    assert_eq!(name, "alert.created", "{data}");
    assert_eq!(data["alertId"], alert.as_str());
    // And the next one comes by the signal too.
    let next = post_as(&a, "and-after").await;
    let (name, data) = stream.next().await;
    assert_eq!(name, "alert.created", "{data}");
    assert_eq!(data["alertId"], next.as_str());
}
