//! OpenTelemetry export for strata: spans to any OTLP endpoint (gRPC or HTTP/protobuf) through
//! `tracing-opentelemetry` and `opentelemetry-otlp`, and the exported span's trace and span IDs
//! in strata-core's span store, so every strata JSON line inside a span carries the same
//! `trace_id`/`span_id` that the trace backend shows.
//!
//! ```no_run
//! use strata_otlp::Otlp;
//! use tracing_subscriber::prelude::*;
//!
//! let otlp = Otlp::new()                      // OTEL_* environment variables, then defaults
//!     .with_endpoint("http://127.0.0.1:4317") // code wins over the environment
//!     .with_service_name("checkout")
//!     .start()?;
//! tracing_subscriber::registry()
//!     .with(strata_core::StoreLayer::default())
//!     .with(otlp.layer())
//!     .with(strata_json::layer())
//!     .init();
//! tracing::info_span!("request").in_scope(|| tracing::info!("traced"));
//! drop(otlp); // flushes, bounded by a timeout, from any thread or runtime
//! # Ok::<(), strata_otlp::OtlpError>(())
//! ```
//!
//! With no endpoint configured (in code or `OTEL_EXPORTER_OTLP_*`), spans go to a local file as
//! OTLP/JSON lines instead ([`Otlp::with_file`]). W3C TraceContext propagation through
//! strata-request-id is one call: [`install_propagation`].
//!
//! Status: traces over gRPC, HTTP/protobuf or the local file, with a resource (`service.name`,
//! `service.version`, `deployment.environment.name`, `host.name`, `process.pid`, plus
//! `OTEL_RESOURCE_ATTRIBUTES`), trace IDs in JSON lines, W3C propagation, counted drops. The
//! logs bridge, Baggage, HTTP semantic-convention names and the rest of `OTEL_*` come next.

mod batch;
mod file;
#[cfg(feature = "request-id")]
mod propagation;

#[cfg(feature = "request-id")]
pub use propagation::install_propagation;

use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanExporter};
use strata_core::{TraceContext, store};
use tracing_core::dispatcher::WeakDispatch;
use tracing_core::span::Id;
use tracing_core::{Dispatch, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

/// The wire protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Protocol {
    /// OTLP/gRPC (default port 4317).
    Grpc,
    /// OTLP/HTTP with protobuf bodies (default port 4318, path `/v1/traces`).
    HttpProtobuf,
}

/// OTLP export could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OtlpError {
    /// A setting is not valid; names the setting (an environment variable or a `with_*`).
    #[error("{setting} = {value:?}: expected {expected}")]
    Invalid {
        /// The setting.
        setting: &'static str,
        /// Its value.
        value: String,
        /// What would be accepted.
        expected: &'static str,
    },
    /// The exporter could not be built.
    #[error("the OTLP exporter could not be built: {0}")]
    Exporter(String),
    /// The exporter's runtime could not start.
    #[error("could not start the exporter's runtime: {0}")]
    Runtime(#[from] std::io::Error),
}

/// OTLP export settings: code beats `OTEL_*` environment variables, which beat defaults.
#[derive(Debug, Clone)]
pub struct Otlp {
    endpoint: Option<String>,
    file: Option<(std::path::PathBuf, u64)>,
    queue: Option<usize>,
    protocol: Option<Protocol>,
    service_name: Option<String>,
    service_version: Option<String>,
    environment: Option<String>,
    timeout: Duration,
}

impl Default for Otlp {
    fn default() -> Self {
        Self::new()
    }
}

fn env(key: &str) -> Option<String> {
    std::env::var(key).ok().filter(|v| !v.trim().is_empty())
}

impl Otlp {
    /// Settings from nothing: [`Otlp::start`] reads the environment for what code did not set.
    pub fn new() -> Self {
        Otlp {
            endpoint: None,
            file: None,
            queue: None,
            protocol: None,
            service_name: None,
            service_version: None,
            environment: None,
            timeout: Duration::from_secs(10),
        }
    }

