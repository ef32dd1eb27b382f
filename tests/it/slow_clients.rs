//! Slow and idle clients cannot take the service down: authorisation before the body, bodies
//! read under a deadline without holding a work permit, connections closed when they idle or
//! dawdle over their headers, and a cap on open connections.

use std::time::Duration;

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::helpers::*;

/// Bounds a wait for something the server does at once or after a short timeout, so that a
/// broken build fails instead of hanging.
const PATIENCE: Duration = Duration::from_secs(10);

async fn connect(t: &TestApp) -> TcpStream {
    TcpStream::connect(t.base.trim_start_matches("http://"))
        .await
        .unwrap()
}

/// Sends a POST's headers (declaring `length` bytes of JSON) and `sent` of the body, no more.
async fn stalled_post(
    t: &TestApp,
    path: &str,
    token: &str,
    sent: &[u8],
    length: usize,
) -> TcpStream {
    let mut stream = connect(t).await;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(sent).await.unwrap();
    stream
}

/// The status and body of the answer on `stream` (read until the server closes or the body
/// declared by Content-Length is in).
async fn answer(stream: &mut TcpStream) -> (u16, String, String) {
    let read = async {
        let mut raw = Vec::new();
        let mut buffer = [0u8; 4096];
        loop {
            let n = stream.read(&mut buffer).await.unwrap_or(0);
            raw.extend_from_slice(&buffer[..n]);
            let text = String::from_utf8_lossy(&raw).into_owned();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length = head.lines().find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap())
                });
                if n == 0 || length.is_some_and(|length| body.len() >= length) {
                    let status = head[9..12].parse().unwrap();
                    return (status, head.to_owned(), body.to_owned());
                }
            }
            assert!(n > 0, "the connection closed without an answer: {text:?}");
        }
    };
    tokio::time::timeout(PATIENCE, read)
        .await
        .expect("an answer in time")
}

/// True once the server has closed `stream` (EOF or reset), false if it is still open after
/// `PATIENCE`.
async fn closed_by_server(stream: &mut TcpStream) -> bool {
    let mut buffer = [0u8; 1024];
    let read = async {
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {} // an answer (hyper's 408 or similar) before the close
            }
        }
    };
    tokio::time::timeout(PATIENCE, read).await.is_ok()
}

async fn a_token_without_the_scope_is_refused_before_its_body_is_sent(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let inbox_user = t.company_token(COMPANY, GROUNDSPAN, &["maestro.inbox.readwrite"]);
    let mut stream = stalled_post(&t, "/maestro/v4/alerts", &inbox_user, b"", 100_000).await;
    let (status, head, body) = answer(&mut stream).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("INSUFFICIENT_SCOPE"), "{body}");
    assert!(
        head.to_ascii_lowercase().contains("concur-correlationid"),
        "{head}"
    );

    // The same for company events: a partner's token is no producer's.
    let partner = t.groundspan_token();
    let mut stream = stalled_post(&t, "/internal/v1/company-events", &partner, b"", 1000).await;
    let (status, _, body) = answer(&mut stream).await;
    assert_eq!(status, 403, "{body}");
}

async fn a_stalled_body_holds_no_work_permit(backend: Backend) {
    let t = TestApp::spawn_with(backend, |s| s.max_concurrent_requests = 1).await;
    let body = post_seed().to_string();
    let token = t.groundspan_token();
    let mut stalled = stalled_post(
        &t,
        "/maestro/v4/alerts",
        &token,
        &body.as_bytes()[..10],
        body.len(),
    )
    .await;

    until_gauge(&t, "maestro_http_request_bodies_in_progress", 1).await;
    // With one permit, other requests are still served while that body is awaited.
    for _ in 0..3 {
        let response = t.post_alert(&token, &post_seed()).await;
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    }
    stalled.write_all(&body.as_bytes()[10..]).await.unwrap();
    let (status, _, answer_body) = answer(&mut stalled).await;
    assert_eq!(status, 200, "{answer_body}");
}

