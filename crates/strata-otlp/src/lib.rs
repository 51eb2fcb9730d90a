//! OpenTelemetry export for strata: traces, logs and metrics to any OTLP endpoint (gRPC or
//! HTTP/protobuf). strata's span recorder gives each span its OpenTelemetry IDs in strata-core's
//! span store — so every strata JSON line inside a span carries the same `trace_id`/`span_id`
//! that the trace backend shows, and so does the exported log record of the same event — and
//! exports the span when it closes; the OpenTelemetry SDK samples, and exports metrics.
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
//! With no endpoint configured (in code or `OTEL_EXPORTER_OTLP_*`), spans, log records and
//! metrics go to a local file as OTLP/JSON lines instead ([`Otlp::with_file`]). W3C
//! TraceContext and Baggage propagation through strata-request-id is one call:
//! [`install_propagation`]. Every setting, its `OTEL_*` variable and default: [`Otlp`].
//!
//! - Resource: `service.name`, `service.version`, `deployment.environment.name`, `host.name`,
//!   `process.pid`, plus `OTEL_RESOURCE_ATTRIBUTES`.
//! - strata-request-id's server span `request` and client span `http_client` are exported with
//!   the HTTP semantic conventions (kind, `GET /users/{id}` names, `http.request.method`,
//!   `http.route`, `url.full`, `http.response.status_code`, `error.type`), and error status on
//!   5xx (server) or 4xx/5xx (client); an ERROR event marks any span as failed. The rewrite runs
//!   on the export thread, and JSON lines keep strata's field names.
//! - With [`Otlp::with_redaction`], secrets are masked in exported spans (names, attributes,
//!   span events, links, status) and log records (bodies, attributes) — sensitive attribute
//!   keys whatever the type, secret-shaped text anywhere — on the export thread, for the
//!   collector and the local file alike.
//! - Spans and log records are encoded straight into OTLP protobuf on the export thread, one
//!   buffer per batch (no intermediate message structs, no copy of the batch for retries), and
//!   sent over tonic or the HTTP client, with the OTLP retries (3, backing off from 100 ms);
//!   metrics go through `opentelemetry-otlp`.
//! - Queues are bounded; dropped and failed spans and log records are counted
//!   ([`OtlpGuard::dropped_spans`]…) and reported in the logs at most once a second.
//! - No feedback loop: telemetry is suppressed on the exporter's threads, the network stack's
//!   and telemetry crates' events are never exported as log records, nor their spans.
//! - The guard's drop flushes with a timeout from any thread: a multi-thread runtime, a
//!   current-thread runtime, or none.

mod batch;
mod bridge;
mod compat;
mod config;
mod file;
#[cfg(feature = "request-id")]
mod propagation;
mod recorder;
mod redact;
mod semconv;
mod span_ext;
mod transport;
mod wire;

pub use span_ext::SpanExt;

#[cfg(feature = "request-id")]
pub use propagation::install_propagation;

/// For strata-otlp's benchmarks only (`benches/encode.rs`): not part of the API.
#[doc(hidden)]
pub mod __bench {
    /// `spans` as an `ExportTraceServiceRequest`, the way the exporter encodes a batch.
    pub fn encode_traces(
        resource: &opentelemetry_sdk::Resource,
        spans: &[opentelemetry_sdk::trace::SpanData],
    ) -> Vec<u8> {
        let mut out = Vec::with_capacity(spans.len() * 512 + 256);
        crate::wire::traces(
            &mut out,
            &crate::wire::EncodedResource::new(resource),
            spans,
        );
        out
    }
}

/// The meter provider [`OtlpGuard::meter_provider`] returns (the OpenTelemetry SDK's).
pub use opentelemetry_sdk::metrics::SdkMeterProvider;
/// The samplers [`Otlp::with_sampler`] accepts (the OpenTelemetry SDK's).
pub use opentelemetry_sdk::trace::Sampler;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use config::{Signal, env};
use http::HeaderMap;
use opentelemetry::KeyValue;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::PeriodicReader;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanExporter};
use tracing_core::Subscriber;
use tracing_subscriber::layer::Layer;
use tracing_subscriber::registry::LookupSpan;

/// The wire protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Protocol {
    /// OTLP/gRPC (default port 4317).
    Grpc,
    /// OTLP/HTTP with protobuf bodies (default port 4318, paths `/v1/traces`, `/v1/logs`,
    /// `/v1/metrics`).
    HttpProtobuf,
}

/// How export bodies are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Compression {
    /// Not compressed.
    None,
    /// gzip.
    Gzip,
}

