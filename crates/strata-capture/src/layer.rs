//! The capture layer: every event at or above the breadcrumb level becomes a breadcrumb; every
//! ERROR/CRITICAL event (not of the business class) becomes an error event, gathered on the
//! caller's thread (message, chain, context, breadcrumbs, an unresolved stack) and finished on
//! the capture thread.

use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::mpsc::TrySendError;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde_json::{Map, Value};
use strata_core::{ErrorClass, FieldValue, Severity, encode, store};
use tracing_core::field::{Field, Visit};
use tracing_core::span::{Attributes, Id};
use tracing_core::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::{LookupSpan, SpanRef};

use crate::crumbs::{Crumb, CrumbVisitor, Crumbs, Ring, SharedRing, lock};
use crate::event::{ChainLink, RequestContext};
use crate::worker::{Job, Msg, Shared};

/// The breadcrumb ring of a request, kept in the extensions of the span that started it (a
/// root span, or one with a `request_id`/job field) and every descendant; `true` in the span
/// that owns it.
struct RequestRing(SharedRing, bool);

/// Bumped whenever a span owning a ring closes: per-thread caches of "span → ring" older than
/// that are not trusted (span IDs are reused).
static RING_EPOCH: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Fields that mark a span as the start of a request or job: it gets a ring of its own even
/// inside a long-lived span (a server's or a worker's).
const STARTS_REQUEST: &[&str] = &["request_id", "job", "job.name", "http.request.method"];

/// The layer; made by [`Capture::start`](crate::Capture::start).
#[derive(Clone)]
pub struct CaptureLayer {
    pub(crate) shared: Arc<Shared>,
}

impl fmt::Debug for CaptureLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaptureLayer")
            .field("stats", &self.shared.stats())
            .finish_non_exhaustive()
    }
}

impl CaptureLayer {
    /// What the capture has done so far.
    pub fn stats(&self) -> crate::CaptureStats {
        self.shared.stats()
    }
}

impl<S> Layer<S> for CaptureLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let fields = attrs.metadata().fields();
        let starts = STARTS_REQUEST.iter().any(|f| fields.field(f).is_some());
        let inherited = if starts {
            None
        } else {
            span.parent().and_then(|p| {
                p.extensions()
                    .get::<RequestRing>()
                    .map(|r| Arc::clone(&r.0))
            })
        };
        let ring = match inherited {
            Some(r) => RequestRing(r, false),
            // Twice the breadcrumbs kept: the slack lets the capture thread copy an error's
            // history after the request has logged more.
            None => RequestRing(
                Arc::new(Mutex::new(Ring::new(
                    self.shared.cfg.breadcrumbs.saturating_mul(2),
                ))),
                true,
            ),
        };
        span.extensions_mut().insert(ring);
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        if ctx
            .span(&id)
            .is_some_and(|s| s.extensions().get::<RequestRing>().is_some_and(|r| r.1))
        {
            RING_EPOCH.fetch_add(1, Ordering::Release);
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let cfg = &self.shared.cfg;
        let meta = event.metadata();
        let severity = Severity::of(meta);
        let capture = severity >= cfg.capture_min;
        if severity < cfg.crumb_min && !capture {
            return;
        }
        if capture {
            self.capture(event, severity, ctx.event_span(event).as_ref());
            return;
        }
        // The hot path: find the request's ring through a per-thread cache keyed by the span's
        // ID, trusted only while no ring-owning span has closed since (IDs are reused).
        let id = if event.is_contextual() {
            ctx.current_span().id().cloned()
        } else {
            event.parent().cloned()
        };
        let ring = id.and_then(|id| {
            let epoch = RING_EPOCH.load(Ordering::Acquire);
            RING_CACHE
                .try_with(|cache| {
                    let mut cache = cache.try_borrow_mut().ok()?;
                    if let Some((layer, cached, at, ring)) = &*cache
                        && *layer == self.shared.id
                        && *cached == id
                        && *at == epoch
                    {
                        return Some(Arc::clone(ring));
                    }
                    let span = ctx.span(&id)?;
                    let ring = Arc::clone(&span.extensions().get::<RequestRing>()?.0);
                    *cache = Some((self.shared.id, id, epoch, Arc::clone(&ring)));
                    Some(ring)
                })
                .ok()
                .flatten()
        });
        let class = record_crumb(
            &self.shared,
            ring.as_deref(),
            event,
            severity,
            meta.target(),
        );
        if class == Some(ErrorClass::Business) {
            self.shared
                .counters
                .business
                .fetch_add(1, Ordering::Relaxed);
        }
    }
}

