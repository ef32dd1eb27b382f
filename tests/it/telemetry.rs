//! Metrics as Prometheus reads them (every family described, latencies as histograms, partners
//! as labels, the gauges, the build), the request log lines, and traces sent to an OTLP/HTTP
//! collector by the real binary.

use std::sync::{Arc, Mutex};

use axum::{Router, body::Bytes, extract::State, http::HeaderMap, routing::post};
use opentelemetry_proto::tonic::{
    collector::trace::v1::ExportTraceServiceRequest, common::v1::any_value, trace::v1::Span,
};
use prost::Message;
use serde_json::Value;
use time::OffsetDateTime;

use crate::{
    delivery_helpers::{self, pass, publish, subscribe},
    exposition,
    helpers::*,
    real_binary::{KillOnDrop, issue_token, maestro, start_server_with, stop_gracefully},
    receiver::Receiver,
};

#[tokio::test]
async fn every_family_has_help_latencies_are_histograms_and_partners_label_alerts_and_deliveries() {
    let receiver = Receiver::start().await;
    let t = delivery_helpers::spawn(Backend::Sqlite, &receiver).await;
    subscribe(&t, "itinerary").await;
    publish(&t, &delivery_helpers::event("itinerary")).await;
    assert_eq!(pass(&t, OffsetDateTime::now_utc()).await.delivered, 1);
    let token = t.groundspan_token();
    assert_eq!(t.post_alert(&token, &post_seed()).await.status(), 200);
    let mut bad = post_seed();
    bad.as_object_mut().unwrap().remove("userId");
    assert_eq!(t.post_alert(&token, &bad).await.status(), 400);
    assert_eq!(t.post_alert("bad-token", &post_seed()).await.status(), 401);

    let families = exposition::parse(&t.metrics().await);
    for (name, family) in &families {
        assert!(
            family.help.as_deref().is_some_and(|help| !help.is_empty()),
            "{name} has no # HELP"
        );
        assert!(!family.kind.is_empty(), "{name} has no # TYPE");
        assert_ne!(family.kind, "summary", "{name}: latencies are histograms");
    }
    for name in [
        "maestro_http_request_duration_seconds",
        "maestro_delivery_attempt_duration_seconds",
    ] {
        assert_eq!(families[name].kind, "histogram", "{name}");
    }
    let attempt_took = families["maestro_delivery_attempt_duration_seconds"].find(
        "maestro_delivery_attempt_duration_seconds_bucket",
        &[("partner", delivery_helpers::PARTNER), ("le", "+Inf")],
    );
    assert_eq!(attempt_took[0].value, 1.0);

    // Alert and delivery metrics carry the partner (empty when no registered partner was named).
    for name in [
        "maestro_alerts_accepted_total",
        "maestro_alerts_rejected_total",
        "maestro_delivery_attempts_total",
        "maestro_delivery_attempt_duration_seconds",
        "maestro_deliveries_pending",
        "maestro_delivery_oldest_due_age_seconds",
    ] {
        let samples = &families[name].samples;
        assert!(!samples.is_empty(), "{name}");
        assert!(
            samples.iter().all(|s| s.labels.contains_key("partner")),
            "{name}: {samples:?}"
        );
    }
    let value = |name: &str, labels: &[(&str, &str)]| {
        let found = families[name].find(name, labels);
        assert_eq!(found.len(), 1, "{name} {labels:?}: {found:?}");
        found[0].value
    };
    let accepted = [("operation", "create"), ("partner", GROUNDSPAN)];
    assert_eq!(value("maestro_alerts_accepted_total", &accepted), 1.0);
    let refused = [("code", "MISSING_FIELD"), ("partner", GROUNDSPAN)];
    assert_eq!(value("maestro_alerts_rejected_total", &refused), 1.0);
    let unverified = [("code", "INVALID_TOKEN"), ("partner", "")];
    assert_eq!(value("maestro_alerts_rejected_total", &unverified), 1.0);
    let delivered = [
        ("partner", delivery_helpers::PARTNER),
        ("outcome", "delivered"),
    ];
    assert_eq!(value("maestro_delivery_attempts_total", &delivered), 1.0);

    // The gauges, a partner owed nothing included, and the process metrics.
    let acme = [("partner", delivery_helpers::PARTNER)];
    assert_eq!(value("maestro_deliveries_pending", &acme), 0.0);
    assert_eq!(value("maestro_delivery_oldest_due_age_seconds", &acme), 0.0);
    let groundspan = [("partner", GROUNDSPAN)];
    assert_eq!(value("maestro_deliveries_pending", &groundspan), 0.0);
    assert_eq!(value("maestro_inbox_streams_open", &[]), 0.0);
    assert!(value("maestro_inbox_feed_lag_seconds", &[]) >= 0.0);
    assert!(value("process_resident_memory_bytes", &[]) > 0.0);
    assert!(value("process_open_fds", &[]) > 0.0);
    assert!(families.contains_key("process_cpu_seconds_total"));

    let build = &families["maestro_build_info"].samples;
    assert_eq!(build.len(), 1);
    assert_eq!(build[0].value, 1.0);
    assert_eq!(build[0].labels["version"], env!("CARGO_PKG_VERSION"));
    assert!(!build[0].labels["rustc"].is_empty() && build[0].labels.contains_key("revision"));
}

