//! Spans through tracing-opentelemetry's layer instead of strata's recorder
//! ([`crate::Otlp::with_tracing_opentelemetry`]): for code that uses
//! `tracing_opentelemetry::OpenTelemetrySpanExt`, or reads the current span from
//! `opentelemetry::Context::current()`. The SDK's spans go to the same batch processor, export
//! thread and encoder as the recorder's, and [`TraceIds`] copies their IDs into strata's span
//! store, so log lines and log records carry them as with the recorder.
//!
//! [`SpanEvents`] decides which tracing events become span events: tracing-opentelemetry
//! records every event inside a span as a span event, with all its fields. When log records are
//! exported, the same event already reaches the backend as a log record carrying the span's
//! trace context, so the span keeps only its warnings and errors — recording the others costs
//! every request's thread and the export thread as much again, for a copy. (OpenTelemetry
//! itself is moving events from span events to log records: OTEP 4430.)

use std::time::Duration;

use opentelemetry::Context as OtelContext;
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{Span, SpanData, SpanProcessor};
use strata_core::{TraceContext, store};
use tracing_core::span::{Attributes, Id, Record};
use tracing_core::subscriber::Interest;
use tracing_core::{Dispatch, Event, LevelFilter, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

use crate::batch::Batch;
use crate::recorder::Finished;

/// `inner` (tracing-opentelemetry's layer), given only the events at or above `max` (more
/// severe) and every ERROR event (it marks its span failed); everything else (spans, enter/exit, records, downcasts for
/// `OpenTelemetrySpanExt`) goes through untouched.
pub(crate) struct SpanEvents<L> {
    pub(crate) inner: L,
    pub(crate) max: LevelFilter,
}

impl<S: Subscriber, L: Layer<S>> Layer<S> for SpanEvents<L> {
    fn on_register_dispatch(&self, subscriber: &Dispatch) {
        self.inner.on_register_dispatch(subscriber);
    }

    fn on_layer(&mut self, subscriber: &mut S) {
        self.inner.on_layer(subscriber);
    }

    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        self.inner.register_callsite(metadata)
    }

    fn enabled(&self, metadata: &Metadata<'_>, ctx: Context<'_, S>) -> bool {
        self.inner.enabled(metadata, ctx)
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        self.inner.on_new_span(attrs, id, ctx);
    }

    fn on_record(&self, span: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        self.inner.on_record(span, values, ctx);
    }

    fn on_follows_from(&self, span: &Id, follows: &Id, ctx: Context<'_, S>) {
        self.inner.on_follows_from(span, follows, ctx);
    }

    fn event_enabled(&self, event: &Event<'_>, ctx: Context<'_, S>) -> bool {
        self.inner.event_enabled(event, ctx)
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let level = *event.metadata().level();
        if self.max >= level || level == tracing_core::Level::ERROR {
            self.inner.on_event(event, ctx);
        }
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        self.inner.on_enter(id, ctx);
    }

    fn on_exit(&self, id: &Id, ctx: Context<'_, S>) {
        self.inner.on_exit(id, ctx);
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        self.inner.on_close(id, ctx);
    }

    fn on_id_change(&self, old: &Id, new: &Id, ctx: Context<'_, S>) {
        self.inner.on_id_change(old, new, ctx);
    }

    unsafe fn downcast_raw(&self, id: std::any::TypeId) -> Option<*const ()> {
        if id == std::any::TypeId::of::<Self>() {
            return Some(std::ptr::from_ref(self).cast());
        }
        // SAFETY: forwarded to the wrapped layer, which upholds the contract.
        unsafe { self.inner.downcast_raw(id) }
    }
}

/// The SDK's span processor: finished, sampled spans go to strata's batch processor.
pub(crate) struct SdkSpans(pub(crate) Batch<Finished>);

impl std::fmt::Debug for SdkSpans {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SdkSpans")
    }
}

impl SpanProcessor for SdkSpans {
    fn on_start(&self, _span: &mut Span, _cx: &OtelContext) {}

    fn on_end(&self, span: SpanData) {
        if span.span_context.is_sampled() {
            self.0.push(Finished::Sdk(Box::new(span)));
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.0.flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.0.shutdown(timeout)
    }
}

/// Copies each span's OpenTelemetry trace and span IDs into strata-core's span store.
/// Must come after tracing-opentelemetry's layer ([`crate::OtlpGuard::layer`] composes them so): its
/// `on_enter` has just made the span's OpenTelemetry context current (context activation),
/// so the IDs are one thread-local read away.
pub(crate) struct TraceIds(pub(crate) strata_core::StoreKeeper);

impl<S> Layer<S> for TraceIds
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    // The span store, when no `StoreLayer` keeps it.
    fn on_register_dispatch(&self, subscriber: &Dispatch) {
        self.0.on_register_dispatch(subscriber);
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        self.0.on_new_span(attrs, id, &ctx);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        self.0.on_record(id, values, &ctx);
    }

    // Filled at the span's first entry, not its creation: until then its parent may still be
    // set (an incoming `traceparent`), and starting the OpenTelemetry span earlier would fix it.
    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut ext = span.extensions_mut();
        let Some(fields) = ext.get_mut::<store::SpanFields>() else {
            return;
        };
        if fields.trace_context().is_some() {
            return;
        }
        opentelemetry::Context::map_current(|cx| {
            let span = cx.span();
            let sc = span.span_context();
            if sc.is_valid() {
                fields.set_trace_context(TraceContext::new(
                    sc.trace_id().to_bytes(),
                    sc.span_id().to_bytes(),
                    sc.is_sampled(),
                ));
            }
        });
    }
}
