//! Tracing events as OpenTelemetry log records, each with the trace context strata's recorder
//! gave its span (read from strata-core's span store: no OpenTelemetry context is made current
//! for it). The record is built like opentelemetry-appender-tracing builds it: the message as
//! the body, the other fields as typed attributes, the target, the event's name, the severity —
//! and queued for the export thread straight away (no logger and processor chain in between).

use std::time::SystemTime;

use opentelemetry::logs::{AnyValue, LogRecord as _, Severity};
use opentelemetry::trace::{SpanId, TraceId};
use opentelemetry::{Context as OtelContext, Key};
use opentelemetry_sdk::logs::SdkLogRecord;
use strata_core::store;
use tracing_core::field::{Field, Visit};
use tracing_core::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

use crate::batch::{Batch, blank_record};

/// The log bridge layer: queues each event's record on the log records' batch processor.
pub(crate) struct LogBridge(pub(crate) Batch<SdkLogRecord>);

const fn severity(level: Level) -> Severity {
    match level {
        Level::TRACE => Severity::Trace,
        Level::DEBUG => Severity::Debug,
        Level::INFO => Severity::Info,
        Level::WARN => Severity::Warn,
        Level::ERROR => Severity::Error,
    }
}

impl<S> Layer<S> for LogBridge
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let meta = event.metadata();
        // The network stack's and telemetry crates' own events are not exported (each export
        // would log again), nor anything logged where telemetry is suppressed.
        if strata_core::is_telemetry_target(meta.target())
            || OtelContext::is_current_telemetry_suppressed()
        {
            return;
        }
        let severity = severity(*meta.level());
        let mut record = blank_record().clone();
        record.set_target(meta.target());
        record.set_event_name(meta.name());
        record.set_severity_number(severity);
        record.set_severity_text(meta.level().as_str());
        record.set_observed_timestamp(SystemTime::now());
        event.record(&mut Fields(&mut record));
        if store::trace_context_in_use()
            && let Some(trace) = ctx
                .event_span(event)
                .and_then(|span| store::trace_context(&span))
        {
            record.set_trace_context(
                TraceId::from_bytes(trace.trace_id),
                SpanId::from_bytes(trace.span_id),
                Some(crate::recorder::flags(&trace)),
            );
        }
        self.0.push(record);
    }
}

/// An event's fields into a record: `message` as the body, the rest as attributes.
struct Fields<'a>(&'a mut SdkLogRecord);

impl Fields<'_> {
    fn put(&mut self, field: &Field, value: AnyValue) {
        if field.name() == "message" {
            self.0.set_body(value);
        } else {
            self.0
                .add_attribute(Key::from_static_str(field.name()), value);
        }
    }
}

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.put(field, AnyValue::from(format!("{value:?}")));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, AnyValue::from(value.to_owned()));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, AnyValue::from(value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, AnyValue::from(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, AnyValue::from(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        match i64::try_from(value) {
            Ok(v) => self.put(field, AnyValue::from(v)),
            Err(_) => self.put(field, AnyValue::from(value.to_string())),
        }
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        match i64::try_from(value) {
            Ok(v) => self.put(field, AnyValue::from(v)),
            Err(_) => self.put(field, AnyValue::from(value.to_string())),
        }
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        match i64::try_from(value) {
            Ok(v) => self.put(field, AnyValue::from(v)),
            Err(_) => self.put(field, AnyValue::from(value.to_string())),
        }
    }

    fn record_bytes(&mut self, field: &Field, value: &[u8]) {
        self.put(field, AnyValue::from(value));
    }

    /// As `exception.message` (the semantic conventions' name, as the appender does).
    fn record_error(&mut self, _field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0.add_attribute(
            Key::from_static_str("exception.message"),
            AnyValue::from(value.to_string()),
        );
    }
}
