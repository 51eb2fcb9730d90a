//! Reading and extending the current request's context: its ID, its user, jobs and spawned tasks.

use std::future::Future;

use serde::{Deserialize, Serialize};
use strata_core::FieldValue;
use strata_core::store::SpanFields;
use tracing::field::Empty;
use tracing::{Instrument, Span};
use tracing_subscriber::registry::{LookupSpan, Registry};

use crate::id::{RequestId, sanitize};

/// The field holding the request ID on request and job spans.
pub const REQUEST_ID_FIELD: &str = "request_id";
/// The field holding the authenticated user on request and job spans.
pub const USER_ID_FIELD: &str = "user_id";

/// Runs `f` on the spans of the current context, innermost first, with their store.
///
/// Works with any subscriber built on `tracing_subscriber::Registry` (every strata setup).
fn with_scope<R>(
    mut f: impl FnMut(&tracing_subscriber::registry::SpanRef<'_, Registry>) -> Option<R>,
) -> Option<R> {
    tracing::dispatcher::get_default(|d| {
        let registry = d.downcast_ref::<Registry>()?;
        let current = d.current_span();
        let id = current.id()?;
        let span = registry.span(id)?;
        span.scope().find_map(|s| f(&s))
    })
}

/// The ID of the request (or job) the current code runs in: the `request_id` of the nearest
/// enclosing span that has one.
pub fn current_request_id() -> Option<RequestId> {
    with_scope(|s| {
        let ext = s.extensions();
        match ext.get::<SpanFields>()?.get(REQUEST_ID_FIELD)? {
            FieldValue::Str(v) => v.parse().ok(),
            _ => None,
        }
    })
}

/// Records the authenticated user on the current request's span — the nearest enclosing span
/// declaring both `request_id` and `user_id` (as the spans made by this crate do), else the
/// nearest declaring `user_id` — so every later line of the request carries `user_id`.
/// Returns `false` when there is no such span.
///
/// ```
/// # use tracing_subscriber::prelude::*;
/// # let sub = tracing_subscriber::registry().with(strata_core::StoreLayer::new());
/// # tracing::subscriber::with_default(sub, || {
/// let span = strata_request_id::request_span(&strata_request_id::RequestId::generate());
/// let _enter = span.enter();
/// assert!(strata_request_id::record_user(314159_u64));
/// # });
/// ```
pub fn record_user<V: tracing::Value>(user: V) -> bool {
    // The request's own span (it has a request_id) first; any span declaring user_id after.
    let declares = |s: &tracing_subscriber::registry::SpanRef<'_, Registry>, request: bool| {
        let fields = s.metadata().fields();
        (fields.field(USER_ID_FIELD).is_some()
            && (!request || fields.field(REQUEST_ID_FIELD).is_some()))
        .then(|| (s.id(), s.metadata()))
    };
    let target = with_scope(|s| declares(s, true)).or_else(|| with_scope(|s| declares(s, false)));
    let Some((id, meta)) = target else {
        return false;
    };
    let field = meta.fields().field(USER_ID_FIELD).expect("found above");
    let values = [(&field, Some(&user as &dyn tracing::Value))];
    let values = meta.fields().value_set(&values);
    tracing::dispatcher::get_default(|d| d.record(&id, &tracing::span::Record::new(&values)));
    true
}

/// A span for a request handled outside the HTTP middleware (a message consumer, an RPC
/// framework…), carrying `request_id` and an empty `user_id` for [`record_user`].
pub fn request_span(id: &RequestId) -> Span {
    tracing::info_span!("request", request_id = id.as_str(), user_id = Empty)
}

/// What a background job needs to continue its request's context in a worker: captured when the
/// job is enqueued, serialised with the job, restored by the worker with [`JobContext::span`].
///
/// ```
/// use strata_request_id::JobContext;
///
/// // in the request handler:
/// let ctx = JobContext::capture(); // no request here, so a fresh ID is made
/// let payload = serde_json::to_string(&ctx).unwrap();
///
/// // in the worker:
/// let ctx: JobContext = serde_json::from_str(&payload).unwrap();
/// let span = ctx.span("send_receipt");
/// span.in_scope(|| tracing::info!("sending the receipt"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[non_exhaustive]
pub struct JobContext {
    /// The originating request's ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The originating span's W3C `traceparent`, when a tracing layer set a trace context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

impl JobContext {
    /// Captures the current request's ID and trace context; outside any request, makes a fresh
    /// ID so the job can still be followed from enqueue to completion.
    pub fn capture() -> Self {
        let request_id = current_request_id().unwrap_or_else(RequestId::generate);
        let traceparent = with_scope(|s| {
            let ext = s.extensions();
            ext.get::<SpanFields>()?.trace_context().map(|t| {
                format!(
                    "00-{}-{}-{}",
                    t.trace_id_hex(),
                    t.span_id_hex(),
                    if t.sampled { "01" } else { "00" }
                )
            })
        });
        JobContext {
            request_id: Some(request_id.to_string()),
            traceparent,
        }
    }

    /// The span to run the job in: `job` (the job's name), the originating `request_id`,
    /// `traceparent` when known, and an empty `user_id`. A missing or invalid ID in the payload
    /// (it came through a queue) is replaced by a fresh one and the offered value recorded,
    /// sanitised, as `request_id.rejected`.
    pub fn span(&self, job: &str) -> Span {
        let (id, rejected) = match self.request_id.as_deref().map(str::parse::<RequestId>) {
            Some(Ok(id)) => (id, None),
            Some(Err(e)) => (RequestId::generate(), Some(e.excerpt)),
            None => (RequestId::generate(), None),
        };
        let span = tracing::info_span!(
            "job",
            job,
            request_id = id.as_str(),
            user_id = Empty,
            traceparent = Empty,
            request_id.rejected = Empty,
        );
        if let Some(tp) = &self.traceparent {
            span.record("traceparent", sanitize(tp.as_bytes(), 64).as_str());
        }
        if let Some(r) = rejected {
            span.record("request_id.rejected", r.as_str());
        }
        span
    }
}

/// `tokio::spawn` that keeps the current span: the task's lines carry the request's ID.
pub fn spawn<F>(future: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    tokio::spawn(future.instrument(Span::current()))
}

/// `tokio::task::spawn_blocking` that keeps the current span.
pub fn spawn_blocking<F, R>(f: F) -> tokio::task::JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let span = Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(f))
}
