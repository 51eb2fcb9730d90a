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

use crate::{HttpLabels, Instruments, JobLabels, MAX_ROUTES};

const METHODS: [&str; 10] = [
    "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "CONNECT", "TRACE", "_OTHER",
];
/// Status classes; `none` when no response was sent (the request was cancelled or failed).
const CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "none"];

/// The handles of one label set: its counter and histogram (and OpenTelemetry attributes).
#[derive(Clone)]
pub(crate) struct Cell {
    count: Counter,
    histogram: Histogram,
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

/// The layer of [`crate::Metrics::layer`].
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

    fn route_cells(&self, route: &str) -> Arc<RouteCells> {
        let routes = &self.instruments.routes;
        if let Some(cells) = routes.read().unwrap_or_else(|e| e.into_inner()).get(route) {
            return Arc::clone(cells);
        }
        let mut map = routes.write().unwrap_or_else(|e| e.into_inner());
        let key = if map.len() >= MAX_ROUTES && !map.contains_key(route) {
            "other"
        } else {
            route
        };
        Arc::clone(map.entry(key.into()).or_insert_with(|| {
            Arc::new(RouteCells {
                label: key.into(),
                cells: std::array::from_fn(|_| OnceLock::new()),
            })
        }))
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
        let seconds = millis.map_or_else(
            || fields.opened().map_or(0.0, |t| t.elapsed().as_secs_f64()),
            |ms| ms / 1e3,
        );
        let cells = self.route_cells(route);
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
        let seconds = fields.opened().map_or(0.0, |t| t.elapsed().as_secs_f64());
        let jobs = &self.instruments.job_cells;
        let cached = jobs
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned();
        let cell = cached.unwrap_or_else(|| {
            let mut map = jobs.write().unwrap_or_else(|e| e.into_inner());
            let key = if map.len() >= MAX_ROUTES && !map.contains_key(name) {
                "other"
            } else {
                name
            };
            map.entry(key.into())
                .or_insert_with(|| {
                    let labels = JobLabels {
                        job_name: key.to_owned(),
                    };
                    Cell {
                        count: self.instruments.jobs.get_or_create(&labels).clone(),
                        histogram: self.instruments.job_duration.get_or_create(&labels).clone(),
                        #[cfg(feature = "otel")]
                        attributes: [opentelemetry::KeyValue::new("job.name", key.to_owned())]
                            .into(),
                    }
                })
                .clone()
        });
        cell.count.inc();
        cell.histogram.observe(seconds);
        #[cfg(feature = "otel")]
        if let Some(otel) = self.instruments.otel.get() {
            otel.job_duration.record(seconds, &cell.attributes);
        }
    }
}

/// Reads `error.class` from an event.
struct Class(Option<String>);

impl Visit for Class {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "error.class" {
            self.0 = Some(value.to_owned());
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "error.class" {
            self.0 = Some(format!("{value:?}"));
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
                #[cfg(feature = "otel")]
                if let Some(otel) = otel {
                    otel.errors.add(
                        1,
                        &[opentelemetry::KeyValue::new("error.class", class.clone())],
                    );
                }
                self.instruments
                    .errors
                    .get_or_create(&crate::ClassLabels { class })
                    .inc();
            }
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let meta = span.metadata();
        let from_request_id = meta.target().starts_with("strata_request_id");
        let request_or_job = from_request_id && matches!(meta.name(), "request" | "job");
        if !request_or_job
            && meta.fields().field("db.system").is_some()
            && let Some(request) = span.scope().skip(1).find(|s| {
                s.name() == "request" && s.metadata().target().starts_with("strata_request_id")
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
        let ext = span.extensions();
        let Some(fields) = ext.get::<SpanFields>() else {
            return;
        };
        match meta.name() {
            "request" if from_request_id => {
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
            "job" if from_request_id => self.job(fields),
            name if !self.instruments.spans.is_empty() => {
                if let Some(h) = self.instruments.spans.get(name) {
                    let seconds = fields.opened().map_or(0.0, |t| t.elapsed().as_secs_f64());
                    h.observe(seconds);
                }
            }
            _ => {}
        }
    }
}
