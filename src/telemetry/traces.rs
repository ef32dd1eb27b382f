//! Traces, exported over OTLP/HTTP (protobuf) when the standard OpenTelemetry variables ask for
//! it: `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`). Configuration is
//! the specification's variables rather than `MAESTRO_*` settings, because collectors, operators
//! and sidecars already speak them: `OTEL_EXPORTER_OTLP_HEADERS`, `…_TIMEOUT`, `OTEL_SERVICE_NAME`
//! (default `maestro`), `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER[_ARG]`, `OTEL_BSP_*`.
//!
//! With no endpoint nothing is installed: no layer, no exporter thread, and the propagation
//! helpers below return after one atomic load. W3C `traceparent` is accepted on requests (the
//! request span's parent) and sent on postbacks (the delivery attempt's span).

use std::{
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use anyhow::{Context as _, bail};
use axum::http::HeaderMap;
use opentelemetry::{
    Key, KeyValue,
    propagation::TextMapPropagator,
    trace::{Status, TracerProvider as _},
};
use opentelemetry_http::{Bytes, HeaderExtractor, HeaderInjector, HttpClient, HttpError};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::{Resource, propagation::TraceContextPropagator, trace::SdkTracerProvider};
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::{Layer, filter::Targets, registry::LookupSpan};

/// Set once the exporting layer is installed; read by every request and delivery attempt.
static ENABLED: AtomicBool = AtomicBool::new(false);

/// Whether spans are exported (the variable was set and the layer installed).
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// The exporting layer is installed: the helpers below start doing their work.
pub(super) fn mark_enabled() {
    ENABLED.store(true, Ordering::Relaxed);
}

/// The tracer provider of an instance that exports its spans.
pub struct Traces {
    provider: SdkTracerProvider,
}

impl Traces {
    /// The exporter the environment asks for, or `None` when no OTLP endpoint is set. A setting
    /// maestro cannot honour (another protocol, an endpoint that does not parse) stops start-up.
    ///
    /// Spans are sent by the SDK's batch processor from a thread of its own; each export is
    /// spawned on `runtime`, where reqwest finds its I/O driver.
    pub fn from_env(runtime: tokio::runtime::Handle) -> anyhow::Result<Option<Traces>> {
        let set = |name| std::env::var(name).is_ok_and(|value| !value.trim().is_empty());
        if !set("OTEL_EXPORTER_OTLP_ENDPOINT") && !set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
            return Ok(None);
        }
        for name in [
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
            "OTEL_EXPORTER_OTLP_PROTOCOL",
        ] {
            match std::env::var(name) {
                Ok(protocol) if !matches!(protocol.trim(), "" | "http/protobuf") => bail!(
                    "{name}={protocol}: maestro exports traces over OTLP/HTTP with protobuf \
                     (http/protobuf) only"
                ),
                _ => {}
            }
        }
        crate::tls::install_crypto_provider();
        let client = reqwest::Client::builder()
            .timeout(export_timeout()?)
            .build()
            .context("building the OTLP HTTP client")?;
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_http_client(OnRuntime { client, runtime })
            .build()
            .context("the OTLP trace exporter (OTEL_EXPORTER_OTLP_*)")?;
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource())
            .build();
        Ok(Some(Traces { provider }))
    }

    /// The layer that turns maestro's spans (not its dependencies') into exported spans.
    pub(super) fn layer<S>(&self) -> impl Layer<S> + use<S>
    where
        S: tracing::Subscriber + for<'span> LookupSpan<'span>,
    {
        tracing_opentelemetry::layer()
            .with_tracer(self.provider.tracer("maestro"))
            .with_filter(Targets::new().with_target("maestro", tracing::Level::INFO))
    }

    /// Sends the spans still buffered; call while the runtime still runs.
    pub fn shutdown(&self) {
        if let Err(err) = self.provider.shutdown() {
            tracing::warn!(error = %err, "sending the last spans failed");
        }
    }
}

/// `service.name` is `maestro` unless `OTEL_SERVICE_NAME` or `OTEL_RESOURCE_ATTRIBUTES` say
/// otherwise; `service.version` is this build's.
fn resource() -> Resource {
    let detected = Resource::builder().build();
    let named = detected
        .get(&Key::from_static_str("service.name"))
        .is_some_and(|name| !name.as_str().starts_with("unknown_service"));
    let builder = Resource::builder()
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")));
    match named {
        true => builder.build(),
        false => builder.with_service_name("maestro").build(),
    }
}

/// `OTEL_EXPORTER_OTLP_TRACES_TIMEOUT` or `OTEL_EXPORTER_OTLP_TIMEOUT` (milliseconds), 10 s by
/// default as the specification says.
fn export_timeout() -> anyhow::Result<Duration> {
    for name in [
        "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
        "OTEL_EXPORTER_OTLP_TIMEOUT",
    ] {
        if let Ok(value) = std::env::var(name).map(|v| v.trim().to_owned())
            && !value.is_empty()
        {
            let millis: u64 = value
                .parse()
                .with_context(|| format!("{name}={value}: not a number of milliseconds"))?;
            return Ok(Duration::from_millis(millis));
        }
    }
    Ok(Duration::from_secs(10))
}

/// The project's reqwest client, driven on the tokio runtime: the batch processor's thread has
/// none, and reqwest's connections need one.
#[derive(Debug)]
struct OnRuntime {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl HttpClient for OnRuntime {
    async fn send_bytes(
        &self,
        request: opentelemetry_http::Request<Bytes>,
    ) -> Result<opentelemetry_http::Response<Bytes>, HttpError> {
        let client = self.client.clone();
        self.runtime
            .spawn(async move { client.send_bytes(request).await })
            .await?
    }
}

/// Makes the caller's W3C trace context (`traceparent`, `tracestate`) the parent of `span`.
pub fn continue_from(span: &Span, headers: &HeaderMap) {
    if !enabled() || !headers.contains_key("traceparent") {
        return;
    }
    let parent = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
    // Refused only for a span that is not recorded (filtered out): nothing to continue.
    let _ = span.set_parent(parent);
}

/// Adds `span`'s W3C trace context to the headers of a request about to be sent.
pub fn inject(span: &Span, headers: &mut HeaderMap) {
    if enabled() {
        TraceContextPropagator::new().inject_context(&span.context(), &mut HeaderInjector(headers));
    }
}

/// Marks `span` as failed (an answer the server could not give, a delivery that failed).
pub fn set_error(span: &Span, description: &str) {
    if enabled() {
        span.set_status(Status::error(description.to_owned()));
    }
}

/// Sets an attribute on the exported span only, not on the span's log fields. (A value that
/// costs something to make is made only when [`enabled`].)
pub fn set_attribute(span: &Span, key: &'static str, value: impl Into<opentelemetry::Value>) {
    if enabled() {
        span.set_attribute(key, value);
    }
}
