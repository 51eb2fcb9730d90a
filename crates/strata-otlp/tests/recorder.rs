//! strata's span recorder, through the local OTLP/JSON file: span IDs and parents, `otel.*`
//! fields, typed attributes, links, sampling, `SpanExt`, baggage — and the same through
//! tracing-opentelemetry (`Otlp::with_tracing_opentelemetry`).

use std::time::Duration;

use opentelemetry::baggage::BaggageExt;
use opentelemetry::trace::{
    SpanContext, SpanId, Status, TraceContextExt, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{Context, KeyValue};
use serde_json::Value;
use strata_otlp::{Otlp, Sampler, SpanExt};

mod support;

/// Runs `f` with strata's store, `otlp`'s layer and JSON lines; returns the exported spans (in
/// the order they closed), the log records and the JSON lines.
fn run(otlp: Otlp, f: impl FnOnce()) -> (Vec<Value>, Vec<Value>, Vec<Value>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("telemetry.jsonl");
    let otlp = otlp.with_file(&path, 10_000_000).start().unwrap();
    let (subscriber, lines) = support::with_json_lines(&otlp);
    tracing::subscriber::with_default(subscriber, f);
    assert!(otlp.flush(Duration::from_secs(10)));
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let (spans, records) = support::spans_and_records(&text);
    (spans, records, lines.lines())
}

fn named<'a>(spans: &'a [Value], name: &str) -> &'a Value {
    spans
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no span {name}: {spans:#?}"))
}

/// The value of attribute `key` (as its OTLP/JSON `AnyValue` object).
fn attr<'a>(span: &'a Value, key: &str) -> &'a Value {
    span["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["key"] == key)
        .map_or(&Value::Null, |a| &a["value"])
}

fn remote_parent(sampled: bool) -> SpanContext {
    SpanContext::new(
        TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
        SpanId::from_hex("00f067aa0ba902b7").unwrap(),
        if sampled {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::default()
        },
        true,
        TraceState::from_key_value([("vendor", "x1")]).unwrap(),
    )
}

#[test]
fn children_share_the_trace_and_name_their_parent_and_log_lines_carry_the_same_ids() {
    let (spans, records, lines) = run(Otlp::new(), || {
        let job = tracing::info_span!("job", job = "rebuild");
        job.in_scope(|| {
            tracing::info_span!("step", n = 1_u64).in_scope(|| tracing::info!("working"));
        });
        // Made but never entered: still exported, in the same trace.
        let _ = tracing::info_span!(parent: &job, "queued");
    });
    let (job, step, queued) = (
        named(&spans, "job"),
        named(&spans, "step"),
        named(&spans, "queued"),
    );
    assert_eq!(step["traceId"], job["traceId"]);
    assert_eq!(queued["traceId"], job["traceId"]);
    assert_eq!(step["parentSpanId"], job["spanId"]);
    assert_eq!(queued["parentSpanId"], job["spanId"]);
    assert!(
        job["parentSpanId"].as_str().unwrap_or_default().is_empty(),
        "a root: {job}"
    );
    assert_ne!(step["spanId"], job["spanId"]);
    let line = lines.iter().find(|l| l["message"] == "working").unwrap();
    assert_eq!(line["trace_id"], step["traceId"]);
    assert_eq!(line["span_id"], step["spanId"]);
    let record = records
        .iter()
        .find(|r| r["body"]["stringValue"] == "working")
        .unwrap();
    assert_eq!(record["traceId"], step["traceId"]);
    assert_eq!(record["spanId"], step["spanId"]);
    // Timing: start before end, both set.
    let start: u64 = step["startTimeUnixNano"].as_str().unwrap().parse().unwrap();
    let end: u64 = step["endTimeUnixNano"].as_str().unwrap().parse().unwrap();
    assert!(start > 0 && start <= end, "{start} {end}");
}

