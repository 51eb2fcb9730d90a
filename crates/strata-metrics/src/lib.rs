//! Metrics from spans, for services instrumented with `tracing`: request counts and latency
//! histograms of every HTTP request and job (RED metrics) without a line of code in the
//! handlers, counts of log events by level and of errors by class, event-loop lag and the
//! process's CPU, memory, file descriptors and threads — exposed in the Prometheus text
//! (OpenMetrics) format on a listener of its own or as a tower service to mount.
//!
//! ```no_run
//! use tracing_subscriber::prelude::*;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
//! let metrics = strata_metrics::Metrics::new();
//! tracing_subscriber::registry()
//!     .with(strata_core::StoreLayer::default())
//!     .with(metrics.layer())
//!     .init();
//! let _probe = metrics.spawn_lag_probe(std::time::Duration::from_millis(100));
//! let server = metrics.serve("127.0.0.1:9464".parse().unwrap()).await?;
//! // … serve requests behind strata_request_id::RequestIdLayer; Prometheus scrapes
//! // http://127.0.0.1:9464/metrics
//! # drop(server); Ok(()) }
//! ```
//!
//! What the layer derives from spans (label values are bounded: routes are templates such as
//! `/users/{id}`, never raw paths, at most [`MAX_ROUTES`]; at most [`MAX_JOBS`] job names and
//! [`MAX_ERROR_CLASSES`] error classes; worker and cache names are the application's, from a
//! small fixed set):
//!
//! | metric | from |
//! |---|---|
//! | `http_server_requests_total{method,route,status_class}` | strata-request-id's `request` spans |
//! | `http_server_request_duration_seconds{method,route,status_class}` (histogram) | the same |
//! | `jobs_total{job_name}`, `job_duration_seconds{job_name}` (histogram) | strata-request-id's `job` spans |
//! | `span_duration_seconds{span}` (histogram) | spans named with [`Metrics::with_span_histogram`] |
//! | `log_events_total{level}` | every event, by strata severity (CRITICAL included) |
//! | `captured_errors_total{class}` | events carrying `error.class` (strata-core's `log_error!`) |
//! | `db_queries_per_request` (histogram) | child spans with a `db.system` field, per request span (from the first such span on) |
//! | `event_loop_lag_seconds` (histogram), `event_loop_lag_max_seconds` | [`Metrics::spawn_lag_probe`] |
//! | `tokio_workers`, `tokio_alive_tasks`, `tokio_global_queue_depth` | the probed runtime (stable tokio metrics), at scrape time |
//! | `process_cpu_seconds_total`, `process_resident_memory_bytes`, `process_open_fds`, `process_threads`, `process_start_time_seconds` | `/proc`, at scrape time |
//! | `strata_telemetry_dropped_total{source}` | what strata's outputs lost — dropped by a full queue, or failed to be written or delivered — [`Metrics::register_dropped`] |
//!
//! Worker and cache helpers: [`Metrics::worker`], [`Metrics::cache`].

mod layer;
#[cfg(feature = "otel")]
mod otel;
mod process;
mod serve;

pub use layer::MetricsLayer;
pub use serve::{MetricsServer, MetricsService};

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Latency buckets (seconds) of the request, job and span histograms: fine around the usual
/// alert thresholds (a 400 ms p99 has a bucket edge of its own).
pub const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0,
];

/// The most distinct routes labelled; later ones are counted under `other`, so a bug that puts
/// raw paths in routes cannot blow up the series count.
pub const MAX_ROUTES: usize = 200;

/// The most distinct job names labelled; later ones are counted under `other`.
pub const MAX_JOBS: usize = 100;