    /// The collector's endpoint. Default: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, then
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`, then `http://localhost:4317` (gRPC) or
    /// `http://localhost:4318/v1/traces` (HTTP).
    #[must_use]
    pub fn with_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = Some(endpoint.into());
        self
    }

    /// Appends spans to a local file as OTLP/JSON lines instead of sending them, keeping at
    /// most about twice `max_bytes` (the file and one previous). This is also what happens
    /// when no endpoint is set in code or the environment: `STRATA_TRACES_FILE`, or
    /// `.strata/traces.jsonl`, 50 MB.
    #[must_use]
    pub fn with_file(mut self, path: impl Into<std::path::PathBuf>, max_bytes: u64) -> Self {
        self.file = Some((path.into(), max_bytes));
        self
    }

    /// The most finished spans waiting for export; more are dropped (counted, and reported in
    /// the logs at most once a second). Default: `OTEL_BSP_MAX_QUEUE_SIZE`, then 2048.
    #[must_use]
    pub fn with_max_queue_size(mut self, spans: usize) -> Self {
        self.queue = Some(spans.max(1));
        self
    }

    /// The protocol. Default: `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`, then
    /// `OTEL_EXPORTER_OTLP_PROTOCOL` (`grpc`, `http/protobuf`), then gRPC.
    #[must_use]
    pub fn with_protocol(mut self, protocol: Protocol) -> Self {
        self.protocol = Some(protocol);
        self
    }

    /// The `service.name` resource attribute. Default: `OTEL_SERVICE_NAME`, then
    /// `STRATA_SERVICE`, then the executable's name.
    #[must_use]
    pub fn with_service_name(mut self, name: impl Into<String>) -> Self {
        self.service_name = Some(name.into());
        self
    }

    /// The `service.version` resource attribute. Default: `STRATA_VERSION`.
    #[must_use]
    pub fn with_service_version(mut self, version: impl Into<String>) -> Self {
        self.service_version = Some(version.into());
        self
    }

    /// The `deployment.environment.name` resource attribute. Default: `STRATA_ENV`.
    #[must_use]
    pub fn with_environment(mut self, env: impl Into<String>) -> Self {
        self.environment = Some(env.into());
        self
    }

    /// Starts the exporter (on a runtime of its own: it works from any thread, inside or
    /// outside an async runtime).
    ///
    /// # Errors
    ///
    /// [`OtlpError::Invalid`] naming a bad setting; [`OtlpError::Exporter`] or
    /// [`OtlpError::Runtime`] when the exporter cannot be built.
    pub fn start(self) -> Result<OtlpGuard, OtlpError> {
        let protocol = match self.protocol {
            Some(p) => p,
            None => match env("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
                .or_else(|| env("OTEL_EXPORTER_OTLP_PROTOCOL"))
                .as_deref()
            {
                None | Some("grpc") => Protocol::Grpc,
                Some("http/protobuf") => Protocol::HttpProtobuf,
                Some(other) => {
                    return Err(OtlpError::Invalid {
                        setting: "OTEL_EXPORTER_OTLP_PROTOCOL",
                        value: other.to_owned(),
                        expected: "grpc or http/protobuf",
                    });
                }
            },
        };
        let endpoint = self
            .endpoint
            .clone()
            .or_else(|| env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
            .or_else(|| env("OTEL_EXPORTER_OTLP_ENDPOINT"));
        // No collector configured (or a file asked for): the local OTLP/JSON file.
        let Some(endpoint) = endpoint.filter(|_| self.file.is_none()) else {
            let (path, max) = self.file.clone().unwrap_or_else(|| {
                (
                    env("STRATA_TRACES_FILE").map_or_else(
                        || std::path::PathBuf::from(".strata").join("traces.jsonl"),
                        std::path::PathBuf::from,
                    ),
                    50_000_000,
                )
            });
            // File writes need no runtime.
            return self.start_on(file::FileExporter::new(path, max), None);
        };
        if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
            return Err(OtlpError::Invalid {
                setting: "endpoint",
                value: endpoint,
                expected: "an http:// or https:// URL",
            });
        }
        // The gRPC exporter's channel lives on this runtime, so export works from the batch
        // processor's thread whatever runtime (if any) the application runs.
        let runtime = exporter_runtime()?;
        let exporter = {
            let _enter = runtime.enter();
            match protocol {
                Protocol::Grpc => opentelemetry_otlp::SpanExporter::builder()
                    .with_tonic()
                    .with_endpoint(endpoint)
                    .with_timeout(self.timeout)
                    .build(),
                Protocol::HttpProtobuf => opentelemetry_otlp::SpanExporter::builder()
                    .with_http()
                    .with_endpoint(endpoint)
                    .with_timeout(self.timeout)
                    .build(),
            }
            .map_err(|e| OtlpError::Exporter(e.to_string()))?
        };
        // Only gRPC runs on the runtime; the blocking HTTP client must not.
        let runtime = (protocol == Protocol::Grpc).then_some(runtime);
        self.start_on(exporter, runtime)
    }

    /// Starts with `exporter` instead of the OTLP one (a custom exporter; benchmarks use a
    /// no-op one), on the same batch processor.
    ///
    /// # Errors
    ///
    /// [`OtlpError::Runtime`] when the exporter's runtime or thread cannot start.
    pub fn start_with_exporter<E: SpanExporter + 'static>(
        self,
        exporter: E,
    ) -> Result<OtlpGuard, OtlpError> {
        self.start_on(exporter, Some(exporter_runtime()?))
    }

    fn start_on<E: SpanExporter + 'static>(
        self,
        mut exporter: E,
        runtime: Option<tokio::runtime::Runtime>,
    ) -> Result<OtlpGuard, OtlpError> {
        let service = self
            .service_name
            .or_else(|| env("OTEL_SERVICE_NAME"))
            .unwrap_or_else(strata_core::default_service_name);
        let queue = match self
            .queue
            .map(|q| q.to_string())
            .or_else(|| env("OTEL_BSP_MAX_QUEUE_SIZE"))
        {
            None => 2048,
            Some(v) => v
                .parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or(OtlpError::Invalid {
                    setting: "OTEL_BSP_MAX_QUEUE_SIZE",
                    value: v,
                    expected: "a positive number of spans",
                })?,
        };
        // The SDK's builder also reads OTEL_RESOURCE_ATTRIBUTES; ours come on top.
        let mut attrs = vec![KeyValue::new("process.pid", i64::from(std::process::id()))];
        if let Some(host) = strata_core::host_name() {
            attrs.push(KeyValue::new("host.name", host));
        }
        if let Some(v) = self.service_version.or_else(|| env("STRATA_VERSION")) {
            attrs.push(KeyValue::new("service.version", v));
        }
        if let Some(e) = self.environment.or_else(|| env("STRATA_ENV")) {
            attrs.push(KeyValue::new("deployment.environment.name", e));
        }
        let resource = Resource::builder()
            .with_service_name(service)
            .with_attributes(attrs)
            .build();
        exporter.set_resource(&resource);
        let counters = Arc::new(batch::Counters::default());
        let delay = match env("OTEL_BSP_SCHEDULE_DELAY") {
            None => Duration::from_millis(500),
            Some(v) => {
                v.parse::<u64>()
                    .ok()
                    .map(Duration::from_millis)
                    .ok_or(OtlpError::Invalid {
                        setting: "OTEL_BSP_SCHEDULE_DELAY",
                        value: v,
                        expected: "milliseconds",
                    })?
            }
        };
        let processor = batch::BatchProcessor::spawn(
            exporter,
            queue,
            delay,
            Arc::clone(&counters),
            runtime.as_ref().map(|rt| rt.handle().clone()),
        )?;
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .with_resource(resource)
            .build();
        Ok(OtlpGuard {
            provider,
            counters,
            runtime,
        })
    }
}

