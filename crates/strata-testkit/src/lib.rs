//! What tests need with strata: an in-process OTLP receiver, built on the official
//! `opentelemetry-proto` definitions with tonic, that records the spans, log records and metric
//! data points a program exports so a test can wait for them and assert on them; and a
//! [`BlackHole`] that accepts connections and never answers, to test an exporter against a
//! collector that hangs.
//!
//! Also: [`Bugsink`], a real Sentry-protocol server started for a test, and [`corpus`], the
//! redaction corpus every strata output is checked against.
//!
//! # Feature flags
//!
//! - `otlp` (default): the OTLP receiver and the black hole (tonic, axum, tokio).
//! - `bugsink` (default): [`Bugsink`] (reqwest).
//!
//! With neither, only [`corpus`]: what a formatter's tests need, without a network stack.
//!
//! ```no_run
//! use std::time::Duration;
//! use strata_testkit::OtlpReceiver;
//!
//! let receiver = OtlpReceiver::start()?;
//! // point the exporter at receiver.grpc_endpoint() ("http://127.0.0.1:PORT"), run the code…
//! let spans = receiver.wait_for_spans(2, Duration::from_secs(10));
//! assert!(spans.iter().any(|s| s.name == "request"));
//! let logs = receiver.wait_for_logs(1, Duration::from_secs(10));
//! assert_eq!(logs[0].severity_text, "ERROR");
//! let requests = receiver.wait_for_metric("http.server.requests", Duration::from_secs(10));
//! assert!(requests.is_some_and(|m| m.value >= 1.0));
//!
//! // An outage: the collector goes away, then comes back on the same ports.
//! let (grpc, http) = (receiver.grpc_addr(), receiver.http_addr());
//! drop(receiver);
//! let receiver = OtlpReceiver::start_at(grpc, http)?;
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! Traces, logs and metrics arrive over OTLP/gRPC, all three services on one listener
//! ([`OtlpReceiver::grpc_endpoint`]), or over OTLP/HTTP with protobuf or JSON bodies
//! ([`OtlpReceiver::http_traces_endpoint`], [`OtlpReceiver::http_logs_endpoint`],
//! [`OtlpReceiver::http_metrics_endpoint`]). They are recorded flattened — one
//! [`ReceivedSpan`], [`ReceivedLog`] or [`ReceivedMetric`] (one per data point) each, with the
//! resource's attributes — and the `wait_for_*` methods block until what a test expects has
//! arrived or the timeout passed, waking up as soon as anything is recorded.
//!
//! The listeners are bound with `SO_REUSEADDR`, and dropping the receiver closes them, so
//! [`OtlpReceiver::start_at`] can start a new receiver on the addresses of one just dropped: a
//! collector outage and its recovery. [`BlackHole`] is the other failure: a collector that accepts
//! connections and reads what is sent, but never writes a byte back.

#[cfg(feature = "bugsink")]
mod bugsink;
pub mod corpus;
#[cfg(feature = "otlp")]
mod otlp;

#[cfg(feature = "bugsink")]
pub use bugsink::Bugsink;

/// Removes from `cmd`'s environment every variable that would configure strata in the child —
/// `STRATA_*` (but the test suite's own `STRATA_REQUIRE_BACKENDS`, `STRATA_PYTHON` and
/// `STRATA_CACHE`), `OTEL_*`, `RUST_LOG`, `SENTRY_DSN` — so a test's child process starts from
/// strata's defaults whatever the developer's shell exports.
pub fn scrub_env(cmd: &mut std::process::Command) -> &mut std::process::Command {
    const KEEP: &[&str] = &["STRATA_REQUIRE_BACKENDS", "STRATA_PYTHON", "STRATA_CACHE"];
    for (k, _) in std::env::vars_os() {
        let Some(k) = k.to_str() else { continue };
        if (k.starts_with("STRATA_") && !KEEP.contains(&k))
            || k.starts_with("OTEL_")
            || k == "RUST_LOG"
            || k == "SENTRY_DSN"
        {
            cmd.env_remove(k);
        }
    }
    cmd
}
#[cfg(feature = "otlp")]
pub use otlp::*;
