//! Propagation to outgoing calls: the current request ID (and, through [`Injector`]s, trace
//! context) into the headers of an HTTP request, and the tower client layer that also opens an
//! `http_client` span per call.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::header::HeaderName;
use http::uri::Scheme;
use http::{HeaderMap, HeaderValue, Method, Request, Response, Uri};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;
use tracing::Span;
use tracing::field::Empty;

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

/// The registered injectors; a call takes the list with one reference count (no copy), and
/// runs them without holding the lock.
static INJECTORS: List<dyn Injector> = RwLock::new(None);

/// Continues what the caller started from an incoming request's headers — strata-otlp's W3C
/// `traceparent` extractor sets the request span's parent. Run by the server middleware right
/// after it creates the request span, before the span is entered.
pub trait Extractor: Send + Sync + 'static {
    /// Reads `headers` and adjusts `span` (the request span).
    fn extract(&self, headers: &HeaderMap, span: &tracing::Span);
}

/// The registered extractors, kept like [`INJECTORS`].
static EXTRACTORS: List<dyn Extractor> = RwLock::new(None);
static HAS_EXTRACTORS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Registers an [`Extractor`] run by the server middleware for every request.
pub fn add_extractor(extractor: impl Extractor) {
    add(&EXTRACTORS, Arc::new(extractor));
    HAS_EXTRACTORS.store(true, std::sync::atomic::Ordering::Release);
}

/// Runs the registered extractors on a new request span.
pub(crate) fn extract(headers: &HeaderMap, span: &tracing::Span) {
    if !HAS_EXTRACTORS.load(std::sync::atomic::Ordering::Acquire) {
        return;
    }
    for e in registered(&EXTRACTORS).iter() {
        e.extract(headers, span);
    }
}

/// Registers an [`Injector`] run by every [`inject`] call, after the request ID.
pub fn add_injector(injector: impl Injector) {
    add(&INJECTORS, Arc::new(injector));
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
    // The list is taken, not locked, so an injector may register another without deadlocking.
    for i in registered(&INJECTORS).iter() {
        i.inject(headers);
    }
    added
}

/// A tower layer for HTTP clients: every outgoing request gets an `http_client` span and the
/// propagation headers of [`inject`].
///
/// For each request the service made by this layer ([`Propagate`])
/// 1. opens an INFO `http_client` span, a child of the current span (the request or job the
///    call is made for), with
///    - `method`: the request method, or `_OTHER` for extension methods;
///    - `url`: the request URI **without** any `user:password@` userinfo, cut to 512 bytes
///      (with `…`). An absolute URI gives `scheme://host[:port]/path?query`; a relative one
///      (origin-form, as hyper's connection-level clients take) gives only the path;
///    - `server.address`: the host (IPv6 addresses without their brackets); absent for a
///      relative URI;
///    - `server.port`: the port from the URI, else 80 for `http` and 443 for `https`; absent
///      when neither is known;
///    - `status_code`, `duration_ms`, `error`: empty until the response (see below);
/// 2. enters the span and, inside it, adds the headers of [`inject_as`] — the request ID
///    under the layer's header (`x-request-id` by default) when the current context has one,
///    then those of the registered [`Injector`]s, which see the `http_client` span as the
///    current span: strata-otlp's W3C injector thus names this span as the `traceparent`
///    parent of the remote server's span;
/// 3. calls the inner service inside the span, and returns a [`PropagateFuture`] that polls
///    the inner future inside it and, when it completes, records `status_code` and
///    `duration_ms` (milliseconds, microsecond precision) — or `duration_ms` and `error` (the
///    error's `Display`, with the URI's userinfo removed) when the inner service fails.
///
/// The span writes no log line of its own (the server it calls writes the access line); it
/// exists for traces (strata-otlp exports it as an OpenTelemetry client span) and for the
/// fields it gives events emitted inside the call. Headers already on the request are never
/// replaced.
///
/// ```
/// use strata_request_id::PropagateLayer;
///
/// let layer = PropagateLayer::new()
///     .with_header(http::HeaderName::from_static("x-correlation-id"));
/// # let _ = layer;
/// ```
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

/// The service made by [`PropagateLayer`]: one `http_client` span and the propagation headers
/// per outgoing request (see [`PropagateLayer`] for the span's fields).
#[derive(Debug, Clone)]
pub struct Propagate<S> {
    inner: S,
    header: HeaderName,
}

/// The longest `url` recorded on the client span, in bytes (longer ones are cut, with `…`).
const MAX_URL: usize = 512;
/// The longest `server.address` recorded (DNS names have at most 253 bytes).
const MAX_HOST: usize = 256;

/// The method's name, or `_OTHER` (OpenTelemetry's convention) for extension methods.
fn method_name(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::PATCH => "PATCH",
        Method::TRACE => "TRACE",
        _ => "_OTHER",
    }
}

/// Where an outgoing request goes, as recorded on the client span.
struct Target<'a> {
    /// The URL without userinfo, cut to [`MAX_URL`].
    url: String,
    host: Option<&'a str>,
    port: Option<u16>,
    /// The `user:password` part of the authority, if any: never recorded, only scrubbed from
    /// error messages.
    userinfo: Option<&'a str>,
}