#[tokio::test]
async fn the_gauges_show_the_backlog_its_age_and_the_open_streams() {
    let receiver = Receiver::start().await;
    let t = delivery_helpers::spawn(Backend::Sqlite, &receiver).await;
    subscribe(&t, "itinerary").await;
    let published = t.app.clock.now();
    publish(&t, &delivery_helpers::event("itinerary")).await;
    // Nothing delivers it (no worker runs here); a minute and a half later it is still due.
    t.app.clock.pin(published + time::Duration::seconds(90));
    let stream = t.stream(&t.seed_user_token()).await;

    let families = exposition::parse(&t.metrics().await);
    let value = |name: &str, labels: &[(&str, &str)]| families[name].find(name, labels)[0].value;
    let acme = [("partner", delivery_helpers::PARTNER)];
    assert_eq!(value("maestro_deliveries_pending", &acme), 1.0);
    let age = value("maestro_delivery_oldest_due_age_seconds", &acme);
    // Due since it was recorded, just after `published`.
    assert!((85.0..=90.0).contains(&age), "{age}");
    assert_eq!(value("maestro_inbox_streams_open", &[]), 1.0);
    drop(stream);
}

#[tokio::test]
async fn a_4xx_log_line_carries_the_error_code_and_the_partner() {
    let dir = crate::real_binary::migrated_dir();
    let token = issue_token(dir.path());
    let (server, base, log) = start_server_with(dir.path(), &[]);
    let mut server = KillOnDrop(Some(server));
    let client = http_client();
    let mut bad = post_seed();
    bad.as_object_mut().unwrap().remove("userId");
    for (token, status) in [(token.as_str(), 400), ("not-a-token", 401)] {
        let response = client
            .post(format!("{base}/maestro/v4/alerts"))
            .bearer_auth(token)
            .json(&bad)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status);
    }
    stop_gracefully(server.0.take().unwrap());

    let lines = log.join().unwrap();
    let finished: Vec<(&String, Value)> = lines
        .iter()
        .map(|line| (line, serde_json::from_str::<Value>(line).unwrap()))
        .filter(|(_, entry)| entry["message"] == "request finished")
        .collect();
    let at = |status: u16| {
        finished
            .iter()
            .find(|(_, entry)| entry["status"] == status)
            .map(|(_, entry)| entry)
            .unwrap_or_else(|| panic!("no {status} line in {lines:?}"))
    };
    assert_eq!(at(400)["error_code"], "MISSING_FIELD");
    assert_eq!(at(400)["partner"], GROUNDSPAN);
    assert_eq!(at(401)["error_code"], "INVALID_TOKEN");
    assert!(at(401).get("partner").is_none(), "no token was verified");
    // Milliseconds as a number with at most three decimals: no float noise.
    for (line, entry) in &finished {
        assert!(entry["latency_ms"].is_number(), "{line}");
        let text = line.split("\"latency_ms\":").nth(1).unwrap();
        let number: String = text.chars().take_while(|c| *c != ',').collect();
        let decimals = number.split_once('.').map_or(0, |(_, d)| d.len());
        assert!(decimals <= 3, "{number} in {line}");
    }
}

/// An OTLP/HTTP collector: keeps every export request's body.
struct Collector {
    url: String,
    bodies: Arc<Mutex<Vec<Bytes>>>,
}

