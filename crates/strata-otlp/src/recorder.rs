//! strata's span recorder: the tracing layer that turns spans into OpenTelemetry spans.
//!
//! The application's thread does as little as it can. A span's fields are already captured,
//! typed, in strata-core's span store (for the JSON lines); its creation time too. At the
//! span's first entry the recorder gives it its IDs (the parent's trace, or a remote parent's,
//! or a new one), asks the sampler and writes the IDs into the store, where every log line and
//! log record of the span finds them. At close it copies the fields and queues one
//! [`SpanRecord`]; the export thread turns records into the SDK's `SpanData` (names, kinds and
//! statuses from `otel.*` fields, attributes, `code.*` from the callsite), then the semantic
//! conventions, redaction and the encoder run there as before.
//!
//! Nothing else runs per span: no OpenTelemetry context is built or made current at every
//! poll, no timing at every entry, no span builder and SDK span per span (what
//! tracing-opentelemetry does: the largest of strata's costs on a request's thread before).
//! Only spans with more to say carry an [`Extra`] (a remote parent and its baggage, span
//! events, links, an error status, attributes set from code).

use std::borrow::Cow;
use std::cell::RefCell;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use opentelemetry::baggage::BaggageExt;
use opentelemetry::trace::{
    Event, Link, SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags, TraceId,
    TraceState,
};
use opentelemetry::{Context, ContextGuard, InstrumentationScope, KeyValue, StringValue, Value};
use opentelemetry_sdk::trace::{
    IdGenerator, RandomIdGenerator, Sampler, SamplingDecision, ShouldSample, SpanData, SpanEvents,
    SpanLinks,
};
use strata_core::TraceContext;
use strata_core::store::{FieldValue, SpanFields, StoredField};
use tracing_core::field::{Field, Visit};
use tracing_core::span::{Attributes, Id, Record};
use tracing_core::{Dispatch, Event as TracingEvent, Level, LevelFilter, Metadata, Subscriber};
use tracing_subscriber::layer::{Context as LayerContext, Layer};
use tracing_subscriber::registry::{LookupSpan, SpanRef};

use crate::batch::Batch;

/// Span events and links kept per span at most; more are counted as dropped.
const MAX_EVENTS: usize = 128;

/// A finished span as the application's thread queues it; [`SpanRecord::into_data`] makes the
/// SDK's `SpanData` of it on the export thread.
pub(crate) struct SpanRecord {
    meta: &'static Metadata<'static>,
    /// The span's IDs (its trace state is in `extra`).
    trace: TraceContext,
    /// The parent's span ID, and whether it is remote.
    parent: Option<(SpanId, bool)>,
    start: SystemTime,
    end: SystemTime,
    fields: Copied,
    extra: Option<Box<Extra>>,
}

/// A span's fields as the recorder copies them at close: every text in one buffer, so the copy
/// is two allocations however many string fields the span has (each is freed on the export
/// thread; many small ones freed there cost the application's allocator more).
#[derive(Default)]
struct Copied {
    text: String,
    items: Vec<(&'static str, Scalar)>,
}

/// One copied value; text as its range in [`Copied::text`].
#[derive(Clone, Copy)]
enum Scalar {
    Bool(bool),
    Int(i64),
    F64(f64),
    Text(usize, usize),
}

impl Copied {
    fn of(fields: &[StoredField]) -> Copied {
        let len = fields
            .iter()
            .map(|f| f.value().as_str().map_or(0, str::len))
            .sum();
        let mut c = Copied {
            text: String::with_capacity(len),
            items: Vec::with_capacity(fields.len()),
        };
        for f in fields {
            let v = match f.value() {
                FieldValue::Bool(b) => Scalar::Bool(*b),
                FieldValue::I64(n) => Scalar::Int(*n),
                FieldValue::U64(n) => c.int(*n),
                FieldValue::I128(n) => c.int(*n),
                FieldValue::U128(n) => c.int(*n),
                FieldValue::F64(x) => Scalar::F64(*x),
                FieldValue::Str(s) => c.push(s),
                // An error: its message.
                other => {
                    let text = other.to_string();
                    c.push(&text)
                }
            };
            c.items.push((f.name(), v));
        }
        c
    }

