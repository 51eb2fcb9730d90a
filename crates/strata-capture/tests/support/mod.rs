//! Shared by the integration tests.
#![allow(dead_code)]

pub(crate) mod panic_child;

use strata_core::{Classify, ErrorClass, SpanFields, TraceContext};
use tracing::Subscriber;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

/// An external error with an `io::Error` source.
#[derive(Debug)]
pub(crate) struct PaymentError(pub(crate) std::io::Error);
impl std::fmt::Display for PaymentError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("charging the card failed")
    }
}
impl std::error::Error for PaymentError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}
impl Classify for PaymentError {
    fn class(&self) -> ErrorClass {
        ErrorClass::External
    }
}

/// Sets a fixed trace context on every root span, as strata-otlp will.
pub(crate) struct FakeTrace(pub(crate) [u8; 16], pub(crate) [u8; 8]);
impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for FakeTrace {
    fn on_new_span(
        &self,
        _: &tracing::span::Attributes<'_>,
        id: &tracing::Id,
        ctx: Context<'_, S>,
    ) {
        let span = ctx.span(id).unwrap();
        if span.parent().is_none()
            && let Some(f) = span.extensions_mut().get_mut::<SpanFields>()
        {
            f.set_trace_context(TraceContext::new(self.0, self.1, true));
        }
    }
}
