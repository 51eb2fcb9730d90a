//! OpenTelemetry semantic conventions for strata-request-id's HTTP spans, applied on the export
//! thread (never on the caller's): the server span `request` and the client span `http_client`
//! keep strata's field names in JSON lines (`method`, `route`, `status_code`…) and get the
//! convention's names, kind, name and error status in the exported span.

use opentelemetry::trace::{SpanKind, Status};
use opentelemetry::{Key, KeyValue, Value};
use opentelemetry_sdk::trace::SpanData;

/// strata's field name and the convention's, per span kind.
const SERVER: &[(&str, &str)] = &[
    ("method", "http.request.method"),
    ("route", "http.route"),
    ("path", "url.path"),
    ("status_code", "http.response.status_code"),
];
const CLIENT: &[(&str, &str)] = &[
    ("method", "http.request.method"),
    ("url", "url.full"),
    ("status_code", "http.response.status_code"),
];

/// The span's module (`code.module.name`, which tracing-opentelemetry records).
fn module(span: &SpanData) -> Option<std::borrow::Cow<'_, str>> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == "code.module.name")
        .map(|kv| kv.value.as_str())
}

fn from_request_id(span: &SpanData) -> bool {
    module(span).is_some_and(|m| m.starts_with("strata_request_id"))
}

/// Whether the span comes from the network stack or a telemetry crate.
pub(crate) fn from_telemetry(span: &SpanData) -> bool {
    module(span).is_some_and(|m| strata_core::is_telemetry_target(&m))
}

fn int(value: &Value) -> Option<i64> {
    match value {
        Value::I64(n) => Some(*n),
        Value::String(s) => s.as_str().parse().ok(),
        _ => None,
    }
}

/// Rewrites `span` if it is one of strata-request-id's HTTP spans.
pub(crate) fn apply(span: &mut SpanData) {
    let (kind, names) = match span.name.as_ref() {
        "request" => (SpanKind::Server, SERVER),
        "http_client" => (SpanKind::Client, CLIENT),
        _ => return,
    };
    if !from_request_id(span) {
        return;
    }
    let mut method = None;
    let mut route = None;
    let mut status = None;
    let mut error = None;
    for kv in &mut span.attributes {
        if let Some((_, to)) = names.iter().find(|(from, _)| kv.key.as_str() == *from) {
            kv.key = Key::from_static_str(to);
        }
        match kv.key.as_str() {
            "http.request.method" => method = Some(kv.value.as_str().into_owned()),
            "http.route" => route = Some(kv.value.as_str().into_owned()),
            "http.response.status_code" => status = int(&kv.value),
            "error" => error = Some(kv.value.as_str().into_owned()),
            _ => {}
        }
    }
    if let Some(code) = status {
        // The convention's integer, whatever the field's recorded type.
        for kv in &mut span.attributes {
            if kv.key.as_str() == "http.response.status_code" {
                kv.value = Value::I64(code);
            }
        }
    }
    span.span_kind = kind.clone();
    if let Some(method) = method {
        span.name = match (kind, route) {
            (SpanKind::Server, Some(route)) => format!("{method} {route}").into(),
            _ => method.into(),
        };
    }
    // Server spans fail on 5xx (a 4xx is the client's error); client spans on 4xx and 5xx,
    // or when no response came.
    let threshold = if span.span_kind == SpanKind::Server {
        500
    } else {
        400
    };
    let failed = status.filter(|s| *s >= threshold);
    if matches!(span.status, Status::Unset) {
        if let Some(code) = failed {
            span.status = Status::error(format!("HTTP {code}"));
        } else if let Some(e) = &error {
            span.status = Status::error(e.clone());
        }
    }
    if let Some(code) = failed {
        span.attributes
            .push(KeyValue::new("error.type", code.to_string()));
    } else if error.is_some() {
        span.attributes.push(KeyValue::new("error.type", "_OTHER"));
    }
}
