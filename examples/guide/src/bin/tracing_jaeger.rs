//! Distributed tracing: a `tracing` span is an OpenTelemetry span. strata exports them over
//! OTLP to a collector or Jaeger when `OTEL_EXPORTER_OTLP_ENDPOINT` is set, and to a local
//! OTLP/JSON file otherwise; every log line inside a span carries the span's `trace_id`.
//!
//! Run with `cargo run -p example-guide --bin tracing_jaeger`; with Jaeger running (see
//! `examples/jaeger`), `OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4317` sends the traces there.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::Value;
use tracing::{error, info, info_span};

/// One order: a root span and a child per step (Python: `tracer.start_as_current_span`).
fn process_order(order_id: u64, user_id: u64, card_ok: bool) {
    let span = info_span!("process_order", order_id, user_id);
    let _enter = span.enter();
    info_span!(
        "db.query",
        db.system = "postgresql",
        db.operation = "SELECT"
    )
    .in_scope(|| std::thread::sleep(Duration::from_millis(15)));
    info_span!("payment.charge", peer.service = "payment-gateway").in_scope(|| {
        std::thread::sleep(Duration::from_millis(40));
        if !card_ok {
            // An ERROR event marks its span (and the trace) as failed.
            error!(order_id, "payment gateway refused the card");
        }
    });
    info_span!("cache.set").in_scope(|| std::thread::sleep(Duration::from_millis(2)));
    info!(event = "order_processed", order_id, "Order processed");
}

fn main() {
    let dir = example_guide::workdir("tracing_jaeger");
    let mut builder = strata::builder().with_service("orders");
    if std::env::var_os("STRATA_ENV").is_none() {
        builder = builder.with_profile(strata::Profile::Staging);
    }
    let guard = builder.init();
    let endpoint = guard.config().otlp.endpoint.clone();

    process_order(1042, 314_159, true);
    process_order(1043, 271_828, false);
    drop(guard); // flushes the exporter

    let Some(endpoint) = endpoint.filter(|e| !e.is_empty()) else {
        // No collector: the spans are in the local file, one OTLP/JSON request per line.
        let file = dir.join(".strata/telemetry.jsonl");
        let mut spans = Vec::new();
        for line in example_guide::json_lines(&file) {
            for rs in line["resourceSpans"].as_array().into_iter().flatten() {
                for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
                    spans.extend(ss["spans"].as_array().into_iter().flatten().cloned());
                }
            }
        }
        print_waterfalls(&spans);
        eprintln!(
            "[guide] look at: {} — each trace's spans nest under process_order; the JSON line \
             \"Order processed\" has the same trace_id; the second trace's payment.charge has \
             status code 2 (error)",
            file.display()
        );
        return;
    };
    eprintln!("[guide] traces sent to {endpoint}: open Jaeger and search service \"orders\"");
}

/// Each trace's spans, indented under their parent, with start offset and duration.
fn print_waterfalls(spans: &[Value]) {
    let nanos = |v: &Value| v.as_str().and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
    let mut traces: HashMap<&str, Vec<&Value>> = HashMap::new();
    for s in spans {
        traces
            .entry(s["traceId"].as_str().unwrap_or(""))
            .or_default()
            .push(s);
    }
    let mut traces: Vec<_> = traces.into_iter().collect();
    for (_, spans) in &mut traces {
        spans.sort_by_key(|s| nanos(&s["startTimeUnixNano"]));
    }
    traces.sort_by_key(|(_, spans)| nanos(&spans[0]["startTimeUnixNano"]));
    for (trace, spans) in traces {
        let start = nanos(&spans[0]["startTimeUnixNano"]);
        eprintln!("[guide] trace {trace}");
        for s in &spans {
            let depth = std::iter::successors(Some(*s), |c| {
                spans
                    .iter()
                    .copied()
                    .find(|p| p["spanId"] == c["parentSpanId"])
            })
            .count();
            let (begin, end) = (nanos(&s["startTimeUnixNano"]), nanos(&s["endTimeUnixNano"]));
            eprintln!(
                "[guide]   {:indent$}{:<width$} +{:>5.1} ms {:>6.1} ms  status {}",
                "",
                s["name"].as_str().unwrap_or("?"),
                (begin - start) as f64 / 1e6,
                end.saturating_sub(begin) as f64 / 1e6,
                s["status"]["code"].as_i64().unwrap_or(0),
                indent = 2 * (depth - 1),
                width = 20 - 2 * (depth - 1).min(5),
            );
        }
    }
}
