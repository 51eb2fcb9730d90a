//! W3C TraceContext and Baggage through strata-request-id: the server middleware continues an
//! incoming `traceparent` (and keeps its `baggage`), and `strata_request_id::inject` (and its
//! tower layer) sends the current ones.

use std::sync::Once;

use opentelemetry::propagation::{TextMapCompositePropagator, TextMapPropagator};
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};

use crate::SpanExt;

struct W3c(TextMapCompositePropagator);

impl W3c {
    fn new() -> W3c {
        W3c(TextMapCompositePropagator::new(vec![
            Box::new(TraceContextPropagator::new()),
            Box::new(BaggagePropagator::new()),
        ]))
    }
}

impl strata_request_id::Extractor for W3c {
    fn extract(&self, headers: &http::HeaderMap, span: &tracing::Span) {
        if !headers.contains_key("traceparent") && !headers.contains_key("baggage") {
            return;
        }
        let cx = self.0.extract(&HeaderExtractor(headers));
        // Before the span's first entry: the middleware has only just made it.
        span.set_parent(cx);
    }
}

impl strata_request_id::Injector for W3c {
    fn inject(&self, headers: &mut http::HeaderMap) {
        if headers.contains_key("traceparent") {
            return;
        }
        let cx = tracing::Span::current().context();
        self.0.inject_context(&cx, &mut HeaderInjector(headers));
    }
}

/// Registers W3C TraceContext and Baggage propagation with strata-request-id (once per process;
/// later calls do nothing): incoming `traceparent` headers become the request span's parent and
/// incoming `baggage` stays in its context, and outgoing requests carry the current span's
/// `traceparent` and the baggage.
pub fn install_propagation() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        strata_request_id::add_extractor(W3c::new());
        strata_request_id::add_injector(W3c::new());
    });
}
