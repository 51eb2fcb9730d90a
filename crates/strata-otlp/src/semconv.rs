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

/// What a span is, from its name and the module it was made in (tracing-opentelemetry records
/// `code.module.name`): one scan of its attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    /// From the network stack or a telemetry crate ([`strata_core::TELEMETRY_TARGETS`]): not
    /// exported.
    Telemetry,
    /// strata-request-id's server span.
    Server,
    /// strata-request-id's client span.
    Client,
    /// Anything else: exported as it is.
    Other,
}

/// The span's [`Class`], from one scan of its attributes.
pub(crate) fn classify(span: &SpanData) -> Class {
    let Some(module) = span
        .attributes
        .iter()
        .find(|kv| kv.key.as_str() == "code.module.name")
        .map(|kv| kv.value.as_str())
    else {
        return Class::Other;
    };
    match (span.name.as_ref(), module.as_ref()) {
        // strata-request-id's middleware spans only (its `request_span()` for other kinds of
        // requests is not HTTP).
        ("request", "strata_request_id::server") => Class::Server,
        ("http_client", "strata_request_id::client") => Class::Client,
        (_, m) if strata_core::is_telemetry_target(m) => Class::Telemetry,
        _ => Class::Other,
    }
}

fn int(value: &Value) -> Option<i64> {
    match value {
        Value::I64(n) => Some(*n),
        Value::String(s) => s.as_str().parse().ok(),
        _ => None,
    }
}

/// Rewrites `span` if it is one of strata-request-id's HTTP spans (its [`classify`]).
pub(crate) fn apply(span: &mut SpanData, class: Class) {
    let (kind, names) = match class {
        Class::Server => (SpanKind::Server, SERVER),
        Class::Client => (SpanKind::Client, CLIENT),
        Class::Telemetry | Class::Other => return,
    };
    let mut method = None;
    let mut route = None;
    let mut status = None;
    let mut error = None;
    let mut error_type = false;
    for kv in &mut span.attributes {
        if let Some((_, to)) = names.iter().find(|(from, _)| kv.key.as_str() == *from) {
            // `url.full` is an absolute URL; a client's origin-form target is a path.
            let to = if *to == "url.full" && !kv.value.as_str().contains("://") {
                "url.path"
            } else {
                to
            };
            kv.key = Key::from_static_str(to);
        }
        match kv.key.as_str() {
            "http.request.method" => method = Some(kv.value.as_str().into_owned()),
            "http.route" => route = Some(kv.value.as_str().into_owned()),
            "http.response.status_code" => {
                status = int(&kv.value);
                // The convention's integer, whatever the field's recorded type.
                if let Some(code) = status {
                    kv.value = Value::I64(code);
                }
            }
            "error" => error = Some(kv.value.as_str().into_owned()),
            "error.type" => error_type = true,
            _ => {}
        }
    }
    span.span_kind = kind.clone();
    if let Some(method) = method {
        // `{method} {route}` for servers, `{method}` for clients; `HTTP` for methods outside
        // the standard set.
        let method = if method == "_OTHER" {
            "HTTP".to_owned()
        } else {
            method
        };
        span.name = match (kind, route) {
            (SpanKind::Server, Some(route)) => format!("{method} {route}").into(),
            _ => method.into(),
        };
    }
    // Server spans fail on 5xx (a 4xx is the client's error); client spans on 4xx and 5xx,
    // or when no response came (`error` recorded: a transport error or a cancelled call).
    let threshold = if span.span_kind == SpanKind::Server {
        500
    } else {
        400
    };
    let failed = status.filter(|s| *s >= threshold);
    if matches!(span.status, Status::Unset) {
        if failed.is_some() {
            // No description: the status code says it.
            span.status = Status::error("");
        } else if let Some(e) = &error {
            span.status = Status::error(e.clone());
        }
    }
    if !error_type && matches!(span.status, Status::Error { .. }) {
        let value = failed.map_or_else(|| "_OTHER".to_owned(), |code| code.to_string());
        span.attributes.push(KeyValue::new("error.type", value));
    }
}