#[test]
fn fields_become_typed_attributes_and_otel_fields_set_name_kind_and_status() {
    let (spans, _, _) = run(Otlp::new(), || {
        let span = tracing::info_span!(
            "fetch",
            otel.name = "GET inventory",
            otel.kind = "client",
            otel.status_code = tracing::field::Empty,
            otel.status_description = tracing::field::Empty,
            count = 3_i64,
            big = u64::MAX,
            ratio = 0.25_f64,
            cached = true,
            who = "bob",
            shape = ?(1, 2),
        );
        span.in_scope(|| {});
        span.record("otel.status_code", "error");
        span.record("otel.status_description", "inventory down");
    });
    let span = named(&spans, "GET inventory");
    assert_eq!(span["kind"], 3, "client: {span}");
    assert_eq!(span["status"]["code"], 2, "error: {span}");
    assert_eq!(span["status"]["message"], "inventory down");
    assert_eq!(attr(span, "count")["intValue"], "3");
    assert_eq!(attr(span, "big")["stringValue"], u64::MAX.to_string());
    assert_eq!(attr(span, "ratio")["doubleValue"], 0.25);
    assert_eq!(attr(span, "cached")["boolValue"], true);
    assert_eq!(attr(span, "who")["stringValue"], "bob");
    assert_eq!(attr(span, "shape")["stringValue"], "(1, 2)");
    assert_eq!(attr(span, "code.module.name")["stringValue"], "recorder");
    assert!(
        attr(span, "code.file.path")["stringValue"]
            .as_str()
            .unwrap()
            .ends_with("recorder.rs")
    );
    assert!(attr(span, "code.line.number")["intValue"].is_string());
    for k in ["otel.name", "otel.kind", "otel.status_code"] {
        assert!(attr(span, k).is_null(), "{k} is not an attribute: {span}");
    }
}

