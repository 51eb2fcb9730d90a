//! The server middleware: one span and one access line per request, with its ID.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::header::HeaderName;
use http::{HeaderMap, HeaderValue, Request, Response};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;
use tracing::Span;
use tracing::field::Empty;

use crate::id::RequestId;

/// The header read and written by default.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest path recorded on the span, in bytes (longer ones are cut, with `…`).
const MAX_PATH: usize = 256;

#[derive(Debug, Clone)]
struct Config {
    accept: Vec<HeaderName>,
    respond: HeaderName,
    slow: Duration,
}

/// A tower layer giving every request an ID, a span and an access line.
///
/// For each request it
/// 1. takes the ID from the first of the accepted headers (`x-request-id` by default) that holds
///    a valid one (1–128 characters of `[A-Za-z0-9._:-]`); otherwise makes a UUIDv7 and records
///    the refused value, sanitised and cut to 64 bytes, as `request_id.rejected`. The request's
///    response header (`x-request-id` unless [`RequestIdLayer::with_response_header`] changed it)
///    is set to the ID in use, so handlers and proxies behind see the ID in force, never a
///    refused value; [`RequestId`] is put in the request's extensions;
/// 2. runs the inner service inside a `request` span with `request_id`, `method`, `route` (the
///    route template from axum's `MatchedPath` with the `axum` feature — never the raw path, so
///    the value set stays small), `path` (cut to 256 bytes) and an empty `user_id`;
/// 3. when the response is ready, records `status_code` and `duration_ms` on the span, writes
///    one access line (`event = "http_request"`: INFO, WARN when slower than the threshold,
///    ERROR for 5xx and failures) and echoes the ID in the response's `x-request-id` header
///    (unless the handler set one).
///
/// # Layer order
///
/// Put it **outside** the layers whose lines should carry the ID (tracing, timeouts, auth,
/// compression…). With `ServiceBuilder`, layers listed *after* it run inside its span; with
/// axum's `Router::layer`, layers added *before* it (closer to the routes) do, since each
/// `.layer()` wraps what was built so far. `Router::layer(RequestIdLayer::new())` runs after
/// routing, so `MatchedPath` is known;
/// it replaces tower-http's `SetRequestIdLayer`, `PropagateRequestIdLayer` and, for logging,
/// `TraceLayer` (keep `TraceLayer` inside it if you want its extra events; they will carry the
/// ID). Requests answered before routing (a 404) have no `route`.
///
/// ```
/// use strata_request_id::RequestIdLayer;
/// use std::time::Duration;
///
/// let layer = RequestIdLayer::new()
///     .with_header(http::HeaderName::from_static("x-correlation-id"))
///     .with_slow_threshold(Duration::from_millis(500));
/// # let _ = layer;
/// ```
#[derive(Debug, Clone)]
pub struct RequestIdLayer {
    config: Arc<Config>,
}

impl Default for RequestIdLayer {
    fn default() -> Self {
        RequestIdLayer {
            config: Arc::new(Config {
                accept: vec![X_REQUEST_ID],
                respond: X_REQUEST_ID,
                slow: Duration::from_secs(1),
            }),
        }
    }
}

impl RequestIdLayer {
    /// Reads and writes `x-request-id`; requests slower than one second log at WARN.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn config_mut(&mut self) -> &mut Config {
        Arc::make_mut(&mut self.config)
    }

    /// Also accepts an incoming ID from `name`, tried after the headers already accepted
    /// (`x-request-id` by default).
    #[must_use]
    pub fn with_header(mut self, name: HeaderName) -> Self {
        let c = self.config_mut();
        if !c.accept.contains(&name) {
            c.accept.push(name);
        }
        self
    }

    /// Replaces the list of headers an incoming ID is read from.
    #[must_use]
    pub fn with_headers(mut self, names: impl IntoIterator<Item = HeaderName>) -> Self {
        self.config_mut().accept = names.into_iter().collect();
        self
    }

    /// The header the ID is echoed in (and set on the request). Default: `x-request-id`.
    #[must_use]
    pub fn with_response_header(mut self, name: HeaderName) -> Self {
        self.config_mut().respond = name;
        self
    }

    /// Requests slower than this log their access line at WARN. Default: 1 s.
    #[must_use]
    pub fn with_slow_threshold(mut self, threshold: Duration) -> Self {
        self.config_mut().slow = threshold;
        self
    }
}

impl<S> Layer<S> for RequestIdLayer {
    type Service = RequestIdService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestIdService {
            inner,
            config: Arc::clone(&self.config),
        }
    }
}

/// The service made by [`RequestIdLayer`].
#[derive(Debug, Clone)]
pub struct RequestIdService<S> {
    inner: S,
    config: Arc<Config>,
}