fn exporter_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("strata-otlp")
        .enable_all()
        .build()
}

/// Keeps the exporter running; dropping it flushes and shuts down, bounded by a timeout.
#[must_use = "dropping the guard shuts the exporter down; hold it until the end of main"]
pub struct OtlpGuard {
    provider: SdkTracerProvider,
    counters: Arc<batch::Counters>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for OtlpGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtlpGuard").finish_non_exhaustive()
    }
}

impl OtlpGuard {
    /// The layer to add to the subscriber: tracing-opentelemetry's, followed by the bridge that
    /// puts each span's OpenTelemetry IDs into strata's span store.
    pub fn layer<S>(&self) -> impl Layer<S> + Send + Sync + 'static
    where
        S: Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
    {
        let tracer = self.provider.tracer("strata");
        tracing_opentelemetry::layer()
            .with_tracer(tracer)
            .and_then(TraceIds::default())
    }

    /// Spans exported so far.
    pub fn exported_spans(&self) -> u64 {
        self.counters.exported.load(Ordering::Relaxed)
    }

    /// Spans dropped because the queue (`OTEL_BSP_MAX_QUEUE_SIZE`, default 2048) was full.
    pub fn dropped_spans(&self) -> u64 {
        self.counters.dropped.load(Ordering::Relaxed)
    }