/// OTLP export could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OtlpError {
    /// A setting is not valid; names the setting (an environment variable or a `with_*`), and
    /// the value (never a header's value: those carry credentials).
    #[error("{setting} = {value:?}: expected {expected}")]
    Invalid {
        /// The setting.
        setting: String,
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
///
/// | setting | code | environment | default |
/// |---|---|---|---|
/// | on/off | [`with_enabled`](Otlp::with_enabled) | `OTEL_SDK_DISABLED` | on |
/// | endpoint | [`with_endpoint`](Otlp::with_endpoint) | `OTEL_EXPORTER_OTLP_[TRACES_\|LOGS_\|METRICS_]ENDPOINT` | local file |
/// | protocol | [`with_protocol`](Otlp::with_protocol) | `OTEL_EXPORTER_OTLP_[…_]PROTOCOL` (`grpc`, `http/protobuf`) | `grpc` |
/// | headers | [`with_header`](Otlp::with_header) | `OTEL_EXPORTER_OTLP_[…_]HEADERS` | none |
/// | timeout | [`with_timeout`](Otlp::with_timeout) | `OTEL_EXPORTER_OTLP_[…_]TIMEOUT` (ms) | 10 s |
/// | compression | [`with_compression`](Otlp::with_compression) | `OTEL_EXPORTER_OTLP_[…_]COMPRESSION` | none |
/// | sampler | [`with_sampler`](Otlp::with_sampler) | `OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG` | `parentbased_always_on` |
/// | queue | [`with_max_queue_size`](Otlp::with_max_queue_size) | `OTEL_BSP_MAX_QUEUE_SIZE`, `OTEL_BLRP_MAX_QUEUE_SIZE` | 2048 |
/// | batch delay | — | `OTEL_BSP_SCHEDULE_DELAY`, `OTEL_BLRP_SCHEDULE_DELAY` (ms) | 500 ms |
/// | exporters | — | `OTEL_TRACES_EXPORTER`, `OTEL_METRICS_EXPORTER` (`otlp`, `none`) | `otlp` |
/// | logs | [`with_logs`](Otlp::with_logs) | `OTEL_LOGS_EXPORTER` (`otlp`, `none`) | on |
/// | span events | [`with_span_events`](Otlp::with_span_events) | — | `WARN` and up when logs are exported, all otherwise |
/// | metrics interval | [`with_metrics_interval`](Otlp::with_metrics_interval) | `OTEL_METRIC_EXPORT_INTERVAL` (ms) | 60 s |
/// | service | [`with_service_name`](Otlp::with_service_name) | `OTEL_SERVICE_NAME`, `service.name` in `OTEL_RESOURCE_ATTRIBUTES`, `STRATA_SERVICE` | executable name |
/// | resource | [`with_service_version`](Otlp::with_service_version), [`with_environment`](Otlp::with_environment) | `OTEL_RESOURCE_ATTRIBUTES`, `STRATA_VERSION`, `STRATA_ENV` | — |
/// | redaction | [`with_redaction`](Otlp::with_redaction) | — | none |
///
/// Endpoints are `http://` URLs; `https://` is refused at start (no TLS is built in yet).
/// `OTEL_BSP_MAX_EXPORT_BATCH_SIZE` and `OTEL_BSP_EXPORT_TIMEOUT` are not read (batches are
/// at most 512; each export is bounded by the timeout above).
#[derive(Clone, Default)]
pub struct Otlp {
    enabled: Option<bool>,
    endpoint: Option<String>,
    file: Option<(PathBuf, u64)>,
    queue: Option<usize>,
    protocol: Option<Protocol>,
    service_name: Option<String>,
    service_version: Option<String>,
    environment: Option<String>,
    timeout: Option<Duration>,
    headers: Vec<(String, String)>,
    gzip: Option<bool>,
    sampler: Option<Sampler>,
    logs: Option<bool>,
    metrics_interval: Option<Duration>,
    redaction: Option<Arc<strata_core::Redaction>>,
    span_events: Option<tracing_core::LevelFilter>,
    tracing_opentelemetry: bool,
}

impl Otlp {
    /// Settings from nothing: [`Otlp::start`] reads the environment for what code did not set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Turns export on or off. Off, [`Otlp::start`] starts nothing, the layer does nothing and
    /// log lines carry no trace IDs. Default: off when `OTEL_SDK_DISABLED=true`.
    #[must_use]
    pub fn with_enabled(mut self, enabled: bool) -> Self {
        self.enabled = Some(enabled);
        self
    }

    /// The collector's endpoint, for every signal. Over gRPC, used as it is
    /// (`http://collector:4317`); over HTTP, the signal's path (`/v1/traces`, `/v1/logs`,
    /// `/v1/metrics`) replaces or completes the path. Default:
    /// `OTEL_EXPORTER_OTLP_<SIGNAL>_ENDPOINT` (as it is), then `OTEL_EXPORTER_OTLP_ENDPOINT`,
    /// then no endpoint: a local file ([`Otlp::with_file`]).
    #[must_use]
    pub fn with_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = Some(endpoint.into());
        self
    }

    /// Appends spans, log records and metrics to a local file as OTLP/JSON lines instead of
    /// sending them, keeping at most about twice `max_bytes` (the file and one previous). This
    /// is also what happens when no endpoint is set in code or the environment:
    /// `STRATA_TELEMETRY_FILE`, or `.strata/telemetry.jsonl`, 50 MB.
    #[must_use]
    pub fn with_file(mut self, path: impl Into<PathBuf>, max_bytes: u64) -> Self {
        self.file = Some((path.into(), max_bytes));
        self
    }

    /// The most finished spans (and, separately, log records) waiting for export; more are
    /// dropped (counted, and reported in the logs at most once a second). Default:
    /// `OTEL_BSP_MAX_QUEUE_SIZE` (spans), `OTEL_BLRP_MAX_QUEUE_SIZE` (log records), then 2048.
    #[must_use]
    pub fn with_max_queue_size(mut self, items: usize) -> Self {
        self.queue = Some(items.max(1));
        self
    }

    /// The protocol. Default: `OTEL_EXPORTER_OTLP_<SIGNAL>_PROTOCOL`, then
    /// `OTEL_EXPORTER_OTLP_PROTOCOL` (`grpc`, `http/protobuf`), then gRPC.
    #[must_use]
    pub fn with_protocol(mut self, protocol: Protocol) -> Self {
        self.protocol = Some(protocol);
        self
    }

    /// A header sent with every export (an API key, a tenant). Added to
    /// `OTEL_EXPORTER_OTLP_HEADERS` and `OTEL_EXPORTER_OTLP_<SIGNAL>_HEADERS`, replacing a
    /// header of the same name there. A name or value that is not valid in HTTP (a CR or LF
    /// that would smuggle another header) makes [`Otlp::start`] fail.
    #[must_use]
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// How long one export may take. Default: `OTEL_EXPORTER_OTLP_[<SIGNAL>_]TIMEOUT`
    /// (milliseconds), then 10 s.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Compresses export bodies. Default: `OTEL_EXPORTER_OTLP_[<SIGNAL>_]COMPRESSION` (`gzip`,
    /// `none`), then none. One exception to "code wins", for metrics only:
    /// `Compression::None` in code does not turn off a `gzip` from the environment there
    /// (opentelemetry-otlp, which exports metrics, reads that variable itself and has no way
    /// to say "none").
    #[must_use]
    pub fn with_compression(mut self, compression: Compression) -> Self {
        self.gzip = Some(compression == Compression::Gzip);
        self
    }

    /// Which traces are recorded and exported. Default: `OTEL_TRACES_SAMPLER` (with
    /// `OTEL_TRACES_SAMPLER_ARG` for the ratio samplers), then parent-based always-on.
    #[must_use]
    pub fn with_sampler(mut self, sampler: Sampler) -> Self {
        self.sampler = Some(sampler);
        self
    }

    /// Sends log events as OpenTelemetry log records, each with the trace context of the span
    /// it was emitted in. Default: `OTEL_LOGS_EXPORTER` (`otlp` or `none`), then on.
    #[must_use]
    pub fn with_logs(mut self, logs: bool) -> Self {
        self.logs = Some(logs);
        self
    }

    /// Which tracing events inside a span are also recorded as span events (the "logs" of a
    /// span in Jaeger): those at this level or more severe. Default: `WARN` when log records
    /// are exported (every event reaches the backend as a log record carrying its span's trace
    /// context already; recording INFO events again as span events doubled the cost of a
    /// request's telemetry for a copy), every level when they are not. ERROR events are always
    /// recorded: one marks its span failed, whatever this says (`OFF` keeps only those).
    #[must_use]
    pub fn with_span_events(mut self, level: tracing_core::LevelFilter) -> Self {
        self.span_events = Some(level);
        self
    }

    /// Records spans through tracing-opentelemetry's layer instead of strata's recorder, for
    /// code that uses `tracing_opentelemetry::OpenTelemetrySpanExt` or reads the current span
    /// from `opentelemetry::Context::current()` (which strata's recorder does not set: it
    /// makes only an incoming request's baggage current; [`SpanExt::context`] gives a span's
    /// context). Everything else is the same — the export, the IDs in log lines and log
    /// records, [`SpanExt`], the span events kept — at a cost: on the HTTP overhead benchmark
    /// about 3 µs more CPU per request (22.4 against 19.3 µs with everything on, 7.8 bare:
    /// docs/performance.md).
    /// Default: off.
    #[must_use]
    pub fn with_tracing_opentelemetry(mut self, on: bool) -> Self {
        self.tracing_opentelemetry = on;
        self
    }

    /// How often metrics are exported. Default: `OTEL_METRIC_EXPORT_INTERVAL`
    /// (milliseconds), then 60 s.
    #[must_use]
    pub fn with_metrics_interval(mut self, interval: Duration) -> Self {
        self.metrics_interval = Some(interval);
        self
    }

    /// Masks secrets in every exported span and log record (see [`strata_core::redact`]):
    /// attributes whose key is a sensitive name become `"[REDACTED]"` whatever their type
    /// (span, span event and link attributes; log record attributes, and keys of map values);
    /// every other string — attribute values and string arrays, span names, span event names
    /// (a tracing event's message), the status description, log bodies — goes through
    /// [`Redaction::redact`](strata_core::Redaction::redact). Done on the export thread, so
    /// it costs the application's threads nothing; the local file gets the same masked data.
    /// Metrics are not masked (their attributes are bounded labels). Default: none.
    #[must_use]
    pub fn with_redaction(mut self, redaction: Option<Arc<strata_core::Redaction>>) -> Self {
        self.redaction = redaction;
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

    /// Starts the exporters (on threads, and for gRPC a runtime, of their own: they work from
    /// any thread, inside or outside an async runtime). Every setting is checked before
    /// anything starts.
    ///
    /// # Errors
    ///
    /// [`OtlpError::Invalid`] naming a bad setting; [`OtlpError::Exporter`] or
    /// [`OtlpError::Runtime`] when an exporter cannot be built.
    pub fn start(self) -> Result<OtlpGuard, OtlpError> {
        let Some(mut started) = self.prepare()? else {
            return Ok(OtlpGuard::disabled());
        };
        let [traces_on, logs_on, metrics_on] = started.on;
        let local = self.file.is_some()
            || SIGNALS
                .iter()
                .all(|s| config::signal_endpoint(self.endpoint.as_deref(), *s, false).is_none());
        if local {
            let (path, max) = self.file.clone().unwrap_or_else(|| {
                (
                    env("STRATA_TELEMETRY_FILE").map_or_else(
                        || PathBuf::from(".strata").join("telemetry.jsonl"),
                        PathBuf::from,
                    ),
                    50_000_000,
                )
            });
            let file = file::FileExporter::new(path, max, &started.resource);
            // File writes need no runtime.
            let local = |on: bool| on.then(|| (file.clone(), batch::Executor(None)));
            let metrics = metrics_on.then(|| file.clone());
            return started.finish(local(traces_on), local(logs_on), metrics);
        }
        // Every signal's settings, checked before a thread or runtime exists.
        let plan = |signal: Signal, on: bool| -> Result<Option<Plan>, OtlpError> {
            if !on {
                return Ok(None);
            }
            Plan::new(&self, signal)
        };
        let plans = [
            plan(Signal::Traces, traces_on)?,
            plan(Signal::Logs, logs_on)?,
            plan(Signal::Metrics, metrics_on)?,
        ];
        // The gRPC exporters' channels live on this runtime, so export works from the export
        // threads whatever runtime (if any) the application runs.
        let runtime = plans
            .iter()
            .flatten()
            .any(|p| p.protocol == Protocol::Grpc)
            .then(exporter_runtime)
            .transpose()?;
        let handle = runtime.as_ref().map(|rt| rt.handle().clone());
        let built = {
            let _enter = runtime.as_ref().map(tokio::runtime::Runtime::enter);
            let counters = [
                Arc::clone(&started.spans.counters),
                Arc::clone(&started.log_records.counters),
            ];
            build_exporters(plans, handle, counters)
        };
        match built {
            Ok((traces, logs, metrics)) => {
                started.runtime = runtime;
                started.finish(traces, logs, metrics)
            }
            Err(e) => {
                // Never dropped in the caller's async context, where that would panic.
                if let Some(rt) = runtime {
                    rt.shutdown_background();
                }
                Err(e)
            }
        }
    }

    /// Starts with `exporter` for spans instead of the OTLP one (a custom exporter; benchmarks
    /// use a no-op one), on the same batch processor; no logs or metrics are exported.
    ///
    /// # Errors
    ///
    /// [`OtlpError::Invalid`] naming a bad setting; [`OtlpError::Runtime`] when the
    /// exporter's runtime or thread cannot start.
    pub fn start_with_exporter<E: SpanExporter + 'static>(
        self,
        exporter: E,
    ) -> Result<OtlpGuard, OtlpError> {
        let Some(mut started) = self.prepare()? else {
            return Ok(OtlpGuard::disabled());
        };
        let runtime = exporter_runtime()?;
        let executor = batch::Executor(Some(runtime.handle().clone()));
        started.runtime = Some(runtime);
        started.finish(
            Some((exporter, executor)),
            None::<(file::FileExporter, batch::Executor)>,
            None::<file::FileExporter>,
        )
    }

    /// Reads what every exporter shares; `None` when export is off.
    fn prepare(&self) -> Result<Option<Started>, OtlpError> {
        let enabled = match self.enabled {
            Some(e) => e,
            None => !config::env_bool("OTEL_SDK_DISABLED")?,
        };
        if !enabled {
            return Ok(None);
        }
        let settings = |queue: &str, delay: &str| -> Result<batch::Settings, OtlpError> {
            Ok(batch::Settings {
                capacity: match self.queue {
                    Some(q) => q,
                    None => config::env_count(queue)?.unwrap_or(2048),
                },
                delay: config::env_millis(delay)?.unwrap_or(Duration::from_millis(500)),
                counters: Arc::default(),
                redaction: self.redaction.clone(),
            })
        };
        Ok(Some(Started {
            spans: settings("OTEL_BSP_MAX_QUEUE_SIZE", "OTEL_BSP_SCHEDULE_DELAY")?,
            log_records: settings("OTEL_BLRP_MAX_QUEUE_SIZE", "OTEL_BLRP_SCHEDULE_DELAY")?,
            sampler: config::sampler(self.sampler.clone())?,
            on: [
                config::exporter_on(Signal::Traces)?,
                match self.logs {
                    Some(l) => l,
                    None => config::exporter_on(Signal::Logs)?,
                },
                config::exporter_on(Signal::Metrics)?,
            ],
            metrics_interval: match self.metrics_interval {
                Some(i) => i,
                None => config::env_millis("OTEL_METRIC_EXPORT_INTERVAL")?
                    .unwrap_or(Duration::from_secs(60)),
            },
            resource: self.resource(),
            runtime: None,
            span_events: self.span_events,
            tracing_opentelemetry: self.tracing_opentelemetry,
        }))
    }

    /// The resource: the SDK's detectors (`OTEL_RESOURCE_ATTRIBUTES`, `OTEL_SERVICE_NAME`),
    /// then what code set; the executable's name only when nothing named the service, and
    /// `host.name`/`process.pid` only where the environment did not set them.
    fn resource(&self) -> Resource {
        let detected = Resource::builder().build();
        let has = |key: &'static str| {
            detected
                .get(&opentelemetry::Key::from_static_str(key))
                .is_some()
        };
        let named = detected
            .get(&opentelemetry::Key::from_static_str("service.name"))
            .is_some_and(|v| !v.as_str().starts_with("unknown_service"));
        let mut attrs = Vec::new();
        if !has("process.pid") {
            attrs.push(KeyValue::new("process.pid", i64::from(std::process::id())));
        }
        if !has("host.name")
            && let Some(host) = strata_core::host_name()
        {
            attrs.push(KeyValue::new("host.name", host));
        }
        let version = self
            .service_version
            .clone()
            .or_else(|| env("STRATA_VERSION").filter(|_| !has("service.version")));
        if let Some(v) = version {
            attrs.push(KeyValue::new("service.version", v));
        }
        let environment = self
            .environment
            .clone()
            .or_else(|| env("STRATA_ENV").filter(|_| !has("deployment.environment.name")));
        if let Some(e) = environment {
            attrs.push(KeyValue::new("deployment.environment.name", e));
        }
        let service = self
            .service_name
            .clone()
            .or_else(|| (!named).then(strata_core::default_service_name));
        let mut builder = Resource::builder().with_attributes(attrs);
        if let Some(service) = service {
            builder = builder.with_service_name(service);
        }
        builder.build()
    }
}

