//! Redaction of exported telemetry: spans (names, attributes, span events, links, status) and
//! log records (bodies, attributes) arrive masked at a real OTLP receiver over gRPC and HTTP,
//! and in the local OTLP/JSON file; ordinary values arrive as they were.

use std::sync::Arc;
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::trace::{SpanContext, SpanId, Status, TraceFlags, TraceId, TraceState};
use serde_json::Value;
use strata_core::Redaction;
use strata_otlp::SpanExt;
use strata_otlp::{Otlp, Protocol};
use strata_testkit::corpus::{self, SecretKind};
use strata_testkit::{OtlpReceiver, ReceivedLog, ReceivedSpan};

mod support;

fn rules() -> Option<Arc<Redaction>> {
    Some(Arc::new(Redaction::new()))
}

/// A system error whose message and source hold secrets.
#[derive(Debug)]
struct LoginFailed(std::io::Error);
impl std::fmt::Display for LoginFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("login to postgres://app:hunter2@db/shop failed")
    }
}
impl std::error::Error for LoginFailed {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

/// The secrets of [`log_hand_picked`] (`737`, a `cvv`, is checked where it belongs: short
/// digits turn up in IDs and timestamps by chance).
const HAND_PICKED: &[&str] = &[
    "hunter2",
    "sess_5f2b8c1d9e",
    "Tr0ub4dor&3",
    "mF_9.B5f-4.1JqM",
    "4111111111111111",
    "ghp_1234567890abcdefghijABCDEFGHIJ123456",
    "9f8e7d6c5b4a",
    "k-live-31337",
    "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
];

/// Spans and events with secrets: span attributes (by name and by shape), a status, a link
/// with attributes, events (their message, fields and an error chain).
fn log_hand_picked() {
    let login = tracing::info_span!(
        "login",
        session_id = "sess_5f2b8c1d9e",
        user = "bob",
        user_id = 42_u64,
        db = "postgres://shop:Tr0ub4dor&3@db.internal:5432/shop"
    );
    login.set_status(Status::error(
        "upstream said Authorization: Bearer mF_9.B5f-4.1JqM",
    ));
    login.add_link_with_attributes(
        SpanContext::new(
            TraceId::from(0x4bf9_u128),
            SpanId::from(0xf067_u64),
            TraceFlags::SAMPLED,
            true,
            TraceState::default(),
        ),
        vec![
            KeyValue::new("api_key", "k-live-31337"),
            KeyValue::new("reason", "stripe key sk_live_4eC39HqLyjWDarjtT1zdp7dc"),
        ],
    );
    login.in_scope(|| {
        tracing::warn!(
            password = "hunter2",
            cvv = 737_u64,
            order_id = "ord_8f14e45f",
            note = "token ghp_1234567890abcdefghijABCDEFGHIJ123456",
            "card 4111111111111111 declined"
        );
        let err = LoginFailed(std::io::Error::other(
            "Cookie: session=9f8e7d6c5b4a; theme=dark",
        ));
        tracing::info!(error = &err as &dyn std::error::Error, "login refused");
        tracing::info!(order_id = "ord_8f14e45f", "order placed");
    });
}

/// Attributes the SDK and tracing-opentelemetry add (code locations, thread IDs, timings):
/// numbers in which a short secret could appear by chance.
fn is_noise(key: &str) -> bool {
    key.starts_with("code.") || key.starts_with("thread.") || key.ends_with("_ns")
}

/// What the application put in the received spans and records, as text.
fn received_text(spans: &[ReceivedSpan], logs: &[ReceivedLog]) -> String {
    let mut out = String::new();
    let attrs = |out: &mut String, a: &std::collections::BTreeMap<String, String>| {
        for (k, v) in a.iter().filter(|(k, _)| !is_noise(k)) {
            out.push_str(&format!("{k}={v}\n"));
        }
    };
    for s in spans {
        out.push_str(&format!("{}\n{}\n", s.name, s.status_message));
        attrs(&mut out, &s.attributes);
    }
    for l in logs {
        out.push_str(&format!("{}\n", l.body));
        attrs(&mut out, &l.attributes);
    }
    out
}

fn assert_no_secret<'s>(what: &str, text: &str, secrets: impl IntoIterator<Item = &'s str>) {
    for s in secrets {
        assert!(!text.contains(s), "{s:?} leaked into {what}:\n{text}");
    }
}