    /// Spans whose export failed.
    pub fn failed_spans(&self) -> u64 {
        self.counters.failed.load(Ordering::Relaxed)
    }

    /// Exports what is buffered, waiting at most about `timeout` (on a thread of its own, so
    /// it cannot deadlock a current-thread runtime).
    pub fn flush(&self, timeout: Duration) -> bool {
        let provider = self.provider.clone();
        run_bounded(timeout, move || provider.force_flush().is_ok())
    }
}

/// Runs `f` on a thread of its own and waits at most `timeout` for it.
fn run_bounded(timeout: Duration, f: impl FnOnce() -> bool + Send + 'static) -> bool {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    let spawned = std::thread::Builder::new()
        .name("strata-otlp-flush".to_owned())
        .spawn(move || {
            let _ = tx.send(f());
        });
    spawned.is_ok() && rx.recv_timeout(timeout).unwrap_or(false)
}

impl Drop for OtlpGuard {
    fn drop(&mut self) {
        let provider = self.provider.clone();
        run_bounded(Duration::from_secs(5), move || {
            provider
                .shutdown_with_timeout(Duration::from_secs(5))
                .is_ok()
        });
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// Copies each span's OpenTelemetry trace and span IDs into strata-core's span store.
/// Must come after tracing-opentelemetry's layer ([`OtlpGuard::layer`] composes them so).
#[derive(Clone, Default)]
struct TraceIds {
    dispatch: Arc<OnceLock<WeakDispatch>>,
}

impl<S> Layer<S> for TraceIds
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_register_dispatch(&self, subscriber: &Dispatch) {
        let _ = self.dispatch.set(subscriber.downgrade());
    }

    // Filled at the span's first entry, not its creation: until then its parent may still be
    // set (an incoming `traceparent`), and building the OpenTelemetry span earlier would fix it.
    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        if span
            .extensions()
            .get::<store::SpanFields>()
            .is_some_and(|f| f.trace_context().is_some())
        {
            return;
        }
        drop(span);
        let Some(dispatch) = self.dispatch.get().and_then(WeakDispatch::upgrade) else {
            return;
        };
        // Builds (starts) the OpenTelemetry span; no extensions may be held meanwhile.
        let Some(cx) = tracing_opentelemetry::get_otel_context(id, &dispatch) else {
            return;
        };
        let sc = cx.span().span_context().clone();
        if !sc.is_valid() {
            return;
        }
        let Some(span) = ctx.span(id) else { return };
        let mut ext = span.extensions_mut();
        // The store layer (strata's first layer) created the fields at the span's creation.
        if let Some(fields) = ext.get_mut::<store::SpanFields>() {
            fields.set_trace_context(TraceContext::new(
                sc.trace_id().to_bytes(),
                sc.span_id().to_bytes(),
                sc.is_sampled(),
            ));
        }
    }
}