impl Config {
    /// The ID to use and, if a header offered an invalid one, its sanitised excerpt.
    fn pick(&self, headers: &HeaderMap) -> (RequestId, Option<String>) {
        let mut rejected = None;
        for name in &self.accept {
            for value in headers.get_all(name) {
                match RequestId::parse_bytes(value.as_bytes()) {
                    Ok(id) => return (id, None),
                    Err(e) => {
                        rejected.get_or_insert(e.excerpt);
                    }
                }
            }
        }
        (RequestId::generate(), rejected)
    }
}

/// The method's name, or `_OTHER` (OpenTelemetry's convention) for extension methods, whose
/// names a client chooses freely and could make arbitrarily long.
fn method_name(method: &http::Method) -> &str {
    use http::Method;
    match *method {
        Method::GET
        | Method::POST
        | Method::PUT
        | Method::DELETE
        | Method::HEAD
        | Method::OPTIONS
        | Method::CONNECT
        | Method::PATCH
        | Method::TRACE => method.as_str(),
        _ => "_OTHER",
    }
}

fn route<B>(req: &Request<B>) -> Option<&str> {
    #[cfg(feature = "axum")]
    if let Some(p) = req.extensions().get::<axum::extract::MatchedPath>() {
        return Some(p.as_str());
    }
    let _ = req;
    None
}

impl<S, B, RB> Service<Request<B>> for RequestIdService<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
    S::Error: std::fmt::Display,
{
    type Response = Response<RB>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let start = Instant::now();
        let (id, rejected) = self.config.pick(req.headers());
        // The JSON encoder escapes; here only the length is bounded.
        let full_path = req.uri().path();
        let clipped = strata_core::encode::clip(full_path, MAX_PATH);
        let path: std::borrow::Cow<'_, str> = if clipped.len() < full_path.len() {
            format!("{clipped}…").into()
        } else {
            clipped.into()
        };
        let span = tracing::info_span!(
            "request",
            request_id = id.as_str(),
            method = method_name(req.method()),
            route = route(&req),
            path = &*path,
            user_id = Empty,
            status_code = Empty,
            duration_ms = Empty,
            request_id.rejected = rejected.as_deref(),
        );
        // A trace the caller started continues here (W3C traceparent, via strata-otlp).
        crate::client::extract(req.headers(), &span);
        let header =
            HeaderValue::from_str(id.as_str()).expect("request IDs are valid header values");
        req.headers_mut()
            .insert(self.config.respond.clone(), header.clone());
        req.extensions_mut().insert(id);
        let inner = span.in_scope(|| self.inner.call(req));
        ResponseFuture {
            inner,
            span,
            start,
            header: Some(header),
            config: Arc::clone(&self.config),
            done: false,
        }
    }
}

pin_project! {
    /// The response future of [`RequestIdService`]. Dropped before completion (the client went
    /// away, a timeout or shutdown cancelled the request), it still writes the access line: a
    /// WARN "request cancelled" with the time spent.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        span: Span,
        start: Instant,
        header: Option<HeaderValue>,
        config: Arc<Config>,
        done: bool,
    }

    impl<F> PinnedDrop for ResponseFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if !*this.done {
                let _enter = this.span.enter();
                let duration_ms = millis(this.start.elapsed());
                this.span.record("duration_ms", duration_ms);
                tracing::warn!(event = "http_request", duration_ms, "request cancelled");
            }
        }
    }
}

/// A duration in milliseconds with microsecond precision.
fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

impl<F: std::fmt::Debug> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("span", &self.span)
            .finish_non_exhaustive()
    }
}

impl<F, RB, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<RB>, E>>,
    E: std::fmt::Display,
{
    type Output = Result<Response<RB>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let _enter = this.span.enter();
        let out = match this.inner.poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(out) => out,
        };
        *this.done = true;
        let elapsed = this.start.elapsed();
        let duration_ms = millis(elapsed);
        match out {
            Ok(mut res) => {
                let status = res.status().as_u16();
                // one record for both: each record re-renders the span's cached fields
                tracing::record_all!(this.span, status_code = status, duration_ms);
                if status >= 500 {
                    tracing::error!(
                        event = "http_request",
                        status_code = status,
                        duration_ms,
                        "request failed"
                    );
                } else if elapsed > this.config.slow {
                    let threshold_ms = this.config.slow.as_millis() as u64;
                    tracing::warn!(
                        event = "http_request",
                        status_code = status,
                        duration_ms,
                        threshold_ms,
                        "slow request"
                    );
                } else {
                    tracing::info!(
                        event = "http_request",
                        status_code = status,
                        duration_ms,
                        "request completed"
                    );
                }
                if let Some(h) = this.header.take()
                    && !res.headers().contains_key(&this.config.respond)
                {
                    res.headers_mut().insert(this.config.respond.clone(), h);
                }
                Poll::Ready(Ok(res))
            }
            Err(e) => {
                this.span.record("duration_ms", duration_ms);
                tracing::error!(event = "http_request", duration_ms, error = %e, "request failed");
                Poll::Ready(Err(e))
            }
        }
    }
}