impl std::fmt::Debug for Otlp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Header values carry credentials: names only.
        let headers: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("Otlp")
            .field("enabled", &self.enabled)
            .field(
                "endpoint",
                &self.endpoint.as_deref().map(config::without_userinfo),
            )
            .field("file", &self.file)
            .field("protocol", &self.protocol)
            .field("headers", &headers)
            .field("service_name", &self.service_name)
            .field("redaction", &self.redaction.is_some())
            .finish_non_exhaustive()
    }
}

const SIGNALS: [Signal; 3] = [Signal::Traces, Signal::Logs, Signal::Metrics];

/// The exporters of [`Otlp::start`], each with where its futures run.
type Exporters = (
    Option<(transport::Exporter, batch::Executor)>,
    Option<(transport::Exporter, batch::Executor)>,
    Option<opentelemetry_otlp::MetricExporter>,
);

/// Builds the exporters of `plans` (inside the gRPC runtime's context, when there is one):
/// strata's own for spans and log records ([`transport`]), opentelemetry-otlp's for metrics.
/// The HTTP ones share one blocking client.
fn build_exporters(
    plans: [Option<Plan>; 3],
    handle: Option<tokio::runtime::Handle>,
    [span_counters, log_counters]: [Arc<batch::Counters>; 2],
) -> Result<Exporters, OtlpError> {
    let client = if plans
        .iter()
        .flatten()
        .any(|p| p.protocol == Protocol::HttpProtobuf)
    {
        Some(http_client::blocking_client()?)
    } else {
        None
    };
    let [traces, logs, metrics] = plans;
    // gRPC futures run on the runtime; HTTP ones on the export thread, which blocks.
    let executor = |p: &Plan| {
        batch::Executor(
            (p.protocol == Protocol::Grpc)
                .then(|| handle.clone())
                .flatten(),
        )
    };
    let sender = |p: Plan, method: &'static str| -> Result<transport::Sender, OtlpError> {
        let s = p.settings;
        match p.protocol {
            Protocol::Grpc => {
                transport::Sender::grpc(&s.endpoint, method, s.timeout, s.gzip, &s.headers)
            }
            Protocol::HttpProtobuf => Ok(transport::Sender::http(
                client
                    .clone()
                    .ok_or_else(|| OtlpError::Exporter("no HTTP client".to_owned()))?,
                &s.endpoint,
                s.timeout,
                s.gzip,
                s.headers,
            )),
        }
    };
    let traces = traces
        .map(|p| {
            let x = executor(&p);
            sender(p, transport::TRACES_METHOD)
                .map(|s| (transport::Exporter::new(s, span_counters), x))
        })
        .transpose()?;
    let logs = logs
        .map(|p| {
            let x = executor(&p);
            sender(p, transport::LOGS_METHOD)
                .map(|s| (transport::Exporter::new(s, log_counters), x))
        })
        .transpose()?;
    let metrics = match metrics {
        Some(plan) => {
            let b = opentelemetry_otlp::MetricExporter::builder();
            let built = match plan.protocol {
                Protocol::Grpc => plan.settings.grpc(b.with_tonic())?.build(),
                Protocol::HttpProtobuf => {
                    plan.settings.http(b.with_http(), client.clone())?.build()
                }
            };
            Some(built.map_err(|e| OtlpError::Exporter(e.to_string()))?)
        }
        None => None,
    };
    Ok((traces, logs, metrics))
}