async fn a_body_not_received_in_time_is_408_in_the_error_envelope(backend: Backend) {
    let t = TestApp::spawn_with(backend, |s| s.request_timeout = Duration::from_millis(500)).await;
    let body = post_seed().to_string();
    let mut stalled = stalled_post(
        &t,
        "/maestro/v4/alerts",
        &t.groundspan_token(),
        &body.as_bytes()[..10],
        body.len(),
    )
    .await;
    let (status, head, answer_body) = answer(&mut stalled).await;
    assert_eq!(status, 408, "{answer_body}");
    let error: serde_json::Value = serde_json::from_str(&answer_body).unwrap();
    assert_eq!(error["errors"][0]["errorCode"], "REQUEST_TIMEOUT");
    let head = head.to_ascii_lowercase();
    assert!(head.contains("concur-correlationid"), "{head}");
    assert!(head.contains("application/json;charset=utf-8"), "{head}");
    assert!(
        t.app.store.outbox_after(0, 10).await.unwrap().is_empty(),
        "nothing was done"
    );
}

async fn idle_and_slow_connections_are_closed_after_the_header_timeout(backend: Backend) {
    let t = TestApp::spawn_with(backend, |s| {
        s.header_read_timeout = Duration::from_millis(500)
    })
    .await;
    // Opens and says nothing.
    let mut idle = connect(&t).await;
    // Slowloris: half a request line, then nothing.
    let mut slow = connect(&t).await;
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHo")
        .await
        .unwrap();
    // Keep-alive: one request answered, then idle.
    let mut kept = connect(&t).await;
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let (status, _, _) = answer(&mut kept).await;
    assert_eq!(status, 200);
    for (name, stream) in [
        ("idle", &mut idle),
        ("slow", &mut slow),
        ("kept", &mut kept),
    ] {
        assert!(
            closed_by_server(stream).await,
            "the {name} connection stayed open"
        );
    }
}

async fn connections_beyond_the_cap_wait_until_one_closes(backend: Backend) {
    let t = TestApp::spawn_with(backend, |s| s.max_connections = 2).await;
    let first = connect(&t).await;
    let _second = connect(&t).await;
    // The kernel completes the third handshake, but the server does not take the connection
    // up: its request is not answered while two are open.
    let mut third = connect(&t).await;
    third
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut byte = [0u8; 1];
    let early = tokio::time::timeout(Duration::from_millis(300), third.read(&mut byte)).await;
    assert!(early.is_err(), "answered beyond the cap");
    drop(first);
    let (status, _, _) = answer(&mut third).await;
    assert_eq!(status, 200);
}

async fn a_malformed_chunked_body_is_400_not_413(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let mut stream = connect(&t).await;
    let head = format!(
        "POST /maestro/v4/alerts HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
        t.groundspan_token()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(b"zz\r\n{}\r\n0\r\n\r\n").await.unwrap();
    let (status, _, body) = answer(&mut stream).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("MALFORMED_BODY"), "{body}");
}

#[tokio::test]
async fn oversized_heads_get_the_error_envelope_up_to_the_parsers_own_limits() {
    let t = TestApp::spawn(Backend::Sqlite).await;
    let many: String = (0..120).map(|i| format!("X-Extra-{i}: 1\r\n")).collect();
    let big = format!("X-Big: {}\r\n", "a".repeat(40 * 1024));
    for (request, status, code) in [
        (
            format!(
                "GET /healthz?{} HTTP/1.1\r\nHost: x\r\n\r\n",
                "a".repeat(9 * 1024)
            ),
            414,
            Some("URI_TOO_LONG"),
        ),
        (
            format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{many}\r\n"),
            431,
            Some("HEADERS_TOO_LARGE"),
        ),
        (
            format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{big}\r\n"),
            431,
            Some("HEADERS_TOO_LARGE"),
        ),
        // Past the parser's own limits hyper answers alone, without a body (see the README).
        (
            format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(70 * 1024)),
            414,
            None,
        ),
        ("NOT HTTP\r\n\r\n".to_owned(), 400, None),
    ] {
        let mut stream = connect(&t).await;
        stream.write_all(request.as_bytes()).await.unwrap();
        let (answered, head, body) = answer(&mut stream).await;
        assert_eq!(answered, status, "{head}");
        match code {
            Some(code) => {
                assert!(body.contains(code), "{body}");
                assert!(
                    head.to_ascii_lowercase().contains("concur-correlationid"),
                    "{head}"
                );
            }
            None => assert!(body.is_empty(), "{body}"),
        }
    }
}

crate::on_both_backends!(
    a_token_without_the_scope_is_refused_before_its_body_is_sent,
    a_stalled_body_holds_no_work_permit,
    a_body_not_received_in_time_is_408_in_the_error_envelope,
    idle_and_slow_connections_are_closed_after_the_header_timeout,
    connections_beyond_the_cap_wait_until_one_closes,
    a_malformed_chunked_body_is_400_not_413,
);