/// The most distinct error classes labelled; later ones are counted under `other`.
pub const MAX_ERROR_CLASSES: usize = 50;

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS.iter().copied())
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    method: &'static str,
    route: String,
    status_class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabels {
    /// Not `job`: Prometheus's scrape sets that label (the service), and would rename ours.
    job_name: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SpanLabels {
    span: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LevelLabels {
    level: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClassLabels {
    class: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueLabels {
    queue: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CacheLabels {
    cache: String,
    result: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// FNV-1a for the route and job maps: their keys are short, trusted (route templates, bounded
/// by [`MAX_ROUTES`]) and hashed on every request, where SipHash's resistance to flooding buys
/// nothing.
#[derive(Default, Clone, Copy)]
pub(crate) struct Fnv;

impl std::hash::BuildHasher for Fnv {
    type Hasher = FnvHasher;
    fn build_hasher(&self) -> FnvHasher {
        FnvHasher(0xcbf2_9ce4_8422_2325)
    }
}

pub(crate) struct FnvHasher(u64);

impl std::hash::Hasher for FnvHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// What the layer needs on the request path: handles resolved once per label set, so a
/// request costs atomic adds and a histogram observation, no allocation.
pub(crate) struct Instruments {
    pub(crate) http_requests: Family<HttpLabels, Counter>,
    pub(crate) http_duration: HistogramFamily<HttpLabels>,
    /// Per route: the counter and histogram of each (method, status class).
    pub(crate) routes: layer::Capped<layer::RouteCells>,
    pub(crate) jobs: Family<JobLabels, Counter>,
    pub(crate) job_duration: HistogramFamily<JobLabels>,
    pub(crate) job_cells: layer::Capped<layer::Cell>,
    pub(crate) spans: RwLock<HashMap<&'static str, Histogram, Fnv>>,
    /// Whether any span histogram is configured (read without the lock on every close).
    pub(crate) has_spans: std::sync::atomic::AtomicBool,
    span_family: HistogramFamily<SpanLabels>,
    /// Error classes seen, capped at [`MAX_ERROR_CLASSES`].
    pub(crate) error_cells: layer::Capped<layer::ErrorCell>,
    /// By [`strata_core::Severity`], TRACE to CRITICAL.
    pub(crate) log_events: [Counter; 6],
    pub(crate) errors: Family<ClassLabels, Counter>,
    pub(crate) db_queries: Histogram,
    /// Whether a span with `db.system` was seen: until then requests skip `db_queries`.
    pub(crate) saw_db: std::sync::atomic::AtomicBool,
    /// The OpenTelemetry instruments recorded alongside, when a meter provider was given.
    #[cfg(feature = "otel")]
    pub(crate) otel: std::sync::OnceLock<otel::OtelInstruments>,
    pub(crate) lag: Histogram,
    pub(crate) lag_max: Gauge<f64, AtomicU64>,
}

/// The metrics of one process: build it once, add [`Metrics::layer`] to the subscriber, and
/// expose it ([`Metrics::serve`], [`Metrics::service`], [`Metrics::encode`]). Clones share
/// everything.
#[derive(Clone)]
pub struct Metrics {
    pub(crate) instruments: Arc<Instruments>,
    registry: Arc<Mutex<Registry>>,
    workers: Arc<WorkerFamilies>,
    dropped: Arc<Dropped>,
    runtime: Arc<RuntimeCollector>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// The drop counters of strata's queues, read at each scrape.
#[derive(Default)]
struct Dropped(RwLock<Vec<(String, DropCounter)>>);

type DropCounter = Arc<dyn Fn() -> u64 + Send + Sync>;

impl std::fmt::Debug for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dropped").finish_non_exhaustive()
    }
}

impl prometheus_client::collector::Collector for Dropped {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder<'_>,
    ) -> Result<(), std::fmt::Error> {
        use prometheus_client::encoding::EncodeMetric as _;
        // The callbacks run with no lock held: they may register, or read other metrics.
        let sources = self.0.read().unwrap_or_else(|e| e.into_inner()).clone();
        if sources.is_empty() {
            return Ok(());
        }
        let mut family = encoder.encode_descriptor(
            "strata_telemetry_dropped",
            "Telemetry (log lines, spans, log records, error events, alerts) a strata output lost: dropped by a full queue, or failed to be written or delivered",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        for (source, count) in sources.iter() {
            let labels = SourceLabels {
                source: source.clone(),
            };
            prometheus_client::metrics::counter::ConstCounter::new(count())
                .encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

/// The probed runtime's stable tokio metrics, read at each scrape.
#[derive(Debug, Default)]
struct RuntimeCollector(RwLock<Option<tokio::runtime::Handle>>);

impl prometheus_client::collector::Collector for RuntimeCollector {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder<'_>,
    ) -> Result<(), std::fmt::Error> {
        use prometheus_client::encoding::EncodeMetric as _;
        let Some(handle) = self.0.read().unwrap_or_else(|e| e.into_inner()).clone() else {
            return Ok(());
        };
        let m = handle.metrics();
        for (name, help, value) in [
            (
                "tokio_workers",
                "Worker threads of the runtime",
                m.num_workers(),
            ),
            (
                "tokio_alive_tasks",
                "Tasks alive in the runtime",
                m.num_alive_tasks(),
            ),
            (
                "tokio_global_queue_depth",
                "Tasks waiting in the runtime's global queue",
                m.global_queue_depth(),
            ),
        ] {
            let gauge = prometheus_client::metrics::gauge::ConstGauge::new(value as i64);
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
        Ok(())
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabels {
    source: String,
}

struct WorkerFamilies {
    depth: Family<QueueLabels, Gauge>,
    wait: HistogramFamily<QueueLabels>,
    processed: Family<QueueLabels, Counter>,
    failed: Family<QueueLabels, Counter>,
    retried: Family<QueueLabels, Counter>,
    dead_lettered: Family<QueueLabels, Counter>,
    cache: Family<CacheLabels, Counter>,
}

impl Metrics {
    /// The standard instruments, the process collector, no span histograms.
    pub fn new() -> Self {
        Self::build()
    }

    /// Also a `span_duration_seconds{span}` histogram for spans with these names (database
    /// calls, external requests…). Added in place: layers and clones made before see it too.
    #[must_use]
    pub fn with_span_histogram(self, names: &[&'static str]) -> Self {
        let i = &self.instruments;
        let mut spans = i.spans.write().unwrap_or_else(|e| e.into_inner());
        for name in names {
            let h = i
                .span_family
                .get_or_create(&SpanLabels { span: name })
                .clone();
            spans.insert(name, h);
        }
        i.has_spans
            .store(!spans.is_empty(), std::sync::atomic::Ordering::Relaxed);
        drop(spans);
        self
    }

    fn build() -> Self {
        let mut registry = Registry::default();
        let http_requests = Family::<HttpLabels, Counter>::default();
        registry.register(
            "http_server_requests",
            "HTTP requests served, by method, route template and status class",
            http_requests.clone(),
        );
        let http_duration: HistogramFamily<HttpLabels> =
            Family::new_with_constructor(latency_histogram);
        registry.register_with_unit(
            "http_server_request_duration",
            "Time to serve an HTTP request",
            prometheus_client::registry::Unit::Seconds,
            http_duration.clone(),
        );
        let jobs = Family::<JobLabels, Counter>::default();
        registry.register("jobs", "Jobs run, by job name", jobs.clone());
        let job_duration: HistogramFamily<JobLabels> =
            Family::new_with_constructor(latency_histogram);
        registry.register_with_unit(
            "job_duration",
            "Time to run a job",
            prometheus_client::registry::Unit::Seconds,
            job_duration.clone(),
        );
        let span_family: HistogramFamily<SpanLabels> =
            Family::new_with_constructor(latency_histogram);
        registry.register_with_unit(
            "span_duration",
            "Time spent in spans chosen for a histogram",
            prometheus_client::registry::Unit::Seconds,
            span_family.clone(),
        );
        let levels = Family::<LevelLabels, Counter>::default();
        let log_events = ["trace", "debug", "info", "warn", "error", "critical"]
            .map(|level| levels.get_or_create(&LevelLabels { level }).clone());
        registry.register("log_events", "Log events, by level", levels);
        let errors = Family::<ClassLabels, Counter>::default();
        registry.register(
            "captured_errors",
            "Errors logged with an error class (strata-core's log_error!), by class",
            errors.clone(),
        );
        let db_queries = Histogram::new([0.0, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 50.0, 100.0]);
        registry.register(
            "db_queries_per_request",
            "Database calls (spans with a db.system field) made while serving one request",
            db_queries.clone(),
        );
        let lag = Histogram::new([0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0]);
        registry.register_with_unit(
            "event_loop_lag",
            "How late the runtime ran a task that asked to wake on time",
            prometheus_client::registry::Unit::Seconds,
            lag.clone(),
        );
        let lag_max = Gauge::<f64, AtomicU64>::default();
        registry.register_with_unit(
            "event_loop_lag_max",
            "The largest event-loop lag of the last probe window",
            prometheus_client::registry::Unit::Seconds,
            lag_max.clone(),
        );
        registry.register_collector(Box::new(process::ProcessCollector::new()));
        let runtime = Arc::new(RuntimeCollector::default());
        registry.register_collector(Box::new(Arc::clone(&runtime)));
        let dropped = Arc::new(Dropped::default());
        registry.register_collector(Box::new(Arc::clone(&dropped)));
        let workers = WorkerFamilies {
            depth: Family::default(),
            wait: Family::new_with_constructor(latency_histogram),
            processed: Family::default(),
            failed: Family::default(),
            retried: Family::default(),
            dead_lettered: Family::default(),
            cache: Family::default(),
        };
        registry.register(
            "queue_depth",
            "Jobs waiting in a queue",
            workers.depth.clone(),
        );
        registry.register_with_unit(
            "job_wait",
            "Time a job waited in its queue before a worker took it",
            prometheus_client::registry::Unit::Seconds,
            workers.wait.clone(),
        );
        registry.register(
            "jobs_processed",
            "Jobs processed",
            workers.processed.clone(),
        );
        registry.register("jobs_failed", "Jobs that failed", workers.failed.clone());
        registry.register("jobs_retried", "Job retries", workers.retried.clone());
        registry.register(
            "jobs_dead_lettered",
            "Jobs given up on and moved to the dead-letter queue",
            workers.dead_lettered.clone(),
        );
        registry.register(
            "cache_requests",
            "Cache lookups, by result",
            workers.cache.clone(),
        );
        Metrics {
            instruments: Arc::new(Instruments {
                http_requests,
                http_duration,
                routes: RwLock::default(),
                jobs,
                job_duration,
                job_cells: RwLock::default(),
                spans: RwLock::default(),
                has_spans: std::sync::atomic::AtomicBool::new(false),
                span_family,
                error_cells: RwLock::default(),
                log_events,
                errors,
                db_queries,
                saw_db: std::sync::atomic::AtomicBool::new(false),
                #[cfg(feature = "otel")]
                otel: std::sync::OnceLock::new(),
                lag,
                lag_max,
            }),
            registry: Arc::new(Mutex::new(registry)),
            workers: Arc::new(workers),
            dropped,
            runtime,
        }
    }

    /// Also records the request and job durations, log events and errors as OpenTelemetry
    /// instruments of `provider` (for instance strata-otlp's `OtlpGuard::meter_provider`, which
    /// exports them over OTLP): `http.server.request.duration` (with `http.request.method`,
    /// `http.route`, `http.response.status_class`), `strata.job.duration` (`job.name`),
    /// `strata.log.events` (`level`), `strata.errors` (`error.class`). The first provider given
    /// stays.
    #[cfg(feature = "otel")]
    #[must_use]
    pub fn with_meter_provider(
        self,
        provider: &impl opentelemetry::metrics::MeterProvider,
    ) -> Self {
        let _ = self
            .instruments
            .otel
            .set(otel::OtelInstruments::new(&provider.meter("strata")));
        self
    }

    /// The layer deriving metrics from spans and events. Needs strata-core's span store
    /// (`StoreLayer` or any strata layer) in the same subscriber.
    pub fn layer(&self) -> MetricsLayer {
        MetricsLayer::new(Arc::clone(&self.instruments))
    }

    /// Registers a metric of the application's own, exposed with the rest. Its name must not
    /// be one strata uses (two families of one name make the exposition invalid).
    pub fn register(
        &self,
        name: &str,
        help: &str,
        metric: impl prometheus_client::registry::Metric,
    ) {
        self.registry
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .register(name, help, metric);
    }

    /// Exposes a strata output's loss counter as `strata_telemetry_dropped_total{source}`,
    /// read at each scrape (for instance `strata-otlp/spans` with `OtlpGuard::dropped_spans`).
    /// Registering the same `source` again replaces its counter.
    pub fn register_dropped(&self, source: &str, count: impl Fn() -> u64 + Send + Sync + 'static) {
        let mut sources = self.dropped.0.write().unwrap_or_else(|e| e.into_inner());
        sources.retain(|(s, _)| s != source);
        sources.push((source.to_owned(), Arc::new(count)));
    }

    /// The exposition, in the OpenMetrics text format (which Prometheus reads).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let registry = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        out
    }

    /// Records one event-loop lag measurement.
    fn observe_lag(&self, lag: Duration, window_max: Duration) {
        self.instruments.lag.observe(lag.as_secs_f64());
        self.instruments.lag_max.set(window_max.as_secs_f64());
    }

    /// Starts a task on the current tokio runtime (whose workers, alive tasks and global
    /// queue depth are then exposed too) that asks to wake every `interval` and
    /// measures how late it runs: that delay is the time the runtime's threads were busy with
    /// other work (a blocking call, a hot loop) — the event-loop lag. `event_loop_lag_max_seconds`
    /// is the largest of the last ten probes. Stops when the handle is dropped.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub fn spawn_lag_probe(&self, interval: Duration) -> LagProbe {
        // A zero interval would spin a worker.
        let interval = interval.max(Duration::from_millis(1));
        *self.runtime.0.write().unwrap_or_else(|e| e.into_inner()) =
            Some(tokio::runtime::Handle::current());
        let metrics = self.clone();
        let task = tokio::spawn(async move {
            let mut recent = [Duration::ZERO; 10];
            let mut i = 0;
            loop {
                let asked = Instant::now();
                tokio::time::sleep(interval).await;
                let lag = asked.elapsed().saturating_sub(interval);
                recent[i % recent.len()] = lag;
                i += 1;
                let max = recent.iter().copied().max().unwrap_or_default();
                metrics.observe_lag(lag, max);
            }
        });
        LagProbe {
            task,
            runtime: Arc::clone(&self.runtime),
        }
    }

    /// The instruments of a job queue named `queue` (a label value: name queues from a small
    /// fixed set): depth, wait time, processed / failed / retried / dead-lettered counts.
    pub fn worker(&self, queue: &str) -> WorkerMetrics {
        let l = QueueLabels {
            queue: queue.to_owned(),
        };
        let w = &self.workers;
        WorkerMetrics {
            depth: w.depth.get_or_create(&l).clone(),
            wait: w.wait.get_or_create(&l).clone(),
            processed: w.processed.get_or_create(&l).clone(),
            failed: w.failed.get_or_create(&l).clone(),
            retried: w.retried.get_or_create(&l).clone(),
            dead_lettered: w.dead_lettered.get_or_create(&l).clone(),
        }
    }

    /// The hit and miss counters of a cache named `cache` (`cache_requests_total{cache,result}`;
    /// a label value: name caches from a small fixed set).
    pub fn cache(&self, cache: &str) -> CacheMetrics {
        let get = |result| {
            self.workers
                .cache
                .get_or_create(&CacheLabels {
                    cache: cache.to_owned(),
                    result,
                })
                .clone()
        };
        CacheMetrics {
            hit: get("hit"),
            miss: get("miss"),
        }
    }
}

/// The event-loop lag probe of [`Metrics::spawn_lag_probe`]; dropping it stops the probe.
#[derive(Debug)]
#[must_use = "dropping the probe stops it"]
pub struct LagProbe {
    task: tokio::task::JoinHandle<()>,
    runtime: Arc<RuntimeCollector>,
}

impl Drop for LagProbe {
    fn drop(&mut self) {
        self.task.abort();
        // The tokio_* gauges stop with it (and the runtime is not kept alive).
        *self.runtime.0.write().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

/// The instruments of one job queue ([`Metrics::worker`]); cheap to clone.
#[derive(Debug, Clone)]
pub struct WorkerMetrics {
    depth: Gauge,
    wait: Histogram,
    processed: Counter,
    failed: Counter,
    retried: Counter,
    dead_lettered: Counter,
}

impl WorkerMetrics {
    /// Sets the number of jobs waiting (`queue_depth{queue}`).
    pub fn set_depth(&self, jobs: i64) {
        self.depth.set(jobs);
    }

    /// Records how long a job waited before a worker took it (`job_wait_seconds{queue}`).
    pub fn waited(&self, wait: Duration) {
        self.wait.observe(wait.as_secs_f64());
    }

    /// Counts a job processed successfully.
    pub fn processed(&self) {
        self.processed.inc();
    }

    /// Counts a job that failed.
    pub fn failed(&self) {
        self.failed.inc();
    }

    /// Counts a retry.
    pub fn retried(&self) {
        self.retried.inc();
    }

    /// Counts a job moved to the dead-letter queue.
    pub fn dead_lettered(&self) {
        self.dead_lettered.inc();
    }
}

/// The hit and miss counters of one cache ([`Metrics::cache`]); cheap to clone.
#[derive(Debug, Clone)]
pub struct CacheMetrics {
    hit: Counter,
    miss: Counter,
}

impl CacheMetrics {
    /// Counts a hit.
    pub fn hit(&self) {
        self.hit.inc();
    }

    /// Counts a miss.
    pub fn miss(&self) {
        self.miss.inc();
    }
}