/// What [`Otlp::prepare`] resolved, before the exporters exist.
struct Started {
    resource: Resource,
    spans: batch::Settings,
    log_records: batch::Settings,
    sampler: Sampler,
    /// Traces, logs, metrics: on or off.
    on: [bool; 3],
    metrics_interval: Duration,
    runtime: Option<tokio::runtime::Runtime>,
    /// The events recorded as span events (when set in code).
    span_events: Option<tracing_core::LevelFilter>,
    /// Spans through tracing-opentelemetry ([`Otlp::with_tracing_opentelemetry`]).
    tracing_opentelemetry: bool,
}

impl Started {
    fn finish<T, L, M>(
        self,
        traces: Option<(T, batch::Executor)>,
        logs: Option<(L, batch::Executor)>,
        metrics: Option<M>,
    ) -> Result<OtlpGuard, OtlpError>
    where
        T: SpanExporter + 'static,
        L: opentelemetry_sdk::logs::LogExporter + 'static,
        M: opentelemetry_sdk::metrics::exporter::PushMetricExporter,
    {
        let (span_counters, log_counters) = (
            Arc::clone(&self.spans.counters),
            Arc::clone(&self.log_records.counters),
        );
        let mut waiters = Vec::new();
        let mut sdk = None;
        let tracer = match traces {
            Some((mut exporter, executor)) => {
                exporter.set_resource(&self.resource);
                let batch = batch::spans(exporter, self.spans, executor)?;
                waiters.push(batch.waiter());
                if self.tracing_opentelemetry {
                    sdk = Some(
                        SdkTracerProvider::builder()
                            .with_span_processor(compat::SdkSpans(batch.clone()))
                            .with_sampler(self.sampler.clone())
                            .with_resource(self.resource.clone())
                            .build(),
                    );
                }
                Some(Arc::new(recorder::Tracer {
                    batch,
                    sampler: self.sampler,
                }))
            }
            None => None,
        };
        let logger = match logs {
            Some((mut exporter, executor)) => {
                exporter.set_resource(&self.resource);
                let batch = batch::logs(exporter, self.log_records, executor)?;
                waiters.push(batch.waiter());
                Some(batch)
            }
            None => None,
        };
        let meter = metrics.map(|exporter| {
            SdkMeterProvider::builder()
                .with_reader(
                    PeriodicReader::builder(exporter)
                        .with_interval(self.metrics_interval)
                        .build(),
                )
                .with_resource(self.resource)
                .build()
        });
        let span_events = self.span_events.unwrap_or(if logger.is_some() {
            tracing_core::LevelFilter::WARN
        } else {
            tracing_core::LevelFilter::TRACE
        });
        Ok(OtlpGuard {
            span_events,
            tracer,
            sdk,
            logger,
            meter,
            no_meter: SdkMeterProvider::builder().build(),
            waiters,
            span_counters,
            log_counters,
            runtime: self.runtime,
        })
    }
}

