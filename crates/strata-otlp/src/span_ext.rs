//! OpenTelemetry operations on `tracing` spans, for the spans strata's recorder exports.

use opentelemetry::trace::{Link, SpanContext, Status};
use opentelemetry::{Context, Key, KeyValue, Value};

use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::recorder::{Access, Op};

/// What OpenTelemetry adds to a `tracing::Span` exported by strata-otlp: a remote parent, the
/// span's context for propagation, links, attributes and a status set from code.
///
/// With [`crate::Otlp::with_tracing_opentelemetry`], each method does what tracing-opentelemetry's
/// `OpenTelemetrySpanExt` does. Each does nothing (and [`SpanExt::context`] returns an empty
/// context) when the span is disabled or no OpenTelemetry layer is installed.
///
/// ```
/// use strata_otlp::SpanExt;
///
/// let span = tracing::info_span!("charge");
/// span.set_attribute("payment.provider", "acme");
/// let _cx = span.context(); // to inject into an outgoing message
/// ```
pub trait SpanExt {
    /// Makes the span in `cx` this span's remote parent, and keeps `cx`'s baggage for it (and
    /// its children): made current while they are entered, sent on with their context. Only
    /// before the span is first entered, when its IDs are given; later it does nothing.
    fn set_parent(&self, cx: Context);

    /// The span's OpenTelemetry context: its trace and span IDs, sampling decision and trace
    /// state, with the baggage it carries. Gives the span its IDs if it has none yet.
    fn context(&self) -> Context;

    /// Links the span to another (a batch job to the requests it serves). Invalid contexts are
    /// ignored; at most 128 links are kept, more are counted as dropped.
    fn add_link(&self, cx: SpanContext) {
        self.add_link_with_attributes(cx, Vec::new());
    }

    /// [`SpanExt::add_link`] with attributes describing the link.
    fn add_link_with_attributes(&self, cx: SpanContext, attributes: Vec<KeyValue>);

    /// Sets an attribute on the exported span (not in log lines: record a `tracing` field for
    /// both).
    fn set_attribute(&self, key: impl Into<Key>, value: impl Into<Value>);

    /// Sets the exported span's status. `Ok` is final; an error replaces an earlier error.
    fn set_status(&self, status: Status);
}

impl SpanExt for tracing::Span {
    fn set_parent(&self, cx: Context) {
        if !strata(self) {
            // Fails only for a span already started.
            let _ = OpenTelemetrySpanExt::set_parent(self, cx);
            return;
        }
        run(self, Op::SetParent(cx));
    }

    fn context(&self) -> Context {
        if !strata(self) {
            return OpenTelemetrySpanExt::context(self);
        }
        let mut out = None;
        run(self, Op::Context(&mut out));
        out.unwrap_or_default()
    }

    fn add_link_with_attributes(&self, cx: SpanContext, attributes: Vec<KeyValue>) {
        if !strata(self) {
            OpenTelemetrySpanExt::add_link_with_attributes(self, cx, attributes);
        } else if cx.is_valid() {
            run(self, Op::Link(Link::new(cx, attributes, 0)));
        }
    }

    fn set_attribute(&self, key: impl Into<Key>, value: impl Into<Value>) {
        if !strata(self) {
            OpenTelemetrySpanExt::set_attribute(self, key, value);
            return;
        }
        run(self, Op::Attribute(KeyValue::new(key, value)));
    }

    fn set_status(&self, status: Status) {
        if !strata(self) {
            OpenTelemetrySpanExt::set_status(self, status);
            return;
        }
        run(self, Op::Status(status));
    }
}

/// Whether strata's recorder records `span` (else tracing-opentelemetry's layer may).
fn strata(span: &tracing::Span) -> bool {
    span.with_subscriber(|(_, dispatch)| dispatch.downcast_ref::<Access>().is_some())
        .unwrap_or(false)
}

fn run(span: &tracing::Span, op: Op<'_>) {
    span.with_subscriber(|(id, dispatch)| {
        if let Some(access) = dispatch.downcast_ref::<Access>() {
            (access.0)(dispatch, id, op);
        }
    });
}