    /// An `i64` when it fits, its decimal text otherwise.
    fn int<T: TryInto<i64> + std::fmt::Display + Copy>(&mut self, n: T) -> Scalar {
        match n.try_into() {
            Ok(i) => Scalar::Int(i),
            Err(_) => {
                let text = n.to_string();
                self.push(&text)
            }
        }
    }

    fn push(&mut self, s: &str) -> Scalar {
        let start = self.text.len();
        self.text.push_str(s);
        Scalar::Text(start, self.text.len())
    }

    /// The value as text (for the `otel.*` fields).
    fn show(&self, v: Scalar) -> String {
        match v {
            Scalar::Bool(b) => b.to_string(),
            Scalar::Int(n) => n.to_string(),
            Scalar::F64(x) => x.to_string(),
            Scalar::Text(a, b) => self.text[a..b].to_owned(),
        }
    }

    /// The value as an OpenTelemetry value.
    fn value(&self, v: Scalar) -> Value {
        match v {
            Scalar::Bool(b) => Value::Bool(b),
            Scalar::Int(n) => Value::I64(n),
            Scalar::F64(x) => Value::F64(x),
            Scalar::Text(a, b) => Value::String(self.text[a..b].to_owned().into()),
        }
    }
}

/// What a span carries beyond its store's fields, for the few spans that need it.
#[derive(Default)]
pub(crate) struct Extra {
    /// A remote parent set before the first entry ([`crate::SpanExt::set_parent`]).
    remote: Option<Context>,
    /// The baggage made current while the span is entered (a remote parent's, inherited).
    baggage: Option<Context>,
    trace_state: TraceState,
    events: Vec<Event>,
    dropped_events: u32,
    links: Vec<Link>,
    dropped_links: u32,
    attributes: Vec<KeyValue>,
    status: Status,
}

/// A finished span waiting for export: the recorder's, or the SDK's
/// ([`crate::Otlp::with_tracing_opentelemetry`]).
pub(crate) enum Finished {
    Recorded(SpanRecord),
    Sdk(Box<SpanData>),
}

impl Finished {
    /// The SDK's span data of this span (on the export thread).
    pub(crate) fn into_data(self, scope: &InstrumentationScope) -> SpanData {
        match self {
            Finished::Recorded(r) => r.into_data(scope),
            Finished::Sdk(data) => *data,
        }
    }
}

/// What the recorder shares with [`crate::OtlpGuard`].
pub(crate) struct Tracer {
    pub(crate) batch: Batch<Finished>,
    pub(crate) sampler: Sampler,
}

/// Some span of this process has had baggage to make current; until then entering and
/// leaving a span skips looking for it.
static BAGGAGE: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// The baggage contexts made current on this thread, by span.
    static ATTACHED: RefCell<Vec<(Id, ContextGuard)>> = const { RefCell::new(Vec::new()) };
}

/// The recorder layer (see the module docs).
pub(crate) struct Recorder<S> {
    tracer: Arc<Tracer>,
    /// Keeps the span store when no `StoreLayer` does.
    store: strata_core::StoreKeeper,
    /// Events at this level or more severe become span events (ERROR ones always).
    max: LevelFilter,
    access: Access,
    _subscriber: PhantomData<fn(S)>,
}

