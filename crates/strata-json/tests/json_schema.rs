//! Real output of many kinds of events, validated against `docs/schema/strata-log.schema.json`.

mod support;

use serde_json::Value;
use strata_core::store::{SpanFields, TraceContext};
use strata_core::{Classify, ErrorClass, critical, log_error};
use strata_json::layer;
use support::Capture;
use tracing::span::{Attributes, Id};
use tracing_subscriber::layer::Context;
use tracing_subscriber::prelude::*;
use tracing_subscriber::registry::LookupSpan;

fn validator() -> jsonschema::Validator {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/schema/strata-log.schema.json"
    );
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    jsonschema::validator_for(&schema).expect("the schema itself is valid")
}

/// Sets a trace context on every new span, as the OpenTelemetry layer will.
struct Trace;
impl<S: tracing::Subscriber + for<'a> LookupSpan<'a>> tracing_subscriber::Layer<S> for Trace {
    fn on_new_span(&self, _: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let span = ctx.span(id).unwrap();
        let mut ext = span.extensions_mut();
        if let Some(f) = ext.get_mut::<SpanFields>() {
            f.set_trace_context(TraceContext::new(
                [0xab; 16],
                (id.into_u64()).to_be_bytes(),
                true,
            ));
        }
    }
}

#[derive(Debug)]
struct Timeout(std::io::Error);
impl std::fmt::Display for Timeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("upstream timed out")
    }
}
impl std::error::Error for Timeout {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}
impl Classify for Timeout {
    fn class(&self) -> ErrorClass {
        ErrorClass::External
    }
}

fn emit_everything() {
    tracing::trace!("trace");
    tracing::debug!(x = 1, "debug");
    tracing::info!("no span");
    tracing::info!(x = 1);
    let req = tracing::info_span!(
        "request",
        request_id = "r-1",
        user_id = tracing::field::Empty,
        timestamp = "user"
    );
    let _r = req.enter();
    req.record("user_id", 42_u64);
    for i in 0..50_u64 {
        let child = tracing::debug_span!("db", db.system = "postgresql", rows = i);
        let _c = child.enter();
        tracing::info!(
            event = "query",
            duration_ms = i as f64 * 1.5,
            ok = i % 2 == 0,
            i128 = -(i as i128),
            "query {i}"
        );
        tracing::warn!(
            nan = f64::NAN,
            inf = f64::INFINITY,
            text = "line\nbreak\x1b[0m",
            "odd values"
        );
    }
    let err = Timeout(std::io::Error::other("connection reset"));
    log_error!(err, attempt = 2, "charge failed");
    tracing::error!(error = "a plain string named error", "string error");
    critical!(component = "db", "database unreachable");
    tracing::info!(
        level = "user level",
        message_extra = true,
        bytes = &b"\xff\x00ok"[..],
        "collisions"
    );
}

#[test]
fn real_output_validates_against_the_schema() {
    let v = validator();
    let cap = Capture::default();
    let json = layer()
        .with_env("test")
        .with_version("1.0.0")
        .with_file_line(true)
        .with_thread(true)
        .with_span_close(true)
        .with_writer(cap.clone());
    let sub = tracing_subscriber::registry().with(json).with(Trace);
    tracing::subscriber::with_default(sub, emit_everything);
    let lines = cap.lines();
    assert!(lines.len() > 150, "{} lines", lines.len());
    for l in &lines {
        if let Err(e) = v.validate(l) {
            panic!("{e} at {}: {l}", e.instance_path());
        }
    }
    assert!(lines.iter().any(|l| l["level"] == "CRITICAL"));
    assert!(lines.iter().any(|l| l["event"] == "span_close"));
    assert!(
        lines
            .iter()
            .all(|l| l.get("trace_id").is_none() || l["trace_id"] == "ab".repeat(16))
    );
}

#[test]
fn the_schema_rejects_what_it_should() {
    let v = validator();
    let cap = Capture::default();
    let sub = tracing_subscriber::registry().with(layer().with_writer(cap.clone()));
    tracing::subscriber::with_default(sub, || tracing::info!(a = 1, "m"));
    let good = cap.lines().remove(0);
    assert!(v.is_valid(&good));
    for (key, bad) in [
        ("level", Value::from("LOUD")),
        ("timestamp", Value::from("2025-01-01 12:00:00")),
        ("trace_id", Value::from("xyz")),
        ("a", serde_json::json!({"message": 1})),
        ("a", Value::Null),
    ] {
        let mut l = good.clone();
        l[key] = bad.clone();
        assert!(!v.is_valid(&l), "{key} = {bad} should be rejected");
    }
    let mut l = good;
    l.as_object_mut().unwrap().remove("service");
    assert!(!v.is_valid(&l), "service is required");
}