thread_local! {
    /// (layer, span, epoch, that span's request ring) of the last breadcrumb on this thread.
    static RING_CACHE: std::cell::RefCell<Option<(u64, Id, u64, SharedRing)>> =
        const { std::cell::RefCell::new(None) };
    /// The breadcrumb being written: filled with no lock held (the application's `Debug` and
    /// `Display` code runs here, and may log or panic), then swapped into the ring's slot.
    static SCRATCH: std::cell::RefCell<Crumb> = const { std::cell::RefCell::new(Crumb::empty()) };
}

/// Whether an event comes from the HTTP middleware's access line (strata-request-id's server
/// writes no other ERROR): not captured when its request already captured an error, so a failed
/// request makes one issue, not two — and a request that failed without logging why (a bare
/// 500) is still captured through its access line.
fn is_access_line(target: &str) -> bool {
    target == "strata_request_id::server"
}

/// The request ring of `span`, if it is in a request.
fn ring_of<S>(span: Option<&SpanRef<'_, S>>) -> Option<SharedRing>
where
    S: for<'a> LookupSpan<'a>,
{
    let span = span?;
    let ext = span.extensions();
    ext.get::<RequestRing>().map(|r| Arc::clone(&r.0))
}

/// Records `event` as a breadcrumb in `ring` (its request's), or this thread's; returns its
/// class. An event logged while this thread is writing a breadcrumb (from a `Debug` impl) is
/// not recorded, and no ring lock is held while the event's values are formatted.
fn record_crumb(
    shared: &Shared,
    ring: Option<&std::sync::Mutex<Ring>>,
    event: &Event<'_>,
    severity: Severity,
    target: &'static str,
) -> Option<ErrorClass> {
    SCRATCH
        .try_with(|scratch| {
            let mut crumb = scratch.try_borrow_mut().ok()?;
            let mut v = CrumbVisitor::new(&mut crumb, severity, target, shared.cfg.max_len);
            event.record(&mut v);
            let class = v.class;
            match ring {
                Some(r) => lock(r).push(&mut crumb),
                None => shared
                    .threads
                    .with_local(shared.id, shared.cfg.breadcrumbs, |r| r.push(&mut crumb)),
            }
            class
        })
        .ok()
        .flatten()
}

impl CaptureLayer {
    fn capture<S>(&self, event: &Event<'_>, severity: Severity, span: Option<&SpanRef<'_, S>>)
    where
        S: for<'a> LookupSpan<'a>,
    {
        let shared = &self.shared;
        let cfg = &shared.cfg;
        let meta = event.metadata();
        let mut v = ErrorVisitor {
            max: cfg.max_len,
            ..ErrorVisitor::default()
        };
        event.record(&mut v);
        // The breadcrumbs before this error (it joins them afterwards).
        let ring = ring_of(span);
        // A request's history is copied on the capture thread (the caller only notes where it
        // ends); the process-wide one, from every thread's ring, here.
        let crumbs = match &ring {
            Some(r) => Crumbs::Later {
                upto: lock(r).pushed(),
                ring: Arc::clone(r),
                cap: cfg.breadcrumbs,
            },
            None => Crumbs::Now(shared.threads.snapshot(cfg.breadcrumbs)),
        };
        record_crumb(shared, ring.as_deref(), event, severity, meta.target());
        if v.class == Some(ErrorClass::Business) {
            // Expected outcomes are history, not issues.
            shared.counters.business.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if let Some(r) = &ring {
            let mut r = lock(r);
            if r.captured > 0 && is_access_line(meta.target()) {
                // The request's own error says why; its access line only that it failed.
                return;
            }
            r.captured += 1;
        }
        let mut request = RequestContext::default();
        let mut fields = Map::new();
        if let Some(span) = span {
            for (name, value) in store::inherited(span) {
                let text = || match &value {
                    FieldValue::Str(s) => s.to_string(),
                    other => json_value(other, cfg.max_len).to_string(),
                };
                match name {
                    "request_id" => request.request_id = Some(text()),
                    "user_id" | "user.id" => request.user_id = Some(text()),
                    "route" | "http.route" | "job" | "job.name" => {
                        request.route.get_or_insert_with(text);
                    }
                    "method" | "http.request.method" => request.method = Some(text()),
                    _ => {}
                }
                fields
                    .entry(name)
                    .or_insert_with(|| json_value(&value, cfg.max_len));
            }
            if let Some(trace) = store::trace_context(span) {
                request.trace_id = Some(trace.trace_id_hex());
                request.span_id = Some(trace.span_id_hex());
            }
        }
        // The event's own fields win over its spans'.
        for (k, val) in v.fields {
            fields.insert(k, val);
        }
        let job = Job {
            at: SystemTime::now(),
            severity,
            target: meta.target(),
            module: meta.module_path(),
            location: meta.file().map(|f| match meta.line() {
                Some(l) => format!("{f}:{l}"),
                None => f.to_owned(),
            }),
            message: v.message.unwrap_or_default(),
            chain: v.chain,
            class: v.class,
            fields,
            request,
            crumbs,
            stack: if cfg.backtraces {
                crate::event::capture_stack()
            } else {
                Vec::new()
            },
            thread: std::thread::current().name().map(str::to_owned),
        };
        match shared.tx.try_send(Msg::Capture(Box::new(job))) {
            Ok(()) => _ = shared.counters.queued.fetch_add(1, Ordering::Relaxed),
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                shared.counters.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// A stored field value as JSON.
fn json_value(v: &FieldValue, max: usize) -> Value {
    match v {
        FieldValue::Bool(b) => Value::Bool(*b),
        FieldValue::I64(n) => Value::from(*n),
        FieldValue::U64(n) => Value::from(*n),
        FieldValue::F64(n) => serde_json::Number::from_f64(*n)
            .map_or_else(|| Value::String(n.to_string()), Value::Number),
        FieldValue::Str(s) => Value::String(encode::clip_marked(s, max).into_owned()),
        other => {
            let mut buf = Vec::new();
            other.write_json(&mut buf, max);
            serde_json::from_slice(&buf).unwrap_or(Value::Null)
        }
    }
}

/// Gathers what an error event needs from the event's fields.
#[derive(Default)]
struct ErrorVisitor {
    message: Option<String>,
    fields: Map<String, Value>,
    chain: Vec<ChainLink>,
    class: Option<ErrorClass>,
    max: usize,
}

impl ErrorVisitor {
    fn put(&mut self, field: &Field, value: Value) {
        self.fields.insert(field.name().to_owned(), value);
    }

    fn text(&self, s: &str) -> String {
        encode::clip_marked(s, self.max).into_owned()
    }
}

impl Visit for ErrorVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => self.message = Some(self.text(value)),
            "error.class" => {
                self.class = ErrorClass::from_name(value);
                self.put(field, Value::String(value.to_owned()));
            }
            _ => self.put(field, Value::String(self.text(value))),
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let text = crate::crumbs::bounded(value, self.max);
        match field.name() {
            "message" => self.message = Some(text),
            strata_core::CRITICAL_FIELD => {}
            _ => self.put(field, Value::String(text)),
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::from(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::from(value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(
            field,
            serde_json::Number::from_f64(value)
                .map_or_else(|| Value::String(value.to_string()), Value::Number),
        );
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        if field.name() != strata_core::CRITICAL_FIELD {
            self.put(field, Value::Bool(value));
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        if self.chain.is_empty() {
            self.chain = strata_core::error::chain(value)
                .map(|e| ChainLink {
                    ty: strata_core::error::error_type_name(e).map(str::to_owned),
                    message: self.text(&e.to_string()),
                })
                .collect();
        } else {
            self.put(field, Value::String(self.text(&value.to_string())));
        }
    }
}