impl<S> Recorder<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    pub(crate) fn new(tracer: Arc<Tracer>, max: LevelFilter) -> Self {
        strata_core::store::want_span_timing();
        Recorder {
            tracer,
            store: strata_core::StoreKeeper::new(),
            max,
            access: Access(Self::access),
            _subscriber: PhantomData,
        }
    }

    /// The span's context, starting the span (IDs, sampling) first if it was not yet; `None`
    /// for a span without a store (no strata store layer installed).
    fn start(&self, span: &SpanRef<'_, S>) -> Option<SpanContext> {
        if let Some(sc) = self.started_opt(span) {
            return sc;
        }
        let remote = span
            .extensions()
            .get::<Extra>()
            .and_then(|e| e.remote.clone());
        let (parent, baggage) = match &remote {
            Some(cx) => {
                let sc = cx.span().span_context().clone();
                let baggage = (!cx.baggage().is_empty()).then(|| cx.clone());
                (sc.is_valid().then_some(sc), baggage)
            }
            None => match span.parent() {
                Some(p) => {
                    let sc = self.start(&p);
                    let baggage = p
                        .extensions()
                        .get::<Extra>()
                        .and_then(|e| e.baggage.clone());
                    (sc, baggage)
                }
                None => (None, None),
            },
        };
        let ids = RandomIdGenerator::default();
        let trace_id = parent
            .as_ref()
            .map_or_else(|| ids.new_trace_id(), SpanContext::trace_id);
        let meta = span.metadata();
        let result = {
            let ext = span.extensions();
            let fields = ext.get::<SpanFields>();
            let name = fields
                .and_then(|f| f.get("otel.name"))
                .map_or(Cow::Borrowed(meta.name()), |v| Cow::Owned(v.to_string()));
            let kind = fields
                .and_then(|f| f.get("otel.kind"))
                .map_or(SpanKind::Internal, |v| kind(&v.to_string()));
            let parent_cx = parent
                .as_ref()
                .map(|sc| Context::new().with_remote_span_context(sc.clone()));
            drop(ext);
            self.tracer
                .sampler
                .should_sample(parent_cx.as_ref(), trace_id, &name, &kind, &[], &[])
        };
        let sampled = result.decision == SamplingDecision::RecordAndSample;
        let span_id = ids.new_span_id();
        let mut ext = span.extensions_mut();
        let fields = ext.get_mut::<SpanFields>()?;
        if fields.trace_context().is_some() {
            // Started meanwhile on another thread.
            drop(ext);
            return self.started_opt(span).flatten();
        }
        let trace = TraceContext::new(trace_id.to_bytes(), span_id.to_bytes(), sampled);
        fields.set_trace_context(trace);
        let state = result.trace_state;
        if !state.header().is_empty() || !result.attributes.is_empty() || baggage.is_some() {
            if baggage.is_some() {
                BAGGAGE.store(true, Ordering::Relaxed);
            }
            let extra = extra_mut(&mut ext);
            extra.trace_state = state.clone();
            extra.attributes.extend(result.attributes);
            extra.baggage = baggage;
        }
        Some(span_context(&trace, state))
    }

    /// `Some(context)` when the span is started, `Some(None)` when it has no store, `None`
    /// when it is not started yet.
    fn started_opt(&self, span: &SpanRef<'_, S>) -> Option<Option<SpanContext>> {
        let ext = span.extensions();
        let Some(fields) = ext.get::<SpanFields>() else {
            return Some(None);
        };
        let trace = *fields.trace_context()?;
        let state = ext
            .get::<Extra>()
            .map(|e| e.trace_state.clone())
            .unwrap_or_default();
        Some(Some(span_context(&trace, state)))
    }

    /// What [`crate::SpanExt`] asks of span `id` (found through the dispatcher).
    fn access(dispatch: &Dispatch, id: &Id, op: Op<'_>) {
        let (Some(subscriber), Some(this)) = (
            dispatch.downcast_ref::<S>(),
            dispatch.downcast_ref::<Self>(),
        ) else {
            return;
        };
        let Some(span) = subscriber.span(id) else {
            return;
        };
        match op {
            Op::SetParent(cx) => {
                let mut ext = span.extensions_mut();
                let started = ext
                    .get_mut::<SpanFields>()
                    .is_some_and(|f| f.trace_context().is_some());
                if !started {
                    extra_mut(&mut ext).remote = Some(cx);
                }
            }
            Op::Context(out) => {
                if let Some(sc) = this.start(&span) {
                    let ext = span.extensions();
                    let base = ext
                        .get::<Extra>()
                        .and_then(|e| e.baggage.clone())
                        .unwrap_or_default();
                    *out = Some(base.with_remote_span_context(sc));
                }
            }
            Op::Link(link) => {
                extra_mut(&mut span.extensions_mut()).link(link);
            }
            Op::Attribute(kv) => {
                extra_mut(&mut span.extensions_mut()).attributes.push(kv);
            }
            Op::Status(status) => {
                let mut ext = span.extensions_mut();
                let extra = extra_mut(&mut ext);
                // Ok is final; an error replaces unset or an earlier error.
                if !matches!(extra.status, Status::Ok) {
                    extra.status = status;
                }
            }
        }
    }
}

