//! The layer: metrics from closing spans and from events. Span fields and creation times come
//! from strata-core's span store, so the layer keeps no per-span state of its own; each label
//! set's handles are resolved once and reused, so a request costs no allocation.

use std::sync::{Arc, OnceLock};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;
use strata_core::store::SpanFields;
use strata_core::{FieldValue, Severity};
use tracing_core::field::{Field, Visit};
use tracing_core::span::Id;
use tracing_core::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

use std::collections::HashMap;
use std::sync::RwLock;

use crate::{Fnv, HttpLabels, Instruments, JobLabels, MAX_ERROR_CLASSES, MAX_JOBS, MAX_ROUTES};

const METHODS: [&str; 10] = [
    "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "CONNECT", "TRACE", "_OTHER",
];
/// Status classes; `none` when no response was sent (the request was cancelled or failed).
const CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "none"];

/// The handles of one label set: its counter and histogram (and OpenTelemetry attributes).
pub(crate) struct Cell {
    count: Counter,
    histogram: Histogram,
    #[cfg(feature = "otel")]
    attributes: std::sync::Arc<[opentelemetry::KeyValue]>,
}

/// The counter of one error class (and its OpenTelemetry attributes).
pub(crate) struct ErrorCell {
    count: Counter,
    #[cfg(feature = "otel")]
    attributes: std::sync::Arc<[opentelemetry::KeyValue]>,
}

/// The handles of one route: a [`Cell`] per (method, status class), made on first use.
pub(crate) struct RouteCells {
    /// The route label: the route, or `other` past [`MAX_ROUTES`].
    label: Box<str>,
    cells: [OnceLock<Cell>; METHODS.len() * CLASSES.len()],
}

/// Database calls counted on a request span so far.
struct DbQueries(u32);

/// The layer of [`crate::Metrics::layer`]: records the metrics listed in the crate's docs when
/// spans close and events happen. It reads span fields from strata-core's span store, so a
/// store (`StoreLayer`, or any strata layer) must be in the same subscriber; without one it
/// records log events and errors only.
#[derive(Clone)]
pub struct MetricsLayer {
    instruments: Arc<Instruments>,
}

impl std::fmt::Debug for MetricsLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsLayer").finish_non_exhaustive()
    }
}

impl MetricsLayer {
    pub(crate) fn new(instruments: Arc<Instruments>) -> Self {
        // Span durations come from the store's creation time.
        strata_core::store::want_span_timing();
        MetricsLayer { instruments }
    }

    fn request(&self, fields: &SpanFields) {
        // One pass over the span's fields.
        let (mut method, mut class, mut route, mut millis) = (METHODS.len() - 1, 5, None, None);
        for f in fields.fields() {
            match (f.name(), f.value()) {
                ("method", FieldValue::Str(m)) => {
                    method = METHODS
                        .iter()
                        .position(|k| **k == **m)
                        .unwrap_or(METHODS.len() - 1);
                }
                ("status_code", FieldValue::U64(code)) => {
                    class = match code {
                        100..=199 => 0,
                        200..=299 => 1,
                        300..=399 => 2,
                        400..=499 => 3,
                        500..=599 => 4,
                        _ => 5,
                    };
                }
                ("route", FieldValue::Str(r)) => route = Some(&**r),
                ("duration_ms", FieldValue::F64(ms)) => millis = Some(*ms),
                _ => {}
            }
        }
        // No template matched: never the raw path (unbounded).
        let route = route.unwrap_or("unmatched");
        let Some(seconds) = millis
            .map(|ms| ms / 1e3)
            .or_else(|| fields.opened().map(|t| t.elapsed().as_secs_f64()))
        else {
            return;
        };
        let new_route = |key: &str| RouteCells {
            label: key.into(),
            cells: std::array::from_fn(|_| OnceLock::new()),
        };
        with_capped(
            &self.instruments.routes,
            route,
            MAX_ROUTES,
            new_route,
            |cells| {
                self.observe_request(cells, method, class, seconds);
            },
        );
    }

    /// Counts and times one request in its route's cell for (method, status class).
    fn observe_request(&self, cells: &RouteCells, method: usize, class: usize, seconds: f64) {
        let cell = cells.cells[method * CLASSES.len() + class].get_or_init(|| {
            let labels = HttpLabels {
                method: METHODS[method],
                route: cells.label.to_string(),
                status_class: CLASSES[class],
            };
            Cell {
                count: self
                    .instruments
                    .http_requests
                    .get_or_create(&labels)
                    .clone(),
                histogram: self
                    .instruments
                    .http_duration
                    .get_or_create(&labels)
                    .clone(),
                #[cfg(feature = "otel")]
                attributes: crate::otel::request_attributes(
                    METHODS[method],
                    &cells.label,
                    CLASSES[class],
                )
                .into(),
            }
        });
        cell.count.inc();
        cell.histogram.observe(seconds);
        #[cfg(feature = "otel")]
        if let Some(otel) = self.instruments.otel.get() {
            otel.request_duration.record(seconds, &cell.attributes);
        }
    }