/// One signal's exporter settings, resolved and checked.
struct Plan {
    protocol: Protocol,
    settings: SignalSettings,
}

impl Plan {
    /// `None` when the signal has no endpoint (another has).
    fn new(otlp: &Otlp, signal: Signal) -> Result<Option<Plan>, OtlpError> {
        let protocol = match otlp.protocol {
            Some(p) => p,
            None => match config::signal_env(signal, "PROTOCOL") {
                None => Protocol::Grpc,
                Some((_, v)) if v.trim() == "grpc" => Protocol::Grpc,
                Some((_, v)) if v.trim() == "http/protobuf" => Protocol::HttpProtobuf,
                Some((key, v)) => {
                    return Err(OtlpError::Invalid {
                        setting: key,
                        value: v,
                        expected: "grpc or http/protobuf",
                    });
                }
            },
        };
        let http = protocol == Protocol::HttpProtobuf;
        let Some((setting, endpoint)) =
            config::signal_endpoint(otlp.endpoint.as_deref(), signal, http)
        else {
            return Ok(None);
        };
        let expected = if endpoint.starts_with("https://") {
            "an http:// URL (https:// needs TLS, which strata-otlp does not build with yet)"
        } else if endpoint.starts_with("http://") {
            ""
        } else {
            "an http:// URL"
        };
        if !expected.is_empty() {
            return Err(OtlpError::Invalid {
                setting,
                value: config::without_userinfo(&endpoint),
                expected,
            });
        }
        Ok(Some(Plan {
            protocol,
            settings: SignalSettings {
                endpoint,
                timeout: config::timeout(otlp.timeout, signal)?,
                gzip: config::gzip(otlp.gzip, signal)?,
                headers: config::headers(&otlp.headers, signal)?,
            },
        }))
    }
}