impl Collector {
    async fn start() -> Collector {
        let bodies: Arc<Mutex<Vec<Bytes>>> = Arc::default();
        let app = Router::new()
            .route("/v1/traces", post(collect))
            .with_state(bodies.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Collector { url, bodies }
    }

    /// Every span received, with the `service.name` of its resource.
    fn spans(&self) -> Vec<(String, Span)> {
        let mut spans = Vec::new();
        for body in self.bodies.lock().unwrap().iter() {
            let request = ExportTraceServiceRequest::decode(body.clone()).unwrap();
            for resource_spans in request.resource_spans {
                let service = resource_spans
                    .resource
                    .iter()
                    .flat_map(|r| &r.attributes)
                    .find(|kv| kv.key == "service.name")
                    .and_then(|kv| kv.value.clone()?.value)
                    .map(|value| match value {
                        any_value::Value::StringValue(name) => name,
                        other => format!("{other:?}"),
                    })
                    .unwrap_or_default();
                for scope in resource_spans.scope_spans {
                    spans.extend(scope.spans.into_iter().map(|s| (service.clone(), s)));
                }
            }
        }
        spans
    }
}

async fn collect(
    State(bodies): State<Arc<Mutex<Vec<Bytes>>>>,
    headers: HeaderMap,
    body: Bytes,
) -> ([(&'static str, &'static str); 1], Vec<u8>) {
    assert_eq!(headers["content-type"], "application/x-protobuf");
    bodies.lock().unwrap().push(body);
    // An empty ExportTraceServiceResponse: everything accepted.
    ([("content-type", "application/x-protobuf")], Vec::new())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The caller's `traceparent` becomes the parent of the request's server span, and a postback
/// carries the `traceparent` of the delivery attempt's client span; both spans reach the
/// collector named by `OTEL_EXPORTER_OTLP_ENDPOINT`, from service `maestro`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traces_reach_an_otlp_collector_continuing_the_callers_trace() {
    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const PARENT: &str = "00f067aa0ba902b7";
    let collector = Collector::start().await;
    let receiver = Receiver::start().await;
    let dir = crate::real_binary::migrated_dir();
    let partner = dir.path().join("acme");
    std::fs::create_dir_all(partner.join("templates/OFFER")).unwrap();
    std::fs::write(
        partner.join("partner.toml"),
        format!(
            "id = \"acme\"\nname = \"Acme\"\nallowed_url_domains = [\"acme.example\"]\n\
             postback_url = \"{}\"\n",
            receiver.url
        ),
    )
    .unwrap();
    std::fs::write(partner.join("templates/OFFER/schema.json"), "{}").unwrap();
    let partner = partner.to_str().unwrap();
    assert!(
        maestro(dir.path(), &["partner", "import", partner])
            .status
            .success()
    );
    let token = |args: &[&str]| {
        let output = maestro(dir.path(), &[&["token", "issue"], args].concat());
        assert!(output.status.success());
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    };
    let admin = token(&[
        "--type",
        "user",
        "--subject",
        "u-1",
        "--app",
        "acme",
        "--company",
        COMPANY,
        "--role",
        "CompanyAdministrator",
    ]);
    let producer = token(&[
        "--type",
        "app",
        "--subject",
        "core",
        "--app",
        "core",
        "--scope",
        "maestro.events.publish",
    ]);
    let env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", collector.url.as_str()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ("MAESTRO_DELIVERY_ALLOWED_SUBNETS", "127.0.0.0/8"),
    ];
    let (server, base, _log) = start_server_with(dir.path(), &env);
    let mut server = KillOnDrop(Some(server));
    let client = http_client();
    let health = client
        .get(format!("{base}/healthz"))
        .header("traceparent", format!("00-{TRACE}-{PARENT}-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let subscribed = client
        .post(format!("{base}/api/company/v1.0/subscribe?type=itinerary"))
        .header("Authorization", format!("OAuth {admin}"))
        .send()
        .await
        .unwrap();
    assert_eq!(subscribed.status(), 200);
    let published = client
        .post(format!("{base}/internal/v1/company-events"))
        .bearer_auth(&producer)
        .json(&serde_json::json!({
            "type": "itinerary", "eventType": "UPDATE", "companyId": COMPANY,
            "userLogin": "cm@example.com", "tripId": "T-1", "occurredAt": "2026-11-24T08:00:00Z"
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(published.status(), 202);
    let postback = receiver.wait_for(1).await.remove(0);
    // Stopping sends the spans still buffered.
    stop_gracefully(server.0.take().unwrap());

    let spans = collector.spans();
    let named: Vec<_> = spans.iter().map(|(_, s)| s.name.clone()).collect();
    let (service, request) = spans
        .iter()
        .find(|(_, s)| hex(&s.trace_id) == TRACE)
        .unwrap_or_else(|| panic!("no span of the caller's trace among {named:?}"));
    assert_eq!(service, "maestro");
    assert_eq!(hex(&request.parent_span_id), PARENT);
    assert_eq!(request.name, "GET /healthz");
    assert_eq!(request.kind, 2, "server");

    let traceparent = postback.header("traceparent");
    let parts: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(
        parts.len(),
        4,
        "the postback carries a traceparent: {traceparent:?}"
    );
    let (_, attempt) = spans
        .iter()
        .find(|(_, s)| hex(&s.trace_id) == parts[1] && hex(&s.span_id) == parts[2])
        .unwrap_or_else(|| panic!("the postback's span was not exported: {named:?}"));
    assert_eq!(attempt.kind, 3, "client");
    assert_eq!(attempt.name, "POST");
}