    fn job(&self, fields: &SpanFields) {
        let name = match fields.get("job") {
            Some(FieldValue::Str(j)) => j,
            _ => "unknown",
        };
        // A span made before the layer has no start time: not observed rather than 0 s.
        let Some(opened) = fields.opened() else {
            return;
        };
        let new_job = |key: &str| {
            let labels = JobLabels {
                job_name: key.to_owned(),
            };
            Cell {
                count: self.instruments.jobs.get_or_create(&labels).clone(),
                histogram: self.instruments.job_duration.get_or_create(&labels).clone(),
                #[cfg(feature = "otel")]
                attributes: [opentelemetry::KeyValue::new("job.name", key.to_owned())].into(),
            }
        };
        let seconds = opened.elapsed().as_secs_f64();
        with_capped(
            &self.instruments.job_cells,
            name,
            MAX_JOBS,
            new_job,
            |cell| {
                cell.count.inc();
                cell.histogram.observe(seconds);
                #[cfg(feature = "otel")]
                if let Some(otel) = self.instruments.otel.get() {
                    otel.job_duration.record(seconds, &cell.attributes);
                }
            },
        );
    }

    fn error(&self, class: &str) {
        let new_class = |key: &str| ErrorCell {
            count: self
                .instruments
                .errors
                .get_or_create(&crate::ClassLabels {
                    class: key.to_owned(),
                })
                .clone(),
            #[cfg(feature = "otel")]
            attributes: [opentelemetry::KeyValue::new("error.class", key.to_owned())].into(),
        };
        with_capped(
            &self.instruments.error_cells,
            class,
            MAX_ERROR_CLASSES,
            new_class,
            |cell| {
                cell.count.inc();
                #[cfg(feature = "otel")]
                if let Some(otel) = self.instruments.otel.get() {
                    otel.errors.add(1, &cell.attributes);
                }
            },
        );
    }
}

/// Label sets keyed by one label's value (route, job name, error class), at most a cap of them.
pub(crate) type Capped<V> = RwLock<HashMap<Box<str>, V, Fnv>>;

/// Runs `f` on the entry of `key` in `map` — or, past `max` keys, of `other` — made by `make`
/// on first use. A known key is found and used under the read lock: no allocation, no
/// reference count touched.
fn with_capped<V, R>(
    map: &Capped<V>,
    key: &str,
    max: usize,
    make: impl FnOnce(&str) -> V,
    f: impl FnOnce(&V) -> R,
) -> R {
    {
        let read = map.read().unwrap_or_else(|e| e.into_inner());
        let found = read
            .get(key)
            .or_else(|| (read.len() >= max).then(|| read.get("other")).flatten());
        if let Some(v) = found {
            return f(v);
        }
    }
    let mut write = map.write().unwrap_or_else(|e| e.into_inner());
    let key = if write.len() >= max && !write.contains_key(key) {
        "other"
    } else {
        key
    };
    f(write.entry(key.into()).or_insert_with(|| make(key)))
}

/// Reads `error.class` from an event (as text: `%class`, `"external"`, or Debug without
/// quotes).
struct Class(Option<String>);

impl Visit for Class {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "error.class" {
            self.0 = Some(value.to_owned());
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "error.class" {
            self.0 = Some(format!("{value:?}").trim_matches('"').to_owned());
        }
    }
}

impl<S> Layer<S> for MetricsLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let meta = event.metadata();
        let level = match Severity::of(meta) {
            Severity::Trace => 0,
            Severity::Debug => 1,
            Severity::Info => 2,
            Severity::Warn => 3,
            Severity::Error => 4,
            _ => 5,
        };
        self.instruments.log_events[level].inc();
        #[cfg(feature = "otel")]
        let otel = self.instruments.otel.get();
        #[cfg(feature = "otel")]
        if let Some(otel) = otel {
            otel.log_events.add(1, &otel.levels[level]);
        }
        if meta.fields().field("error.class").is_some() {
            let mut class = Class(None);
            event.record(&mut class);
            if let Some(class) = class.0 {
                self.error(&class);
            }
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let meta = span.metadata();
        // The HTTP middleware's request spans and the job spans; not `request_span()` (a
        // request of another kind: no method, route or status).
        let http_request = meta.name() == "request" && meta.target() == "strata_request_id::server";
        let job = meta.name() == "job" && meta.target() == "strata_request_id::context";
        let request_or_job = http_request || job;
        if !request_or_job
            && meta.fields().field("db.system").is_some()
            && let Some(request) = span.scope().skip(1).find(|s| {
                s.name() == "request" && s.metadata().target() == "strata_request_id::server"
            })
        {
            self.instruments
                .saw_db
                .store(true, std::sync::atomic::Ordering::Relaxed);
            let mut ext = request.extensions_mut();
            match ext.get_mut::<DbQueries>() {
                Some(n) => n.0 += 1,
                None => ext.insert(DbQueries(1)),
            }
        }
        let has_spans = self
            .instruments
            .has_spans
            .load(std::sync::atomic::Ordering::Relaxed);
        if !request_or_job && !has_spans {
            return;
        }
        let ext = span.extensions();
        let Some(fields) = ext.get::<SpanFields>() else {
            return;
        };
        match meta.name() {
            "request" if http_request => {
                self.request(fields);
                // Only services that make database calls pay for the histogram.
                if self
                    .instruments
                    .saw_db
                    .load(std::sync::atomic::Ordering::Relaxed)
                {
                    let queries = ext.get::<DbQueries>().map_or(0, |n| n.0);
                    self.instruments.db_queries.observe(f64::from(queries));
                }
            }
            "job" if job => self.job(fields),
            name => {
                let spans = self
                    .instruments
                    .spans
                    .read()
                    .unwrap_or_else(|e| e.into_inner());
                if let (Some(h), Some(opened)) = (spans.get(name), fields.opened()) {
                    h.observe(opened.elapsed().as_secs_f64());
                }
            }
        }
    }
}