#[test]
fn span_ext_sets_a_remote_parent_attributes_links_and_status_and_gives_the_context() {
    let mut seen = None;
    let (spans, _, lines) = run(Otlp::new(), || {
        let span = tracing::info_span!("consume");
        span.set_parent(Context::new().with_remote_span_context(remote_parent(true)));
        span.set_attribute("messaging.system", "kafka");
        span.add_link_with_attributes(
            SpanContext::new(
                TraceId::from(7_u128),
                SpanId::from(9_u64),
                TraceFlags::SAMPLED,
                true,
                TraceState::default(),
            ),
            vec![KeyValue::new("why", "batch")],
        );
        // An invalid context is no link.
        span.add_link(SpanContext::empty_context());
        span.set_status(Status::error("poison message"));
        span.in_scope(|| tracing::info!("consumed"));
        seen = Some(span.context().span().span_context().clone());
        // Too late: the span has its IDs.
        span.set_parent(Context::new());
    });
    let span = named(&spans, "consume");
    assert_eq!(span["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(span["parentSpanId"], "00f067aa0ba902b7");
    assert_eq!(span["traceState"], "vendor=x1", "inherited: {span}");
    assert_eq!(attr(span, "messaging.system")["stringValue"], "kafka");
    let links = span["links"].as_array().unwrap();
    assert_eq!(links.len(), 1, "{links:?}");
    assert_eq!(
        links[0]["traceId"],
        format!("{:032x}", 7),
        "the link's trace: {links:?}"
    );
    assert_eq!(attr(&links[0], "why")["stringValue"], "batch");
    assert_eq!(span["status"]["code"], 2);
    assert_eq!(span["status"]["message"], "poison message");
    let seen = seen.unwrap();
    assert_eq!(seen.span_id().to_string(), span["spanId"].as_str().unwrap());
    assert!(seen.is_sampled());
    let line = lines.iter().find(|l| l["message"] == "consumed").unwrap();
    assert_eq!(line["trace_id"], span["traceId"]);
}

#[test]
fn follows_from_is_a_link() {
    let (spans, _, _) = run(Otlp::new(), || {
        let request = tracing::info_span!("request");
        request.in_scope(|| {});
        let flush = tracing::info_span!(parent: None, "flush");
        flush.follows_from(&request);
        flush.in_scope(|| {});
    });
    let (request, flush) = (named(&spans, "request"), named(&spans, "flush"));
    assert_ne!(flush["traceId"], request["traceId"], "a trace of its own");
    let link = &flush["links"][0];
    assert_eq!(link["traceId"], request["traceId"]);
    assert_eq!(link["spanId"], request["spanId"]);
}

#[test]
fn the_sampler_decides_and_unsampled_spans_still_carry_ids_in_log_lines() {
    let (spans, _, lines) = run(Otlp::new().with_sampler(Sampler::AlwaysOff), || {
        tracing::info_span!("dropped").in_scope(|| tracing::info!("in an unsampled span"));
    });
    assert!(spans.is_empty(), "{spans:#?}");
    let line = lines
        .iter()
        .find(|l| l["message"] == "in an unsampled span")
        .unwrap();
    assert_eq!(line["trace_id"].as_str().unwrap().len(), 32, "{line}");

    // Parent-based: a sampled remote parent is followed, an unsampled one is too.
    let sampler = Sampler::ParentBased(Box::new(Sampler::AlwaysOff));
    let (spans, _, _) = run(Otlp::new().with_sampler(sampler), || {
        let yes = tracing::info_span!("continued");
        yes.set_parent(Context::new().with_remote_span_context(remote_parent(true)));
        yes.in_scope(|| tracing::info_span!("child").in_scope(|| {}));
        let no = tracing::info_span!("not_continued");
        no.set_parent(Context::new().with_remote_span_context(remote_parent(false)));
        no.in_scope(|| {});
        tracing::info_span!("root").in_scope(|| {});
    });
    let names: Vec<&str> = spans.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["child", "continued"], "{spans:#?}");
}

#[test]
fn a_remote_parents_baggage_is_current_while_its_span_and_children_are_entered() {
    let mut inside = Vec::new();
    run(Otlp::new(), || {
        let cx = Context::new()
            .with_remote_span_context(remote_parent(true))
            .with_baggage([KeyValue::new("tenant", "acme")]);
        let span = tracing::info_span!("request");
        span.set_parent(cx);
        let tenant = || {
            Context::current()
                .baggage()
                .get("tenant")
                .map(|v| v.to_string())
        };
        span.in_scope(|| {
            inside.push(tenant());
            let child = tracing::info_span!("db");
            child.in_scope(|| inside.push(tenant()));
            // The child's context carries the baggage on (to inject into a call).
            inside.push(
                child
                    .context()
                    .baggage()
                    .get("tenant")
                    .map(|v| v.to_string()),
            );
        });
        inside.push(tenant());
    });
    assert_eq!(
        inside,
        [
            Some("acme".to_owned()),
            Some("acme".to_owned()),
            Some("acme".to_owned()),
            None
        ]
    );
}

#[test]
fn through_tracing_opentelemetry_the_same_export_and_its_span_ext_and_current_context() {
    use tracing_opentelemetry::OpenTelemetrySpanExt;

    let mut current = None;
    let (spans, records, lines) = run(Otlp::new().with_tracing_opentelemetry(true), || {
        let span = tracing::info_span!("legacy", user = "bob");
        OpenTelemetrySpanExt::set_attribute(&span, "from.otel.ext", "yes");
        SpanExt::set_parent(
            &span,
            Context::new().with_remote_span_context(remote_parent(true)),
        );
        span.in_scope(|| {
            current = Some(Context::current().span().span_context().clone());
            tracing::warn!("careful");
        });
    });
    let span = named(&spans, "legacy");
    assert_eq!(span["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(span["parentSpanId"], "00f067aa0ba902b7");
    assert_eq!(attr(span, "from.otel.ext")["stringValue"], "yes");
    assert_eq!(attr(span, "user")["stringValue"], "bob");
    let current = current.unwrap();
    assert_eq!(
        current.span_id().to_string(),
        span["spanId"].as_str().unwrap()
    );
    let line = lines.iter().find(|l| l["message"] == "careful").unwrap();
    assert_eq!(line["span_id"], span["spanId"]);
    let record = records
        .iter()
        .find(|r| r["body"]["stringValue"] == "careful")
        .unwrap();
    assert_eq!(record["spanId"], span["spanId"]);
    // WARN events stay span events, as with the recorder.
    assert_eq!(span["events"][0]["name"], "careful");
}

#[test]
fn without_a_store_layer_before_it_the_recorder_keeps_the_store_itself() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("telemetry.jsonl");
    let otlp = Otlp::new().with_file(&path, 10_000_000).start().unwrap();
    let subscriber = {
        use tracing_subscriber::prelude::*;
        tracing_subscriber::registry().with(otlp.layer())
    };
    tracing::subscriber::with_default(subscriber, || {
        let span = tracing::info_span!("alone", job = "reindex", done = tracing::field::Empty);
        span.in_scope(|| tracing::info!("inside"));
        span.record("done", true);
    });
    assert!(otlp.flush(Duration::from_secs(10)));
    let (spans, records) = support::spans_and_records(&std::fs::read_to_string(&path).unwrap());
    let span = named(&spans, "alone");
    assert_eq!(attr(span, "job")["stringValue"], "reindex");
    assert_eq!(attr(span, "done")["boolValue"], true, "recorded later");
    let record = records
        .iter()
        .find(|r| r["body"]["stringValue"] == "inside")
        .unwrap();
    assert_eq!(record["spanId"], span["spanId"]);
}
