//! Serving connections: hyper's HTTP/1 with the protections `axum::serve` does not expose — a
//! header-read timeout, which is also how long an idle keep-alive connection is kept — and a
//! cap on open connections below the process's open-file limit, so that idle or slow sockets,
//! however many are opened, can neither exhaust file descriptors nor linger.

use std::{future::Future, sync::Arc, time::Duration};

use axum::{Router, extract::ConnectInfo};
use hyper::server::conn::http1;
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::graceful::GracefulShutdown,
    service::TowerToHyperService,
};
use tokio::{net::TcpListener, sync::Semaphore};
use tower::ServiceExt;

use crate::error::{Error, ErrorCode};

/// The longest request target (path and query) answered; longer is 414 `URI_TOO_LONG`.
pub const MAX_TARGET_BYTES: usize = 8 * 1024;
/// The most header fields, and header bytes, answered; more is 431 `HEADERS_TOO_LARGE`.
pub const MAX_HEADERS: usize = 100;
pub const MAX_HEADER_BYTES: usize = 32 * 1024;
/// Where hyper itself stops parsing (and answers 431 alone, without a body): above maestro's own
/// limits, so that a request between the two still gets maestro's answer.
const PARSER_MAX_HEADERS: usize = 2 * MAX_HEADERS;
const PARSER_MAX_HEAD_BYTES: usize = 2 * (MAX_TARGET_BYTES + MAX_HEADER_BYTES);

/// The error of a request whose target or headers are over maestro's limits, if they are.
pub fn oversized_head(parts: &axum::http::Request<axum::body::Body>) -> Option<Error> {
    let target = parts
        .uri()
        .path_and_query()
        .map_or(0, |pq| pq.as_str().len());
    if target > MAX_TARGET_BYTES {
        return Some(Error::new(
            ErrorCode::UriTooLong,
            format!("The request target is longer than {MAX_TARGET_BYTES} bytes."),
        ));
    }
    let headers = parts.headers();
    let bytes: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    (headers.len() > MAX_HEADERS || bytes > MAX_HEADER_BYTES).then(|| {
        Error::new(
            ErrorCode::HeadersTooLarge,
            format!(
                "The request has more than {MAX_HEADERS} header fields or {MAX_HEADER_BYTES} \
                 bytes of them."
            ),
        )
    })
}

/// What bounds the connections of one server.
#[derive(Clone, Copy, Debug)]
pub struct ConnectionLimits {
    /// From a connection's opening, or the end of its previous answer, to the end of the next
    /// request's headers; past it the connection is closed (hyper times both with one timer).
    pub header_read_timeout: Duration,
    /// Connections open at once; while at the cap the listener accepts no more (they wait in
    /// the kernel's backlog) until one closes.
    pub max_connections: usize,
}

/// Raises the open-files soft limit to the hard limit where the system allows, and returns how
/// many connections may be open at once: `configured`, or fewer so that `reserved` descriptors
/// stay free for the database, outbound deliveries and logs. Both limits are logged.
pub fn connection_cap(configured: usize, reserved: usize) -> usize {
    let before = rlimit::Resource::NOFILE.get().ok();
    let soft = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(soft) => Some(soft),
        Err(err) => {
            tracing::warn!(error = %err, "could not raise the open-files limit");
            before.map(|(soft, _)| soft)
        }
    };
    let Some(soft) = soft else {
        return configured.max(1);
    };
    let room = usize::try_from(soft).unwrap_or(usize::MAX);
    let cap = configured.min(room.saturating_sub(reserved)).max(1);
    tracing::info!(
        open_files_limit = soft,
        open_files_limit_before = before.map(|(soft, _)| soft),
        open_files_hard_limit = before.map(|(_, hard)| hard),
        max_connections = cap,
        configured_max_connections = configured,
        "connection limits"
    );
    if cap < configured {
        tracing::warn!(
            max_connections = cap,
            "fewer connections than configured fit under the open-files limit"
        );
    }
    cap
}

/// Serves `router` on `listener` until `shutdown` completes; then stops accepting, lets every
/// connection finish the request it is serving (idle ones close at once), and returns when all
/// are closed.
pub async fn serve_connections(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) {
    let open = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_headers(PARSER_MAX_HEADERS)
        .max_header_size(PARSER_MAX_HEAD_BYTES);
    let mut shutdown = std::pin::pin!(shutdown);
    let mut at_cap = false;
    loop {
        if open.available_permits() == 0 && !at_cap {
            tracing::warn!(
                max_connections = limits.max_connections,
                "at the connection cap: new connections wait until one closes"
            );
        }
        at_cap = open.available_permits() == 0;
        let permit = tokio::select! {
            permit = open.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of descriptors or a connection that died in the backlog: the
                    // listener itself is fine; pause briefly rather than spin on the error.
                    tracing::warn!(error = %err, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Handlers that care where a request came from (the token endpoint's throttle) read
        // it as axum's `ConnectInfo`.
        let service = TowerToHyperService::new(router.clone().map_request(
            move |mut request: axum::http::Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                request
            },
        ));
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            // An error here is the client's (reset, timeout, malformed request): nothing to do.
            if let Err(err) = connection.await {
                tracing::debug!(error = %err, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}
