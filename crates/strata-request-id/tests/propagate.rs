//! Client propagation: the tower layer and `inject`, with and without a current request, the
//! injector extension point, and the layer's `http_client` span.

use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt;
use std::sync::{Arc, Mutex};

use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use strata_request_id::{Injector, PropagateLayer, RequestId};
use tower::{Layer, Service, ServiceExt};
use tracing::field::Field;
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::layer::Context;
use tracing_subscriber::prelude::*;
use tracing_subscriber::registry::LookupSpan;

/// A client stand-in that records the headers it was asked to send.
fn recorder(
    seen: Arc<Mutex<Vec<HeaderMap>>>,
) -> impl tower::Service<Request<()>, Response = Response<()>, Error = Infallible> + Clone {
    tower::service_fn(move |req: Request<()>| {
        let seen = seen.clone();
        async move {
            seen.lock().unwrap().push(req.headers().clone());
            Ok::<_, Infallible>(Response::new(()))
        }
    })
}

struct TraceParent;
impl Injector for TraceParent {
    fn inject(&self, headers: &mut HeaderMap) {
        headers
            .entry("traceparent")
            .or_insert(http::HeaderValue::from_static(
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ));
    }
}

#[test]
fn the_layer_and_inject_add_the_current_id() {
    strata_request_id::add_injector(TraceParent);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let client = PropagateLayer::new().layer(recorder(seen.clone()));
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let sub = tracing_subscriber::registry().with(strata_core::StoreLayer::new());
    tracing::subscriber::with_default(sub, || {
        // outside a request: no ID is invented, the injector still runs
        rt.block_on(client.clone().oneshot(Request::new(())))
            .unwrap();

        let id: RequestId = "req-77".parse().unwrap();
        let span = strata_request_id::request_span(&id);
        let _e = span.enter();
        let child = tracing::info_span!("outgoing_call");
        let _c = child.enter();
        rt.block_on(client.clone().oneshot(Request::new(())))
            .unwrap();
        // an ID already set by the caller is kept
        let req = Request::builder()
            .header("x-request-id", "caller-set")
            .body(())
            .unwrap();
        rt.block_on(client.clone().oneshot(req)).unwrap();

        let mut headers = HeaderMap::new();
        assert!(strata_request_id::inject(&mut headers));
        assert_eq!(headers["x-request-id"], "req-77");
        assert_eq!(
            strata_request_id::current_request_id().unwrap().as_str(),
            "req-77"
        );
    });
    let seen = seen.lock().unwrap();
    assert!(seen[0].get("x-request-id").is_none());
    assert!(seen[0].get("traceparent").is_some());
    assert_eq!(seen[1]["x-request-id"], "req-77");
    assert_eq!(seen[2]["x-request-id"], "caller-set");
    assert!(
        seen.iter()
            .all(|h| h.get_all("traceparent").iter().count() == 1)
    );
}

#[test]
fn record_user_without_a_request_span_says_so() {
    let sub = tracing_subscriber::registry().with(strata_core::StoreLayer::new());
    tracing::subscriber::with_default(sub, || {
        assert!(!strata_request_id::record_user(1_u64));
        let other = tracing::info_span!("no_user_field");
        let _e = other.enter();
        assert!(!strata_request_id::record_user(1_u64));
        assert!(strata_request_id::current_request_id().is_none());
    });
}

// ---- the http_client span ----

/// A recorded field value, as the subscriber received it.
#[derive(Debug, Clone, PartialEq)]
enum Val {
    Str(String),
    U64(u64),
    I64(i64),
    F64(f64),
    Bool(bool),
    /// `Debug`/`Display`-recorded values (`?x`, `%x`), rendered.
    Fmt(String),
}

impl Val {
    fn text(&self) -> String {
        match self {
            Val::Str(s) | Val::Fmt(s) => s.clone(),
            Val::U64(v) => v.to_string(),
            Val::I64(v) => v.to_string(),
            Val::F64(v) => v.to_string(),
            Val::Bool(v) => v.to_string(),
        }
    }
}

#[derive(Debug)]
struct SpanRec {
    name: &'static str,
    parent: Option<&'static str>,
    fields: HashMap<&'static str, Val>,
}

/// A layer keeping every span's name, parent's name and recorded fields (at creation and by
/// later `record` calls).
#[derive(Clone, Default)]
struct Spans(Arc<Mutex<Vec<SpanRec>>>);

/// Where a span's record sits in [`Spans`], kept in the span's extensions.
struct Index(usize);

struct Fields<'a>(&'a mut HashMap<&'static str, Val>);

impl tracing::field::Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name(), Val::Str(value.to_owned()));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name(), Val::U64(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name(), Val::I64(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name(), Val::F64(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name(), Val::Bool(value));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name(), Val::Fmt(format!("{value:?}")));
    }
}