/// One signal's resolved transport settings.
struct SignalSettings {
    endpoint: String,
    timeout: Duration,
    gzip: bool,
    headers: HeaderMap,
}

impl SignalSettings {
    fn grpc<B: WithExportConfig + WithTonicConfig>(self, builder: B) -> Result<B, OtlpError> {
        let mut builder = builder
            .with_endpoint(self.endpoint)
            .with_timeout(self.timeout);
        if self.gzip {
            builder = builder.with_compression(opentelemetry_otlp::Compression::Gzip);
        }
        if self.headers.is_empty() {
            return Ok(builder);
        }
        // As an interceptor, which runs after the exporter adds the environment's headers:
        // code wins over the environment here too.
        let metadata = Arc::new(transport::grpc_metadata(&self.headers)?);
        Ok(
            builder.with_interceptor(move |mut req: tonic::Request<()>| {
                for (k, v) in metadata.iter() {
                    req.metadata_mut().insert(k.clone(), v.clone());
                }
                Ok(req)
            }),
        )
    }

    fn http<B: WithExportConfig + WithHttpConfig>(
        self,
        builder: B,
        client: Option<reqwest::blocking::Client>,
    ) -> Result<B, OtlpError> {
        let mut builder = builder
            .with_endpoint(self.endpoint)
            .with_timeout(self.timeout);
        if self.gzip {
            builder = builder.with_compression(opentelemetry_otlp::Compression::Gzip);
        }
        let inner = client.ok_or_else(|| OtlpError::Exporter("no HTTP client".to_owned()))?;
        Ok(builder.with_http_client(http_client::HeaderClient {
            inner,
            headers: self.headers,
            timeout: self.timeout,
        }))
    }
}

mod http_client {
    //! The blocking HTTP client of the OTLP/HTTP exporters, adding the configured headers last
    //! so code wins over the environment (which the exporter applies itself).

    use std::time::Duration;

