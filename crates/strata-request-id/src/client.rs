//! Propagation to outgoing calls: the current request ID (and, through [`Injector`]s, trace
//! context) into the headers of an HTTP request.

use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};

use http::header::HeaderName;
use http::{HeaderMap, HeaderValue, Request};
use tower_layer::Layer;
use tower_service::Service;

use crate::context::current_request_id;
use crate::server::X_REQUEST_ID;

/// Adds propagation headers to outgoing requests; registered with [`add_injector`].
///
/// This is the extension point for trace context: strata-otlp registers one that writes W3C
/// `traceparent`/`tracestate`.
pub trait Injector: Send + Sync + 'static {
    /// Adds this injector's headers to `headers` (never replacing ones already there).
    fn inject(&self, headers: &mut HeaderMap);
}

static INJECTORS: RwLock<Vec<Arc<dyn Injector>>> = RwLock::new(Vec::new());

/// Continues what the caller started from an incoming request's headers — strata-otlp's W3C
/// `traceparent` extractor sets the request span's parent. Run by the server middleware right
/// after it creates the request span, before the span is entered.
pub trait Extractor: Send + Sync + 'static {
    /// Reads `headers` and adjusts `span` (the request span).
    fn extract(&self, headers: &HeaderMap, span: &tracing::Span);
}

static EXTRACTORS: RwLock<Vec<Arc<dyn Extractor>>> = RwLock::new(Vec::new());
static HAS_EXTRACTORS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Registers an [`Extractor`] run by the server middleware for every request.
pub fn add_extractor(extractor: impl Extractor) {
    EXTRACTORS
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .push(Arc::new(extractor));
    HAS_EXTRACTORS.store(true, std::sync::atomic::Ordering::Release);
}

/// Runs the registered extractors on a new request span.
pub(crate) fn extract(headers: &HeaderMap, span: &tracing::Span) {
    if !HAS_EXTRACTORS.load(std::sync::atomic::Ordering::Acquire) {
        return;
    }
    let extractors = EXTRACTORS.read().unwrap_or_else(|e| e.into_inner()).clone();
    for e in &extractors {
        e.extract(headers, span);
    }
}

/// Registers an [`Injector`] run by every [`inject`] call, after the request ID.
pub fn add_injector(injector: impl Injector) {
    INJECTORS
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .push(Arc::new(injector));
}

/// Adds the current request's ID as `x-request-id` (unless the header is already set) and runs
/// the registered [`Injector`]s. Returns whether a request ID was added.
///
/// ```no_run
/// # async fn call(client: reqwest::Client) -> reqwest::Result<()> {
/// let mut headers = http::HeaderMap::new();
/// strata_request_id::inject(&mut headers);
/// client.get("http://billing.internal/v1/invoices").headers(headers).send().await?;
/// # Ok(()) }
/// ```
pub fn inject(headers: &mut HeaderMap) -> bool {
    inject_as(headers, &X_REQUEST_ID)
}

/// [`inject`] with another header name for the request ID (for services that expect
/// `x-correlation-id`, say).
pub fn inject_as(headers: &mut HeaderMap, name: &HeaderName) -> bool {
    let mut added = false;
    if !headers.contains_key(name)
        && let Some(id) = current_request_id()
    {
        let value =
            HeaderValue::from_str(id.as_str()).expect("request IDs are valid header values");
        headers.insert(name.clone(), value);
        added = true;
    }
    // Clone the list so an injector may register another without deadlocking.
    let injectors = INJECTORS.read().unwrap_or_else(|e| e.into_inner()).clone();
    for i in &injectors {
        i.inject(headers);
    }
    added
}

/// A tower layer for HTTP clients: calls [`inject`] on every outgoing request.
#[derive(Debug, Clone)]
pub struct PropagateLayer {
    header: HeaderName,
}

impl Default for PropagateLayer {
    fn default() -> Self {
        PropagateLayer {
            header: X_REQUEST_ID,
        }
    }
}

impl PropagateLayer {
    /// A layer writing the ID as `x-request-id`.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes the ID under `name` instead of `x-request-id`.
    #[must_use]
    pub fn with_header(mut self, name: HeaderName) -> Self {
        self.header = name;
        self
    }
}

impl<S> Layer<S> for PropagateLayer {
    type Service = Propagate<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Propagate {
            inner,
            header: self.header.clone(),
        }
    }
}

/// The service made by [`PropagateLayer`].
#[derive(Debug, Clone)]
pub struct Propagate<S> {
    inner: S,
    header: HeaderName,
}

impl<S, B> Service<Request<B>> for Propagate<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        inject_as(req.headers_mut(), &self.header);
        self.inner.call(req)
    }
}
