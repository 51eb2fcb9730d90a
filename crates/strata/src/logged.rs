//! The log filter of JSON lines and OTLP log records, checked per event when it is static.
//!
//! A per-layer filter (`Layer::with_filter`) costs every span callback of the filtered layers
//! its bookkeeping (a filter bit per span, thread-local state per event): about half a
//! microsecond per request on the HTTP overhead benchmark. A log filter without span or field
//! directives (`info`, `warn,sqlx=error`…) depends on nothing but the event's metadata, so
//! [`Logged`] asks it only for events (and for span-close lines); the layers see every span
//! callback, which for them is keeping the span store. Filters with span or field directives
//! (`[request{user=bob}]=debug`) keep the per-layer filter, which tracks the spans they name.

use tracing::Level;
use tracing::span::{Attributes, Id, Record};
use tracing::{Dispatch, Event, Metadata, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

/// `inner` with a static log filter (see the module docs).
pub(crate) struct Logged<L> {
    inner: L,
    filter: EnvFilter,
}

impl<L> Logged<L> {
    /// `inner` back when `directives` name spans or fields: those need the per-layer filter.
    pub(crate) fn new(inner: L, directives: &str) -> Result<Self, L> {
        if directives.contains('[') {
            return Err(inner);
        }
        // Field values match as text (see `log_filter`); `directives` passed `p_filter`.
        let filter = EnvFilter::builder()
            .with_regex(false)
            .parse(directives)
            .unwrap_or_else(|_| EnvFilter::new("info"));
        Ok(Logged { inner, filter })
    }

    /// Whether lines and records of `meta` are wanted: the filter's verdict, and INFO spans
    /// and up always (their fields are inherited by the events inside them).
    fn wants<S>(&self, meta: &Metadata<'_>, ctx: Context<'_, S>) -> bool {
        (meta.is_span() && *meta.level() <= Level::INFO) || self.filter.enabled(meta, ctx)
    }
}

impl<S, L> Layer<S> for Logged<L>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    L: Layer<S>,
{
    fn on_register_dispatch(&self, subscriber: &Dispatch) {
        self.inner.on_register_dispatch(subscriber);
    }

    fn on_layer(&mut self, subscriber: &mut S) {
        self.inner.on_layer(subscriber);
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        self.inner.on_new_span(attrs, id, ctx);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        self.inner.on_record(id, values, ctx);
    }

    fn on_follows_from(&self, id: &Id, follows: &Id, ctx: Context<'_, S>) {
        self.inner.on_follows_from(id, follows, ctx);
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        if self.wants(event.metadata(), ctx.clone()) {
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
        // A span-close line only for the spans the filter wants.
        if ctx
            .metadata(&id)
            .is_some_and(|m| self.wants(m, ctx.clone()))
        {
            self.inner.on_close(id, ctx);
        }
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