    use http::HeaderMap;
    use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};

    /// The client every HTTP exporter shares, built (with its own runtime) off any async
    /// runtime the caller runs.
    pub(crate) fn blocking_client() -> Result<reqwest::blocking::Client, crate::OtlpError> {
        std::thread::spawn(|| reqwest::blocking::Client::builder().build())
            .join()
            .map_err(|_| crate::OtlpError::Exporter("the HTTP client panicked".to_owned()))?
            .map_err(|e| crate::OtlpError::Exporter(e.to_string()))
    }

    #[derive(Debug)]
    pub(crate) struct HeaderClient {
        pub(crate) inner: reqwest::blocking::Client,
        pub(crate) headers: HeaderMap,
        pub(crate) timeout: Duration,
    }

    #[async_trait::async_trait]
    impl HttpClient for HeaderClient {
        async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
            let mut request = request.map(|b| b.to_vec());
            for (name, value) in &self.headers {
                request.headers_mut().insert(name.clone(), value.clone());
            }
            // The signal's timeout, per request: the client is shared.
            let mut request = reqwest::blocking::Request::try_from(request)?;
            *request.timeout_mut() = Some(self.timeout);
            let mut response = self.inner.execute(request)?;
            let status = response.status();
            let headers = std::mem::take(response.headers_mut());
            let mut body = Vec::new();
            std::io::Read::read_to_end(&mut std::io::Read::take(response, 4 << 20), &mut body)?;
            let mut out = Response::new(Bytes::from(body));
            *out.status_mut() = status;
            *out.headers_mut() = headers;
            Ok(out)
        }
    }
}

/// The runtime of the gRPC exporters. Telemetry is suppressed on its threads for their whole
/// life: the spans the network stack makes while exporting (h2, hyper, tonic) would otherwise
/// be exported in turn, a feedback loop. They do not reach the application's subscriber at
/// all (a thread-local `NoSubscriber`): its layers would spend as much on each of those spans
/// as on a request's.
fn exporter_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("strata-otlp")
        .on_thread_start(|| {
            strata_core::background_thread();
            std::mem::forget(opentelemetry::Context::enter_telemetry_suppressed_scope());
            std::mem::forget(tracing::subscriber::set_default(
                tracing::subscriber::NoSubscriber::default(),
            ));
        })
        .enable_all()
        .build()
}

/// Keeps the exporters running; dropping it flushes and shuts down, bounded by a timeout.
#[must_use = "dropping the guard shuts the exporters down; hold it until the end of main"]
pub struct OtlpGuard {
    tracer: Option<Arc<recorder::Tracer>>,
    /// The SDK's tracer provider, when spans go through tracing-opentelemetry.
    sdk: Option<SdkTracerProvider>,
    logger: Option<batch::Batch<opentelemetry_sdk::logs::SdkLogRecord>>,
    meter: Option<SdkMeterProvider>,
    /// Handed out when metrics are off: exports nothing.
    no_meter: SdkMeterProvider,
    /// Wait, until a deadline, for what the span and log batch processors hold.
    waiters: Vec<batch::Waiter>,
    span_counters: Arc<batch::Counters>,
    log_counters: Arc<batch::Counters>,
    runtime: Option<tokio::runtime::Runtime>,
    /// The events recorded as span events.
    span_events: tracing_core::LevelFilter,
}

impl std::fmt::Debug for OtlpGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtlpGuard")
            .field("traces", &self.tracer.is_some())
            .field("logs", &self.logger.is_some())
            .field("metrics", &self.meter.is_some())
            .finish_non_exhaustive()
    }
}

impl OtlpGuard {
    fn disabled() -> OtlpGuard {
        OtlpGuard {
            span_events: tracing_core::LevelFilter::OFF,
            tracer: None,
            sdk: None,
            logger: None,
            meter: None,
            no_meter: SdkMeterProvider::builder().build(),
            waiters: Vec::new(),
            span_counters: Arc::default(),
            log_counters: Arc::default(),
            runtime: None,
        }
    }

    /// The layer to add to the subscriber: strata's span recorder (each span's OpenTelemetry
    /// IDs in strata's span store, the span exported when it closes) and the log bridge
    /// (events as log records carrying their span's trace context). The network stack's and
    /// telemetry crates' own spans and events ([`strata_core::TELEMETRY_TARGETS`]) are never
    /// exported, so exporting never exports itself (checked off the hot path: spans on the
    /// export thread, events before a record is built; a per-layer filter costs every
    /// application span ~470 instructions). Does nothing when export is off. It keeps strata's
    /// span store (as every strata layer does), so it works alone too.
    ///
    /// The same as [`OtlpGuard::traces_layer`] then [`OtlpGuard::logs_layer`]; use those two to
    /// filter log records like log lines (production: WARN and up) while every span is traced.
    pub fn layer<S>(&self) -> impl Layer<S> + Send + Sync + 'static + use<S>
    where
        S: Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
    {
        Layer::<S>::and_then(self.traces_layer(), self.logs_layer())
    }

    /// Traces only: strata's span recorder (see [`OtlpGuard::layer`]). A span gets its IDs
    /// at its first entry (the parent's trace, a remote parent set with
    /// [`SpanExt::set_parent`], or a new trace, as the sampler decides) and is exported when
    /// it closes, with its fields as attributes (`otel.name`, `otel.kind`, `otel.status_code`
    /// and `otel.status_description` set the name, kind and status), its callsite as
    /// `code.file.path`, `code.module.name` and `code.line.number`, the events
    /// [`Otlp::with_span_events`] keeps, and `follows_from` spans as links. Everything but the
    /// IDs and a copy of the fields happens on the export thread.
    pub fn traces_layer<S>(&self) -> impl Layer<S> + Send + Sync + 'static + use<S>
    where
        S: Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
    {
        let sdk = self.sdk.as_ref().map(|provider| compat::SpanEvents {
            inner: tracing_opentelemetry::layer().with_tracer(provider.tracer("strata")),
            max: self.span_events,
        });
        let ids = sdk
            .is_some()
            .then(|| compat::TraceIds(strata_core::StoreKeeper::new()));
        let recorder = self
            .tracer
            .as_ref()
            .filter(|_| self.sdk.is_none())
            .map(|t| recorder::Recorder::<S>::new(Arc::clone(t), self.span_events));
        Layer::<S>::and_then(recorder, Layer::<S>::and_then(sdk, ids))
    }