fn secrets_reach_the_receiver_masked(protocol: Protocol) {
    let receiver = OtlpReceiver::start().unwrap();
    // Over HTTP the signal's path replaces the endpoint's: one endpoint serves both.
    let endpoint = match protocol {
        Protocol::Grpc => receiver.grpc_endpoint(),
        _ => receiver.http_traces_endpoint(),
    };
    let otlp = Otlp::new()
        .with_endpoint(endpoint)
        .with_protocol(protocol)
        .with_service_name("shop")
        .with_redaction(rules())
        .start()
        .unwrap();
    let secrets = corpus::secrets();
    let ordinary = corpus::ordinary();
    support::traced(&otlp, || {
        log_hand_picked();
        for s in &secrets {
            corpus::emit(tracing::Level::INFO, &s.field, &s.value, "by field");
            if s.kind == SecretKind::Pattern {
                corpus::emit(tracing::Level::INFO, "detail", "x", &s.value);
                tracing::info_span!("op", input = %s.value).in_scope(|| {});
            }
        }
        for o in &ordinary {
            corpus::emit(tracing::Level::INFO, &o.field, &o.value, &o.value);
        }
    });
    assert!(otlp.flush(Duration::from_secs(10)), "flush timed out");
    let patterns = secrets
        .iter()
        .filter(|s| s.kind == SecretKind::Pattern)
        .count();
    let n_logs = 3 + secrets.len() + patterns + ordinary.len();
    let logs = receiver.wait_for_logs(n_logs, Duration::from_secs(10));
    let spans = receiver.wait_for_spans(1 + patterns, Duration::from_secs(10));
    assert_eq!(logs.len(), n_logs);
    assert_eq!(spans.len(), 1 + patterns);
    assert_no_secret(
        "the received telemetry",
        &received_text(&spans, &logs),
        HAND_PICKED
            .iter()
            .copied()
            .chain(secrets.iter().map(|s| s.secret.as_str())),
    );

    // The span: attributes by name and by shape, the status; ordinary attributes kept.
    let login = spans.iter().find(|s| s.name == "login").unwrap();
    assert_eq!(login.attributes["session_id"], "[REDACTED]");
    assert_eq!(
        login.attributes["db"],
        "postgres://shop:[REDACTED]@db.internal:5432/shop"
    );
    assert_eq!(login.attributes["user"], "bob");
    assert_eq!(login.attributes["user_id"], "42");
    assert_eq!(login.status_code, 2);
    assert_eq!(
        login.status_message,
        "upstream said Authorization: [REDACTED]"
    );
    for s in spans.iter().filter(|s| s.name == "op") {
        assert!(s.attributes["input"].contains("[REDACTED"), "{s:?}");
    }

    // The log records: bodies, attributes by name (numbers too) and by shape, the error.
    // (The corpus has a "card … declined" too: this one is ours, with its order.)
    let declined = logs
        .iter()
        .find(|l| l.body == "card [REDACTED:card] declined" && l.scope_name != corpus::TARGET)
        .unwrap_or_else(|| panic!("{logs:#?}"));
    assert_eq!(declined.attributes["password"], "[REDACTED]");
    assert_eq!(declined.attributes["cvv"], "[REDACTED]");
    assert_eq!(declined.attributes["note"], "token [REDACTED:token]");
    assert_eq!(declined.attributes["order_id"], "ord_8f14e45f");
    assert_eq!(
        declined.span_id, login.span_id,
        "the record still names its span"
    );
    let refused = logs.iter().find(|l| l.body == "login refused").unwrap();
    assert_eq!(
        refused.attributes["exception.message"],
        "login to postgres://app:[REDACTED]@db/shop failed"
    );
    let placed = logs.iter().find(|l| l.body == "order placed").unwrap();
    assert_eq!(placed.attributes["order_id"], "ord_8f14e45f");
    for o in &ordinary {
        assert!(
            logs.iter()
                .any(|l| l.body == o.value && l.attributes.get(&o.field) == Some(&o.value)),
            "{o:?} changed"
        );
    }
    assert!(
        logs.iter()
            .filter(|l| l.attributes.contains_key("password"))
            .all(|l| l.attributes["password"] == "[REDACTED]")
    );
}

