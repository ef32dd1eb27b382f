//! Protective limits and failure answers: 413, 415, 500, 503, 504, and graceful shutdown.

use std::time::Duration;

use serde_json::json;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::helpers::*;

async fn raw_connection(t: &TestApp) -> TcpStream {
    TcpStream::connect(t.base.trim_start_matches("http://"))
        .await
        .unwrap()
}

/// Starts a POST whose body never finishes arriving, so that the request stays in flight.
async fn start_stalled_post(t: &TestApp) -> (TcpStream, String) {
    let body = post_seed().to_string();
    let mut stream = raw_connection(t).await;
    let head = format!(
        "POST /maestro/v4/alerts HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        t.groundspan_token(),
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&body.as_bytes()[..10]).await.unwrap();
    (stream, body)
}

/// Waits until the server reports `n` API requests in flight.
async fn until_in_flight(t: &TestApp, n: u32) {
    until_gauge(t, "maestro_http_requests_in_flight", n).await;
}

async fn a_body_over_the_limit_is_413(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let mut body = post_seed();
    body["title"] = json!("x".repeat(300 * 1024));
    let response = t.post_alert(&t.groundspan_token(), &body).await;
    let error = expect_error(response, 413, "PAYLOAD_TOO_LARGE").await;
    assert_eq!(error["errors"][0]["details"]["limitBytes"], 256 * 1024);

    // Without a Content-Length (chunked), the limit holds while the body is read.
    let mut stream = raw_connection(&t).await;
    let head = format!(
        "POST /maestro/v4/alerts HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
        t.groundspan_token()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    for chunk in body.to_string().as_bytes().chunks(16 * 1024) {
        let frame = [format!("{:x}\r\n", chunk.len()).as_bytes(), chunk, b"\r\n"].concat();
        if stream.write_all(&frame).await.is_err() {
            break; // the server may answer and close before the whole body is sent
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut answer = vec![0u8; 12];
    stream.read_exact(&mut answer).await.unwrap();
    assert_eq!(&answer, b"HTTP/1.1 413");
}

async fn a_body_that_is_not_json_is_415(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    for content_type in [Some("text/plain"), Some("application/xml"), None] {
        let mut request = t
            .client
            .post(t.url("/maestro/v4/alerts"))
            .header("Authorization", format!("Bearer {}", t.groundspan_token()))
            .body(post_seed().to_string());
        if let Some(content_type) = content_type {
            request = request.header("Content-Type", content_type);
        }
        expect_error(request.send().await.unwrap(), 415, "UNSUPPORTED_MEDIA_TYPE").await;
    }
    // Parameters such as a charset are fine.
    let response = t
        .client
        .post(t.url("/maestro/v4/alerts"))
        .header("Authorization", format!("Bearer {}", t.groundspan_token()))
        .header("Content-Type", "application/json; charset=utf-8")
        .body(post_seed().to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

async fn over_the_concurrency_limit_requests_are_shed_with_503_not_queued(backend: Backend) {
    let t = TestApp::spawn_with(backend, |s| {
        s.max_concurrent_requests = 1;
        s.database.database_timeout = Duration::from_secs(30);
    })
    .await;
    // A request doing its work (waiting for the database) holds the one permit: marking an
    // alert read (no body, so nothing else happens before the work) while writes are locked.
    let created = t.post_alert(&t.groundspan_token(), &post_seed()).await;
    let alert: serde_json::Value = created.json().await.unwrap();
    let mut lock = t.db.hold_write_lock().await;
    let working = {
        let (client, token) = (t.client.clone(), t.seed_user_token());
        let url = t.url(&format!(
            "/maestro/v4/inbox/{}/read",
            alert["alertId"].as_str().unwrap()
        ));
        tokio::spawn(async move {
            let response = client.post(url).bearer_auth(token).send().await.unwrap();
            response.status()
        })
    };
    until_in_flight(&t, 1).await;

    let response = t.post_alert(&t.groundspan_token(), &post_seed()).await;
    assert_eq!(response.headers()["retry-after"], "1");
    expect_error(response, 503, "SERVICE_UNAVAILABLE").await;
    // Probes are never shed.
    assert_eq!(
        t.client
            .get(t.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    // The working request completes normally once the database answers.
    lock.execute("ROLLBACK").await;
    assert_eq!(working.await.unwrap(), 200);
    until_in_flight(&t, 0).await;
    assert_eq!(
        t.post_alert(&t.groundspan_token(), &post_seed())
            .await
            .status(),
        200
    );
}

async fn a_database_that_does_not_answer_in_time_is_504_and_nothing_is_written(backend: Backend) {
    let t = TestApp::spawn_with(backend, |s| {
        s.database.database_timeout = Duration::from_millis(300)
    })
    .await;
    let body = post_seed();
    let mut lock = t.db.hold_write_lock().await;
    expect_error(
        t.post_alert(&t.groundspan_token(), &body).await,
        504,
        "UPSTREAM_TIMEOUT",
    )
    .await;
    lock.execute("ROLLBACK").await;

    // Nothing was half-written: the same request now creates the alert.
    let response = t.post_alert(&t.groundspan_token(), &body).await;
    assert_eq!(response.status(), 200);
    let created: serde_json::Value = response.json().await.unwrap();
    assert_eq!(created["message"], "Alert created successfully");
}

async fn an_internal_failure_is_500_without_internals(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    t.db.side_connection()
        .await
        .execute("DROP TABLE alert_revisions")
        .await;
    let response = t.post_alert(&t.groundspan_token(), &post_seed()).await;
    assert_eq!(response.status(), 500);
    let text = response.text().await.unwrap();
    assert!(text.contains("INTERNAL_ERROR"), "{text}");
    for leak in [
        "alert_revisions",
        "no such table",
        "does not exist",
        "sqlite",
        "SQL",
    ] {
        assert!(!text.contains(leak), "the body leaks {leak:?}: {text}");
    }
}

async fn shutdown_lets_the_request_in_flight_finish_and_stops_accepting(backend: Backend) {
    let mut t = TestApp::spawn(backend).await;
    let (mut stalled, body) = start_stalled_post(&t).await;
    until_in_flight(&t, 1).await;

    t.shutdown_signal().send(()).unwrap();
    let server = t.server_task();
    stalled.write_all(&body.as_bytes()[10..]).await.unwrap();
    let mut answer = String::new();
    stalled.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    server.await.unwrap().unwrap();
    assert!(
        raw_connection_fails(&t).await,
        "the listener is closed after shutdown"
    );
}

async fn raw_connection_fails(t: &TestApp) -> bool {
    TcpStream::connect(t.base.trim_start_matches("http://"))
        .await
        .is_err()
}

crate::on_both_backends!(
    a_body_over_the_limit_is_413,
    a_body_that_is_not_json_is_415,
    over_the_concurrency_limit_requests_are_shed_with_503_not_queued,
    a_database_that_does_not_answer_in_time_is_504_and_nothing_is_written,
    an_internal_failure_is_500_without_internals,
    shutdown_lets_the_request_in_flight_finish_and_stops_accepting,
);
