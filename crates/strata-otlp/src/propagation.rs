//! W3C TraceContext through strata-request-id: the server middleware continues an incoming
//! `traceparent`, and `strata_request_id::inject` (and its tower layer) sends the current one.

use std::sync::Once;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

struct W3c;

impl strata_request_id::Extractor for W3c {
    fn extract(&self, headers: &http::HeaderMap, span: &tracing::Span) {
        if !headers.contains_key("traceparent") {
            return;
        }
        let cx = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
        // Fails only when the span was already started, which the middleware never does.
        let _ = span.set_parent(cx);
    }
}

impl strata_request_id::Injector for W3c {
    fn inject(&self, headers: &mut http::HeaderMap) {
        if headers.contains_key("traceparent") {
            return;
        }
        let cx = tracing::Span::current().context();
        TraceContextPropagator::new().inject_context(&cx, &mut HeaderInjector(headers));
    }
}

/// Registers W3C TraceContext propagation with strata-request-id (once per process; later
/// calls do nothing): incoming `traceparent` headers become the request span's parent, and
/// outgoing requests carry the current span's `traceparent`.
pub fn install_propagation() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        strata_request_id::add_extractor(W3c);
        strata_request_id::add_injector(W3c);
    });
}