#[test]
fn spans_and_log_records_arrive_masked_over_grpc() {
    secrets_reach_the_receiver_masked(Protocol::Grpc);
}

#[test]
fn spans_and_log_records_arrive_masked_over_http() {
    secrets_reach_the_receiver_masked(Protocol::HttpProtobuf);
}

/// Every `attributes` array under `v` (OTLP/JSON), as `key=value` lines without the noise.
fn otlp_json_text(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("attributes", Value::Array(attrs)) => {
                        for a in attrs {
                            let key = a["key"].as_str().unwrap_or_default();
                            if !is_noise(key) {
                                out.push_str(&format!("{key}={}\n", a["value"]));
                            }
                        }
                    }
                    ("name" | "message" | "body", _) => {
                        out.push_str(&v.to_string());
                        out.push('\n');
                    }
                    _ => otlp_json_text(v, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| otlp_json_text(v, out)),
        _ => {}
    }
}

/// The value of attribute `key` in an OTLP/JSON `attributes` array, as text.
fn attr<'v>(attrs: &'v Value, key: &str) -> &'v Value {
    let a = attrs
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["key"] == key)
        .unwrap_or_else(|| panic!("no {key} in {attrs}"));
    a["value"]
        .get("stringValue")
        .or_else(|| a["value"].get("intValue"))
        .unwrap()
}

#[test]
fn the_local_file_gets_masked_spans_span_events_links_and_log_records() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("telemetry.jsonl");
    let otlp = Otlp::new()
        .with_service_name("shop")
        .with_file(&path, 10_000_000)
        .with_redaction(rules())
        // Every event as a span event too: their masking is what is tested here.
        .with_span_events(tracing::level_filters::LevelFilter::TRACE)
        .start()
        .unwrap();
    support::traced(&otlp, log_hand_picked);
    assert!(otlp.flush(Duration::from_secs(10)));
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut app = String::new();
    lines.iter().for_each(|l| otlp_json_text(l, &mut app));
    assert!(app.contains("card [REDACTED:card] declined"), "{app}");
    assert_no_secret("the local file", &app, HAND_PICKED.iter().copied());

    let (spans, records) = support::spans_and_records(&text);
    let span = spans
        .iter()
        .find(|s| s["name"] == "login")
        .expect("the login span");
    assert_eq!(attr(&span["attributes"], "session_id"), "[REDACTED]");
    assert_eq!(attr(&span["attributes"], "user"), "bob");
    assert_eq!(
        span["status"]["message"],
        "upstream said Authorization: [REDACTED]"
    );
    // Span events: the tracing events inside the span, named by their message.
    let events = span["events"].as_array().unwrap();
    let declined = events
        .iter()
        .find(|e| e["name"] == "card [REDACTED:card] declined")
        .unwrap_or_else(|| panic!("{events:#?}"));
    assert_eq!(attr(&declined["attributes"], "password"), "[REDACTED]");
    assert_eq!(attr(&declined["attributes"], "cvv"), "[REDACTED]");
    assert_eq!(
        attr(&declined["attributes"], "note"),
        "token [REDACTED:token]"
    );
    assert_eq!(attr(&declined["attributes"], "order_id"), "ord_8f14e45f");
    let refused = events
        .iter()
        .find(|e| e["name"] == "login refused")
        .unwrap();
    assert_eq!(
        attr(&refused["attributes"], "exception.message"),
        "login to postgres://app:[REDACTED]@db/shop failed"
    );
    // The chain, as tracing-opentelemetry records it.
    let chain = refused["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["key"] == "exception.stacktrace")
        .map(|a| a["value"].to_string())
        .unwrap_or_default();
    assert!(chain.contains("Cookie: [REDACTED]"), "{refused:#}");
    let link = &span["links"][0];
    assert_eq!(attr(&link["attributes"], "api_key"), "[REDACTED]");
    assert_eq!(
        attr(&link["attributes"], "reason"),
        "stripe key [REDACTED:token]"
    );

    let record = records
        .iter()
        .find(|r| r["body"]["stringValue"] == "card [REDACTED:card] declined")
        .expect("the declined record");
    assert_eq!(attr(&record["attributes"], "password"), "[REDACTED]");
    assert_eq!(attr(&record["attributes"], "cvv"), "[REDACTED]");
}