/// The span's trace context in its store, once it has one.
fn trace_of<S>(span: &SpanRef<'_, S>) -> Option<TraceContext>
where
    S: for<'a> LookupSpan<'a>,
{
    span.extensions()
        .get::<SpanFields>()
        .and_then(|f| f.trace_context().copied())
}

/// A local span context from strata's trace context.
fn span_context(trace: &TraceContext, state: TraceState) -> SpanContext {
    SpanContext::new(
        TraceId::from_bytes(trace.trace_id),
        SpanId::from_bytes(trace.span_id),
        flags(trace),
        false,
        state,
    )
}

/// The W3C trace flags of strata's trace context.
pub(crate) fn flags(trace: &TraceContext) -> TraceFlags {
    if trace.sampled {
        TraceFlags::SAMPLED
    } else {
        TraceFlags::default()
    }
}

fn extra_mut<'a>(ext: &'a mut tracing_subscriber::registry::ExtensionsMut<'_>) -> &'a mut Extra {
    if ext.get_mut::<Extra>().is_none() {
        ext.insert(Extra::default());
    }
    ext.get_mut::<Extra>().expect("inserted above")
}

impl Extra {
    fn link(&mut self, link: Link) {
        if self.links.len() < MAX_EVENTS {
            self.links.push(link);
        } else {
            self.dropped_links += 1;
        }
    }
}

/// An operation of [`crate::SpanExt`] on one span.
pub(crate) enum Op<'a> {
    SetParent(Context),
    Context(&'a mut Option<Context>),
    Link(Link),
    Attribute(KeyValue),
    Status(Status),
}

/// Found through the dispatcher by [`crate::SpanExt`]: runs an [`Op`] on a span.
#[derive(Clone, Copy)]
pub(crate) struct Access(pub(crate) fn(&Dispatch, &Id, Op<'_>));

impl<S> Layer<S> for Recorder<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    // The span store holds the fields the recorder reads and the IDs it gives. With a
    // `StoreLayer` in the subscriber (strata's facade puts one first) that layer keeps it;
    // without, the recorder does.
    fn on_register_dispatch(&self, subscriber: &Dispatch) {
        self.store.on_register_dispatch(subscriber);
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: LayerContext<'_, S>) {
        self.store.on_new_span(attrs, id, &ctx);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: LayerContext<'_, S>) {
        self.store.on_record(id, values, &ctx);
    }

    // Started at the first entry, not at creation: until then a remote parent may still be set
    // (the request-ID middleware does so from an incoming `traceparent`).
    fn on_enter(&self, id: &Id, ctx: LayerContext<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let started = span
            .extensions()
            .get::<SpanFields>()
            .is_none_or(|f| f.trace_context().is_some());
        if !started {
            self.start(&span);
        }
        if BAGGAGE.load(Ordering::Relaxed) {
            let baggage = span
                .extensions()
                .get::<Extra>()
                .and_then(|e| e.baggage.clone());
            if let Some(cx) = baggage {
                let guard = cx.attach();
                ATTACHED.with(|a| a.borrow_mut().push((id.clone(), guard)));
            }
        }
    }

    fn on_exit(&self, id: &Id, _ctx: LayerContext<'_, S>) {
        if BAGGAGE.load(Ordering::Relaxed) {
            let guard = ATTACHED.with(|a| {
                let mut a = a.borrow_mut();
                let i = a.iter().rposition(|(i, _)| i == id)?;
                Some(a.remove(i))
            });
            drop(guard);
        }
    }

    fn on_event(&self, event: &TracingEvent<'_>, ctx: LayerContext<'_, S>) {
        let level = *event.metadata().level();
        // ERROR events always: one marks its span failed, and says why.
        let error = level == Level::ERROR;
        if !error && self.max < level {
            return;
        }
        let Some(span) = ctx.event_span(event) else {
            return;
        };
        if !self.start(&span).is_some_and(|sc| sc.is_sampled()) {
            return;
        }
        let mut fields = EventFields::default();
        event.record(&mut fields);
        let mut ext = span.extensions_mut();
        let extra = extra_mut(&mut ext);
        if error && matches!(extra.status, Status::Unset) {
            extra.status = Status::error("");
        }
        if extra.events.len() >= MAX_EVENTS {
            extra.dropped_events += 1;
            return;
        }
        let meta = event.metadata();
        let mut attributes = fields.attributes;
        attributes.push(KeyValue::new("level", meta.level().as_str()));
        attributes.push(KeyValue::new("target", meta.target()));
        let name = fields
            .message
            .map_or(Cow::Borrowed(meta.name()), Cow::Owned);
        extra
            .events
            .push(Event::new(name, SystemTime::now(), attributes, 0));
    }

    fn on_follows_from(&self, id: &Id, follows: &Id, ctx: LayerContext<'_, S>) {
        let (Some(span), Some(other)) = (ctx.span(id), ctx.span(follows)) else {
            return;
        };
        if let Some(sc) = self.start(&other) {
            extra_mut(&mut span.extensions_mut()).link(Link::with_context(sc));
        }
    }

    fn on_close(&self, id: Id, ctx: LayerContext<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let trace = match trace_of(&span) {
            Some(trace) => trace,
            // Never entered: started now.
            None => match self.start(&span) {
                Some(_) => match trace_of(&span) {
                    Some(trace) => trace,
                    None => return,
                },
                None => return,
            },
        };
        if !trace.sampled {
            return;
        }
        let end = SystemTime::now();
        let local_parent = span
            .parent()
            .and_then(|p| trace_of(&p))
            .map(|t| (SpanId::from_bytes(t.span_id), false));
        let mut ext = span.extensions_mut();
        let extra = ext.remove::<Extra>();
        let parent = match extra.as_ref().and_then(|e| e.remote.as_ref()) {
            Some(cx) if cx.span().span_context().is_valid() => {
                Some((cx.span().span_context().span_id(), true))
            }
            _ => local_parent,
        };
        let Some(fields) = ext.get_mut::<SpanFields>() else {
            return;
        };
        let start = fields
            .opened()
            .and_then(|opened| end.checked_sub(opened.elapsed()))
            .unwrap_or(end);
        let record = SpanRecord {
            meta: span.metadata(),
            trace,
            parent,
            start,
            end,
            fields: Copied::of(fields.fields()),
            extra: extra.map(Box::new),
        };
        drop(ext);
        self.tracer.batch.push(Finished::Recorded(record));
    }

    unsafe fn downcast_raw(&self, id: std::any::TypeId) -> Option<*const ()> {
        if id == std::any::TypeId::of::<Self>() {
            Some(std::ptr::from_ref(self).cast())
        } else if id == std::any::TypeId::of::<Access>() {
            Some(std::ptr::from_ref(&self.access).cast())
        } else {
            None
        }
    }
}

/// A span event's name (the message) and attributes.
#[derive(Default)]
struct EventFields {
    message: Option<String>,
    attributes: Vec<KeyValue>,
}

impl Visit for EventFields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let text = format!("{value:?}");
        if field.name() == "message" {
            self.message = Some(text);
        } else {
            self.attributes.push(KeyValue::new(field.name(), text));
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = Some(value.to_owned());
        } else {
            self.attributes
                .push(KeyValue::new(field.name(), value.to_owned()));
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.attributes.push(KeyValue::new(field.name(), value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.attributes.push(KeyValue::new(field.name(), value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.attributes
            .push(KeyValue::new(field.name(), int(value)));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.attributes.push(KeyValue::new(field.name(), value));
    }

    /// The semantic conventions' `exception.message`, and the `source()` chain as
    /// `exception.stacktrace` (tracing-opentelemetry's mapping: Rust has no stable backtrace
    /// of an error), besides the field itself.
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        let message = value.to_string();
        let chain: Vec<StringValue> = std::iter::successors(value.source(), |e| e.source())
            .map(|e| e.to_string().into())
            .collect();
        self.attributes
            .push(KeyValue::new("exception.message", message.clone()));
        self.attributes.push(KeyValue::new(
            "exception.stacktrace",
            Value::Array(chain.into()),
        ));
        self.attributes.push(KeyValue::new(field.name(), message));
    }
}

/// An integer as an OpenTelemetry value: an `i64` when it fits, its decimal text otherwise.
fn int<T: TryInto<i64> + std::fmt::Display + Copy>(n: T) -> Value {
    n.try_into()
        .map_or_else(|_| Value::String(n.to_string().into()), Value::I64)
}

/// `otel.kind`'s value as a span kind (tracing-opentelemetry's spelling).
fn kind(s: &str) -> SpanKind {
    match s {
        s if s.eq_ignore_ascii_case("server") => SpanKind::Server,
        s if s.eq_ignore_ascii_case("client") => SpanKind::Client,
        s if s.eq_ignore_ascii_case("producer") => SpanKind::Producer,
        s if s.eq_ignore_ascii_case("consumer") => SpanKind::Consumer,
        _ => SpanKind::Internal,
    }
}

impl SpanRecord {
    /// The SDK's span data of this record (on the export thread).
    fn into_data(self, scope: &InstrumentationScope) -> SpanData {
        let meta = self.meta;
        let extra = self.extra.map(|e| *e).unwrap_or_default();
        let mut name = Cow::Borrowed(meta.name());
        let mut kind_ = SpanKind::Internal;
        let mut status = extra.status;
        let mut code = None;
        let mut description = None;
        let fields = self.fields;
        let mut attributes = Vec::with_capacity(fields.items.len() + extra.attributes.len() + 3);
        if let Some(file) = meta.file() {
            attributes.push(KeyValue::new("code.file.path", file));
        }
        if let Some(module) = meta.module_path() {
            attributes.push(KeyValue::new("code.module.name", module));
        }
        if let Some(line) = meta.line() {
            attributes.push(KeyValue::new("code.line.number", i64::from(line)));
        }
        for &(field_name, v) in &fields.items {
            match field_name {
                "otel.name" => name = Cow::Owned(fields.show(v)),
                "otel.kind" => kind_ = kind(&fields.show(v)),
                "otel.status_code" => code = Some(fields.show(v)),
                "otel.status_description" | "otel.status_message" => {
                    description = Some(fields.show(v));
                }
                _ => attributes.push(KeyValue::new(field_name, fields.value(v))),
            }
        }
        attributes.extend(extra.attributes);
        match code.as_deref() {
            Some(c) if c.eq_ignore_ascii_case("ok") => status = Status::Ok,
            Some(c) if c.eq_ignore_ascii_case("error") => {
                status = Status::error(description.unwrap_or_default());
            }
            _ => {}
        }
        SpanData {
            span_context: span_context(&self.trace, extra.trace_state),
            parent_span_id: self.parent.map_or(SpanId::INVALID, |p| p.0),
            parent_span_is_remote: self.parent.is_some_and(|p| p.1),
            span_kind: kind_,
            name,
            start_time: self.start,
            end_time: self.end,
            attributes,
            dropped_attributes_count: 0,
            events: {
                let mut events = SpanEvents::default();
                events.events = extra.events;
                events.dropped_count = extra.dropped_events;
                events
            },
            links: {
                let mut links = SpanLinks::default();
                links.links = extra.links;
                links.dropped_count = extra.dropped_links;
                links
            },
            status,
            instrumentation_scope: scope.clone(),
        }
    }
}
