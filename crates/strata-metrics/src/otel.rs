//! The OpenTelemetry side of the instruments ([`crate::Metrics::with_meter_provider`]). Each
//! label set's attributes are built once, with the Prometheus handles, so recording allocates
//! nothing in steady state.

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram, Meter};

pub(crate) struct OtelInstruments {
    pub(crate) request_duration: Histogram<f64>,
    pub(crate) job_duration: Histogram<f64>,
    pub(crate) log_events: Counter<u64>,
    pub(crate) errors: Counter<u64>,
    /// The `level` attribute of each strata severity, TRACE to CRITICAL.
    pub(crate) levels: [[KeyValue; 1]; 6],
}

impl OtelInstruments {
    pub(crate) fn new(meter: &Meter) -> Self {
        let seconds = |name: &'static str, description: &'static str| {
            meter
                .f64_histogram(name)
                .with_unit("s")
                .with_description(description)
                .with_boundaries(crate::LATENCY_BUCKETS.to_vec())
                .build()
        };
        OtelInstruments {
            request_duration: seconds(
                "http.server.request.duration",
                "Time to serve an HTTP request",
            ),
            job_duration: seconds("strata.job.duration", "Time to run a job"),
            log_events: meter
                .u64_counter("strata.log.events")
                .with_description("Log events, by level")
                .build(),
            errors: meter
                .u64_counter("strata.errors")
                .with_description("Errors logged with an error class, by class")
                .build(),
            levels: ["trace", "debug", "info", "warn", "error", "critical"]
                .map(|l| [KeyValue::new("level", l)]),
        }
    }
}

/// The attributes of one request label set.
pub(crate) fn request_attributes(
    method: &'static str,
    route: &str,
    class: &'static str,
) -> Vec<KeyValue> {
    vec![
        KeyValue::new("http.request.method", method),
        KeyValue::new("http.route", route.to_owned()),
        KeyValue::new("http.response.status_class", class),
    ]
}