impl<S> tracing_subscriber::Layer<S> for Spans
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let span = ctx.span(id).expect("the registry knows a new span");
        let mut rec = SpanRec {
            name: attrs.metadata().name(),
            parent: span.parent().map(|p| p.name()),
            fields: HashMap::new(),
        };
        attrs.record(&mut Fields(&mut rec.fields));
        let index = {
            let mut all = self.0.lock().unwrap();
            all.push(rec);
            all.len() - 1
        };
        span.extensions_mut().insert(Index(index));
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let ext = span.extensions();
        let Some(Index(i)) = ext.get::<Index>() else {
            return;
        };
        values.record(&mut Fields(&mut self.0.lock().unwrap()[*i].fields));
    }
}

impl Spans {
    /// The records of the spans named `name`, in creation order.
    fn named(&self, name: &str) -> Vec<(Option<&'static str>, HashMap<&'static str, Val>)> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.name == name)
            .map(|s| (s.parent, s.fields.clone()))
            .collect()
    }

    /// Every value recorded on any span, as text.
    fn all_values(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .flat_map(|s| s.fields.values().map(Val::text))
            .collect()
    }
}

/// Writes the name of the span current while injectors run, to see which one they would name
/// as the parent in a `traceparent`.
struct CurrentSpanName;
impl Injector for CurrentSpanName {
    fn inject(&self, headers: &mut HeaderMap) {
        if let Some(meta) = tracing::Span::current().metadata()
            && let Ok(v) = HeaderValue::from_str(meta.name())
        {
            headers.entry("x-test-current-span").or_insert(v);
        }
    }
}

/// A client stand-in answering 503 and recording the headers it was asked to send.
fn unavailable(
    seen: Arc<Mutex<Vec<HeaderMap>>>,
) -> impl tower::Service<Request<()>, Response = Response<()>, Error = Infallible> + Clone {
    tower::service_fn(move |req: Request<()>| {
        let seen = seen.clone();
        async move {
            seen.lock().unwrap().push(req.headers().clone());
            let mut res = Response::new(());
            *res.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            Ok::<_, Infallible>(res)
        }
    })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

fn subscriber(spans: Spans) -> impl tracing::Subscriber + Send + Sync {
    tracing_subscriber::registry()
        .with(strata_core::StoreLayer::new())
        .with(spans)
}

#[test]
fn the_layer_opens_a_client_span_and_injects_inside_it() {
    strata_request_id::add_injector(CurrentSpanName);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let client = PropagateLayer::new().layer(unavailable(seen.clone()));
    let spans = Spans::default();
    let rt = runtime();
    let res = tracing::subscriber::with_default(subscriber(spans.clone()), || {
        let id: RequestId = "req-client-1".parse().unwrap();
        let span = strata_request_id::request_span(&id);
        let _e = span.enter();
        let req = Request::get("http://user:secret@billing.internal:8080/v1/x?q=1")
            .body(())
            .unwrap();
        rt.block_on(client.oneshot(req)).unwrap()
    });
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);

    // the headers the inner service was asked to send
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0]["x-request-id"], "req-client-1");
    assert_eq!(seen[0]["x-test-current-span"], "http_client");

    let client_spans = spans.named("http_client");
    assert_eq!(client_spans.len(), 1, "{client_spans:?}");
    let (parent, fields) = &client_spans[0];
    assert_eq!(*parent, Some("request"));
    assert_eq!(fields["method"], Val::Str("GET".into()));
    let Val::Str(url) = &fields["url"] else {
        panic!("url: {:?}", fields["url"]);
    };
    let url: http::Uri = url.parse().expect("the recorded url parses");
    assert_eq!(url.scheme_str(), Some("http"));
    assert_eq!(
        url.authority().map(http::uri::Authority::as_str),
        Some("billing.internal:8080")
    );
    assert_eq!(url.path(), "/v1/x");
    assert_eq!(url.query(), Some("q=1"));
    assert_eq!(
        fields["server.address"],
        Val::Str("billing.internal".into())
    );
    assert_eq!(fields["server.port"], Val::U64(8080));
    assert_eq!(fields["status_code"], Val::U64(503));
    let Val::F64(ms) = fields["duration_ms"] else {
        panic!("duration_ms: {:?}", fields["duration_ms"]);
    };
    assert!(ms.is_finite() && ms >= 0.0, "{ms}");
    assert!(!fields.contains_key("error"), "{fields:?}");

    let values = spans.all_values();
    assert!(!values.is_empty());
    for v in &values {
        assert!(!v.contains("secret"), "the password was recorded: {v}");
        assert!(!v.contains("user:"), "the userinfo was recorded: {v}");
    }
}