    /// Log records only: events as OpenTelemetry log records with their span's trace context
    /// (see [`OtlpGuard::layer`]); give it the log lines' per-layer filter.
    pub fn logs_layer<S>(&self) -> impl Layer<S> + Send + Sync + 'static + use<S>
    where
        S: Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
    {
        self.logger.clone().map(bridge::LogBridge)
    }

    /// The meter provider exporting to the same place as traces, every
    /// [`Otlp::with_metrics_interval`]; strata-metrics' instruments use it. With export off or
    /// `OTEL_METRICS_EXPORTER=none`, a provider that exports nothing.
    pub fn meter_provider(&self) -> &SdkMeterProvider {
        self.meter.as_ref().unwrap_or(&self.no_meter)
    }

    /// The drop counters, as a handle that outlives the borrow (for a metrics registry to read
    /// at each scrape).
    pub fn drop_counts(&self) -> DropCounts {
        DropCounts {
            spans: Arc::clone(&self.span_counters),
            logs: Arc::clone(&self.log_counters),
        }
    }

    /// Spans exported so far.
    pub fn exported_spans(&self) -> u64 {
        self.span_counters.exported.load(Ordering::Relaxed)
    }

    /// Spans dropped because the queue (`OTEL_BSP_MAX_QUEUE_SIZE`, default 2048) was full.
    pub fn dropped_spans(&self) -> u64 {
        self.span_counters.dropped.load(Ordering::Relaxed)
    }

    /// Spans whose export failed.
    pub fn failed_spans(&self) -> u64 {
        self.span_counters.failed.load(Ordering::Relaxed)
    }

    /// Spans the collector answered it rejected (an OTLP partial success; counted among the
    /// exported ones, which were sent, and reported in the logs with the collector's reason).
    pub fn rejected_spans(&self) -> u64 {
        self.span_counters.rejected.load(Ordering::Relaxed)
    }

    /// Log records exported so far.
    pub fn exported_logs(&self) -> u64 {
        self.log_counters.exported.load(Ordering::Relaxed)
    }

    /// Log records dropped because the queue (`OTEL_BLRP_MAX_QUEUE_SIZE`, default 2048) was
    /// full.
    pub fn dropped_logs(&self) -> u64 {
        self.log_counters.dropped.load(Ordering::Relaxed)
    }

    /// Log records whose export failed.
    pub fn failed_logs(&self) -> u64 {
        self.log_counters.failed.load(Ordering::Relaxed)
    }

    /// Log records the collector answered it rejected (an OTLP partial success).
    pub fn rejected_logs(&self) -> u64 {
        self.log_counters.rejected.load(Ordering::Relaxed)
    }

    /// Exports what is buffered (spans, log records, metrics), waiting at most about
    /// `timeout`; `false` when something was not exported in time. It never needs the
    /// caller's runtime, so it cannot deadlock a current-thread runtime.
    pub fn flush(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut ok = true;
        for wait in &self.waiters {
            ok &= wait(deadline);
        }
        if let Some(meter) = self.meter.clone() {
            let left = deadline.saturating_duration_since(Instant::now());
            ok &= run_bounded(left, move || meter.force_flush().is_ok());
        }
        ok
    }
}

/// What [`OtlpGuard::drop_counts`] returns: the spans and log records dropped or failed so far.
#[derive(Debug, Clone)]
pub struct DropCounts {
    spans: Arc<batch::Counters>,
    logs: Arc<batch::Counters>,
}

impl DropCounts {
    /// Spans lost: dropped (queue full), failed to export, or rejected by the collector.
    pub fn spans(&self) -> u64 {
        lost(&self.spans)
    }

    /// Log records lost: dropped (queue full), failed to export, or rejected by the collector.
    pub fn logs(&self) -> u64 {
        lost(&self.logs)
    }
}

fn lost(c: &batch::Counters) -> u64 {
    c.dropped.load(Ordering::Relaxed)
        + c.failed.load(Ordering::Relaxed)
        + c.rejected.load(Ordering::Relaxed)
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
        // One deadline for everything. The providers move to the shutdown thread and are
        // dropped there: an HTTP exporter's blocking client must not be dropped inside the
        // caller's async runtime.
        let deadline = Instant::now() + Duration::from_secs(5);
        let left = move || deadline.saturating_duration_since(Instant::now());
        let (tracer, logger, meter) = (self.tracer.take(), self.logger.take(), self.meter.take());
        let sdk = self.sdk.take();
        if tracer.is_some() || logger.is_some() || meter.is_some() {
            run_bounded(left() + Duration::from_millis(100), move || {
                // Each one shut down, whatever the others did. The SDK's provider first: it
                // hands over its last spans.
                drop(sdk);
                let traces = tracer.is_none_or(|t| t.batch.shutdown(left()).is_ok());
                let logs = logger.is_none_or(|l| l.shutdown(left()).is_ok());
                let metrics = meter.is_none_or(|m| m.shutdown_with_timeout(left()).is_ok());
                traces & logs & metrics
            });
        }
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}