impl<'a> Target<'a> {
    fn of(uri: &'a Uri) -> Self {
        let Some(authority) = uri.authority() else {
            // A relative URI (origin-form): the path is all we know.
            return Target {
                url: clipped(uri.path().to_owned(), MAX_URL),
                host: None,
                port: None,
                userinfo: None,
            };
        };
        let (userinfo, host_port) = match authority.as_str().rsplit_once('@') {
            Some((info, host_port)) => (Some(info), host_port),
            None => (None, authority.as_str()),
        };
        let mut url = String::with_capacity(
            uri.scheme_str().map_or(0, |s| s.len() + 3)
                + host_port.len()
                + uri.path().len()
                + uri.query().map_or(0, |q| q.len() + 1),
        );
        if let Some(scheme) = uri.scheme_str() {
            url.push_str(scheme);
            url.push_str("://");
        }
        url.push_str(host_port);
        // "/" at least for an absolute URI, "" for the authority-form (CONNECT).
        url.push_str(uri.path());
        if let Some(query) = uri.query() {
            url.push('?');
            url.push_str(query);
        }
        let host = authority.host();
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let port = authority.port_u16().or_else(|| match uri.scheme() {
            Some(s) if *s == Scheme::HTTP => Some(80),
            Some(s) if *s == Scheme::HTTPS => Some(443),
            _ => None,
        });
        Target {
            url: clipped(url, MAX_URL),
            host: Some(strata_core::encode::clip(host, MAX_HOST)),
            port,
            userinfo,
        }
    }
}

/// `s` cut to at most `max` bytes (on a character boundary) followed by `…` when it was longer.
fn clipped(mut s: String, max: usize) -> String {
    let keep = strata_core::encode::clip(&s, max).len();
    if keep < s.len() {
        s.truncate(keep);
        s.push('…');
    }
    s
}

impl<S, B, RB> Service<Request<B>> for Propagate<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
    S::Error: fmt::Display,
{
    type Response = Response<RB>;
    type Error = S::Error;
    type Future = PropagateFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let start = Instant::now();
        let Target {
            url,
            host,
            port,
            userinfo,
        } = Target::of(req.uri());
        let span = tracing::info_span!(
            "http_client",
            method = method_name(req.method()),
            url = url.as_str(),
            server.address = host,
            server.port = port,
            status_code = Empty,
            duration_ms = Empty,
            error = Empty,
        );
        // Owned: the request (which the borrow points into) goes to the inner service.
        let userinfo: Option<Box<str>> = userinfo.map(Box::from);
        // Injectors run with the client span current, so the traceparent they write names it.
        let inner = span.in_scope(|| {
            inject_as(req.headers_mut(), &self.header);
            self.inner.call(req)
        });
        PropagateFuture {
            inner,
            span,
            start,
            userinfo,
            done: false,
        }
    }
}

pin_project! {
    /// The response future of [`Propagate`]: polls the inner service's future inside the
    /// `http_client` span and, when it completes, records `status_code` and `duration_ms` on
    /// the span, or `duration_ms` and `error` on failure. Dropped before completion (a timeout
    /// or the caller gave up), it records `duration_ms` only. It writes no log line.
    pub struct PropagateFuture<F> {
        #[pin]
        inner: F,
        span: Span,
        start: Instant,
        // The request URI's userinfo, scrubbed from error messages.
        userinfo: Option<Box<str>>,
        done: bool,
    }

    impl<F> PinnedDrop for PropagateFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if !*this.done {
                // No response came: a timeout or the caller gave up.
                tracing::record_all!(
                    this.span,
                    duration_ms = millis(this.start.elapsed()),
                    error = "cancelled"
                );
            }
        }
    }
}

/// A duration in milliseconds with microsecond precision.
fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

impl<F> fmt::Debug for PropagateFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PropagateFuture")
            .field("span", &self.span)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl<F, RB, E> Future for PropagateFuture<F>
where
    F: Future<Output = Result<Response<RB>, E>>,
    E: fmt::Display,
{
    type Output = Result<Response<RB>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let _enter = this.span.enter();
        let out = std::task::ready!(this.inner.poll(cx));
        *this.done = true;
        let duration_ms = millis(this.start.elapsed());
        match &out {
            Ok(res) => {
                let status_code = res.status().as_u16();
                // one record for both: each record re-renders the span's cached fields
                tracing::record_all!(this.span, status_code, duration_ms);
            }
            Err(e) => match this.userinfo.as_deref() {
                None => tracing::record_all!(this.span, duration_ms, error = %e),
                Some(info) => {
                    // Clients may quote the URL they were given in their errors.
                    let error = e.to_string().replace(&format!("{info}@"), "");
                    tracing::record_all!(this.span, duration_ms, error = error.as_str());
                }
            },
        }
        Poll::Ready(out)
    }
}

/// A registry of extractors or injectors: the current list, replaced whole on each addition.
type List<T> = RwLock<Option<Arc<[Arc<T>]>>>;

/// Appends `item` to a registry (a new list: callers holding the old one keep it).
fn add<T: ?Sized>(list: &List<T>, item: Arc<T>) {
    let mut list = list.write().unwrap_or_else(|e| e.into_inner());
    let mut items: Vec<Arc<T>> = list.as_deref().map(<[_]>::to_vec).unwrap_or_default();
    items.push(item);
    *list = Some(items.into());
}

/// A registry's current list.
fn registered<T: ?Sized>(list: &List<T>) -> Arc<[Arc<T>]> {
    list.read()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
        .unwrap_or_else(|| Arc::new([]))
}