#[test]
fn a_failing_call_records_the_error_without_the_userinfo() {
    let inner = tower::service_fn(|req: Request<()>| async move {
        // as some clients do: the error quotes the URL it was given
        Err::<Response<()>, _>(std::io::Error::other(format!(
            "connection refused: {}",
            req.uri()
        )))
    });
    let client = PropagateLayer::new().layer(inner);
    let spans = Spans::default();
    let rt = runtime();
    let err = tracing::subscriber::with_default(subscriber(spans.clone()), || {
        let req = Request::post("https://user:secret@billing.internal/v1/pay")
            .body(())
            .unwrap();
        rt.block_on(client.oneshot(req)).unwrap_err()
    });
    // the caller still gets the error untouched
    assert!(err.to_string().contains("secret"));

    let client_spans = spans.named("http_client");
    assert_eq!(client_spans.len(), 1, "{client_spans:?}");
    let (parent, fields) = &client_spans[0];
    assert_eq!(*parent, None);
    assert_eq!(fields["method"], Val::Str("POST".into()));
    assert_eq!(fields["server.port"], Val::U64(443));
    let error = fields.get("error").expect("error recorded").text();
    assert!(error.starts_with("connection refused: "), "{error}");
    let quoted: http::Uri = error["connection refused: ".len()..]
        .parse()
        .expect("the quoted url parses");
    assert_eq!(
        quoted.authority().map(http::uri::Authority::as_str),
        Some("billing.internal")
    );
    assert!(matches!(fields["duration_ms"], Val::F64(_)), "{fields:?}");
    assert!(!fields.contains_key("status_code"), "{fields:?}");
    for v in spans.all_values() {
        assert!(!v.contains("secret"), "the password was recorded: {v}");
    }
}

#[test]
fn relative_uris_and_default_ports() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let client = PropagateLayer::new().layer(unavailable(seen.clone()));
    let spans = Spans::default();
    let rt = runtime();
    tracing::subscriber::with_default(subscriber(spans.clone()), || {
        // outside a request: a span, no request ID
        let req = Request::get("/v1/y?z=2").body(()).unwrap();
        rt.block_on(client.clone().oneshot(req)).unwrap();
        let req = Request::get("http://billing.internal/v1/z")
            .body(())
            .unwrap();
        rt.block_on(client.clone().oneshot(req)).unwrap();
        let req = Request::builder()
            .method(http::Method::from_bytes(b"PURGE").unwrap())
            .uri("https://[::1]:8443/cache")
            .body(())
            .unwrap();
        rt.block_on(client.clone().oneshot(req)).unwrap();
    });
    assert!(
        seen.lock()
            .unwrap()
            .iter()
            .all(|h| !h.contains_key("x-request-id"))
    );

    let client_spans = spans.named("http_client");
    assert_eq!(client_spans.len(), 3, "{client_spans:?}");

    let relative = &client_spans[0].1;
    assert_eq!(relative["url"], Val::Str("/v1/y".into()));
    assert!(!relative.contains_key("server.address"), "{relative:?}");
    assert!(!relative.contains_key("server.port"), "{relative:?}");
    assert_eq!(relative["status_code"], Val::U64(503));

    let plain = &client_spans[1].1;
    assert_eq!(plain["server.address"], Val::Str("billing.internal".into()));
    assert_eq!(plain["server.port"], Val::U64(80));
    let Val::Str(url) = &plain["url"] else {
        panic!("url: {:?}", plain["url"]);
    };
    let url: http::Uri = url.parse().unwrap();
    assert_eq!(url.host(), Some("billing.internal"));
    assert_eq!(url.port_u16(), None);
    assert_eq!(url.path(), "/v1/z");

    let ipv6 = &client_spans[2].1;
    assert_eq!(ipv6["method"], Val::Str("_OTHER".into()));
    assert_eq!(ipv6["server.address"], Val::Str("::1".into()));
    assert_eq!(ipv6["server.port"], Val::U64(8443));
}

#[test]
fn a_call_dropped_before_completion_records_its_duration_and_that_it_was_cancelled() {
    let inner = tower::service_fn(|_: Request<()>| {
        std::future::pending::<Result<Response<()>, Infallible>>()
    });
    let mut client = PropagateLayer::new().layer(inner);
    let spans = Spans::default();
    tracing::subscriber::with_default(subscriber(spans.clone()), || {
        let fut = client.call(Request::get("http://billing.internal/").body(()).unwrap());
        drop(fut);
    });
    let client_spans = spans.named("http_client");
    assert_eq!(client_spans.len(), 1, "{client_spans:?}");
    let fields = &client_spans[0].1;
    assert!(matches!(fields["duration_ms"], Val::F64(_)), "{fields:?}");
    assert_eq!(fields["error"], Val::Str("cancelled".into()), "{fields:?}");
    assert!(!fields.contains_key("status_code"), "{fields:?}");
}
