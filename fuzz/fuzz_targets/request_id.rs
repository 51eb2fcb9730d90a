//! Request IDs and W3C `traceparent` headers from callers.
//!
//! Three levels, each input:
//! 1. `RequestId::parse_bytes` / `FromStr` on the raw bytes, against the documented rule (1 to
//!    128 bytes of `[A-Za-z0-9._:-]`): an accepted ID is exactly its input and safe anywhere;
//!    a refused one is the typed `InvalidRequestId` with the right reason, the input's length
//!    and a printable, bounded excerpt.
//! 2. The `traceparent` parsing strata-otlp installs (OpenTelemetry's W3C TraceContext
//!    propagator): a context it accepts has non-zero IDs equal to the header's, and injects as
//!    a canonical `00-<32 hex>-<16 hex>-0x` header that parses back to the same context; a
//!    header that follows the W3C format to the letter is always accepted.
//! 3. End to end: a request through `RequestIdLayer` with strata-otlp's propagation and the
//!    JSON layer: the access line and a handler line carry the first valid `x-request-id`, or
//!    a fresh UUIDv7 with the refused value's excerpt in `request_id.rejected`; their
//!    `trace_id` continues an accepted `traceparent`; the response echoes the ID in force.
#![no_main]

use std::future::Future;
use std::io::{self, Write};
use std::pin::pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, Waker};

use http::{HeaderMap, HeaderName, HeaderValue, Request, Response};
use libfuzzer_sys::fuzz_target;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{SpanContext, TraceContextExt};
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use serde_json::Value as Json;
use strata_request_id::{InvalidRequestId, MAX_LEN, RequestId, RequestIdLayer, X_REQUEST_ID};
use tower_layer::Layer as _;
use tower_service::Service;
use tracing_subscriber::prelude::*;

// ---- 1. the request ID value ----------------------------------------------------------------

/// The documented rule, written independently of the crate.
fn expected_reason(raw: &[u8]) -> Option<&'static str> {
    if raw.is_empty() {
        Some("empty")
    } else if raw.len() > 128 {
        Some("longer than 128 bytes")
    } else if !raw
        .iter()
        .all(|&b| b.is_ascii_alphanumeric() || b".-_:".contains(&b))
    {
        Some("characters outside [A-Za-z0-9._:-]")
    } else {
        None
    }
}

fn check_error(raw: &[u8], e: &InvalidRequestId) {
    assert_eq!(Some(e.reason), expected_reason(raw), "{raw:?}");
    assert_eq!(e.len, raw.len());
    // Printable ASCII, `\xNN` escapes, at most 64 bytes and an ellipsis.
    assert!(e.excerpt.len() <= 64 + '…'.len_utf8(), "{e:?}");
    let body = e.excerpt.strip_suffix('…').unwrap_or(&e.excerpt);
    assert!(
        body.bytes().all(|b| (0x20..0x7f).contains(&b) && b != b'"'),
        "unsafe excerpt {:?}",
        e.excerpt
    );
    let shown = e.to_string();
    assert!(
        shown.contains(&e.excerpt) && shown.contains(e.reason),
        "{shown}"
    );
    assert!(!shown.chars().any(char::is_control), "{shown:?}");
}

fn check_id(raw: &[u8]) -> Option<RequestId> {
    let parsed = RequestId::parse_bytes(raw);
    if let Ok(text) = std::str::from_utf8(raw) {
        assert_eq!(
            text.parse::<RequestId>(),
            parsed,
            "FromStr and parse_bytes differ"
        );
    }
    match parsed {
        Ok(id) => {
            assert_eq!(expected_reason(raw), None, "accepted {raw:?}");
            assert_eq!(id.as_str().as_bytes(), raw);
            assert!(!id.as_str().is_empty() && id.as_str().len() <= MAX_LEN);
            assert!(id.as_str().bytes().all(|b| b.is_ascii_graphic()));
            assert_eq!(id.to_string(), id.as_str());
            assert_eq!(id.as_str().parse::<RequestId>().as_ref(), Ok(&id));
            assert!(HeaderValue::from_str(id.as_str()).is_ok());
            Some(id)
        }
        Err(e) => {
            check_error(raw, &e);
            None
        }
    }
}

// ---- 2. traceparent ------------------------------------------------------------------------

fn extract(headers: &HeaderMap) -> SpanContext {
    let cx = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
    cx.span().span_context().clone()
}

/// The W3C format to the letter, version 00: `00-<32 hex>-<16 hex>-<2 hex>`, lower case, IDs
/// not all zero. Returns the trace ID, span ID and the sampled flag.
fn strict_w3c(tp: &[u8]) -> Option<(u128, u64, bool)> {
    let s = std::str::from_utf8(tp).ok()?;
    let lower_hex = |p: &str, n: usize| {
        p.len() == n
            && p.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let parts: Vec<&str> = s.split('-').collect();
    let [v, t, sp, f] = parts.as_slice() else {
        return None;
    };
    if *v != "00" || !lower_hex(t, 32) || !lower_hex(sp, 16) || !lower_hex(f, 2) {
        return None;
    }
    let (t, sp, f) = (
        u128::from_str_radix(t, 16).ok()?,
        u64::from_str_radix(sp, 16).ok()?,
        u8::from_str_radix(f, 16).ok()?,
    );
    (t != 0 && sp != 0).then_some((t, sp, f & 1 == 1))
}

fn check_traceparent(headers: &HeaderMap) -> Option<SpanContext> {
    let sc = extract(headers);
    let raw = headers.get("traceparent").map(HeaderValue::as_bytes);
    if let Some((t, s, sampled)) = raw.and_then(strict_w3c) {
        assert!(sc.is_valid(), "a valid traceparent refused: {raw:?}");
        assert_eq!(u128::from_be_bytes(sc.trace_id().to_bytes()), t);
        assert_eq!(u64::from_be_bytes(sc.span_id().to_bytes()), s);
        assert_eq!(sc.is_sampled(), sampled);
    }
    if !sc.is_valid() {
        return None;
    }
    assert!(sc.is_remote());
    // Accepted: the IDs are the header's (the propagator is lenient about their form, not
    // about their value).
    let text = String::from_utf8_lossy(raw.expect("a context comes from the header"));
    let parts: Vec<&str> = text.trim().split('-').collect();
    assert_eq!(
        u128::from_str_radix(parts[1], 16).ok(),
        Some(u128::from_be_bytes(sc.trace_id().to_bytes())),
        "{text:?}"
    );
    assert_eq!(
        u64::from_str_radix(parts[2], 16).ok(),
        Some(u64::from_be_bytes(sc.span_id().to_bytes())),
        "{text:?}"
    );
    // Re-formats canonically and parses back to the same context.
    let cx = opentelemetry::Context::new().with_remote_span_context(sc.clone());
    let mut out = HeaderMap::new();
    TraceContextPropagator::new().inject_context(&cx, &mut HeaderInjector(&mut out));
    let formatted = out["traceparent"].to_str().unwrap().to_owned();
    let (t, s, sampled) = strict_w3c(formatted.as_bytes())
        .unwrap_or_else(|| panic!("not canonical: {formatted:?} from {text:?}"));
    assert_eq!(t, u128::from_be_bytes(sc.trace_id().to_bytes()));
    assert_eq!(s, u64::from_be_bytes(sc.span_id().to_bytes()));
    assert_eq!(sampled, sc.is_sampled());
    let again = extract(&out);
    assert_eq!(again.trace_id(), sc.trace_id());
    assert_eq!(again.span_id(), sc.span_id());
    assert_eq!(again.trace_flags(), sc.trace_flags());
    assert_eq!(again.trace_state().header(), sc.trace_state().header());
    Some(sc)
}

// ---- 3. through the middleware --------------------------------------------------------------

#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl Write for Buf {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The JSON lines of the requests, with OpenTelemetry tracing (nothing sampled, nothing
/// exported) and strata-otlp's W3C propagation installed.
fn lines() -> &'static Buf {
    static SETUP: OnceLock<(Buf, strata_otlp::OtlpGuard)> = OnceLock::new();
    &SETUP
        .get_or_init(|| {
            let out = Buf::default();
            let w = out.clone();
            let file = std::env::temp_dir().join(format!(
                "strata-fuzz-request-id-{}.jsonl",
                std::process::id()
            ));
            let otlp = strata_otlp::Otlp::new()
                .with_enabled(true)
                .with_file(file, 1 << 20)
                .with_logs(false)
                .with_sampler(strata_otlp::Sampler::AlwaysOff)
                .start()
                .expect("OTLP to a file starts");
            strata_otlp::install_propagation();
            let json = strata_json::layer()
                .with_service("fuzz")
                .with_writer(move || w.clone());
            let subscriber = tracing_subscriber::registry()
                .with(strata_core::StoreLayer::default())
                .with(otlp.traces_layer())
                .with(json);
            tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
            (out, otlp)
        })
        .0
}

/// A handler that logs one line and answers 200.
#[derive(Clone, Copy)]
struct Handler;

impl<B> Service<Request<B>> for Handler {
    type Response = Response<()>;
    type Error = std::convert::Infallible;
    type Future = std::future::Ready<Result<Response<()>, Self::Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let id = req
            .extensions()
            .get::<RequestId>()
            .map(RequestId::to_string);
        let header = req.headers().get(X_REQUEST_ID).cloned();
        // The handler sees the ID in force, in the extensions and the header.
        assert_eq!(
            id.as_deref().map(str::as_bytes),
            header.as_ref().map(HeaderValue::as_bytes)
        );
        tracing::info!(event = "handled", "handled");
        std::future::ready(Ok(Response::new(())))
    }
}

fn is_uuid_v7(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_digit() || (b'a'..=b'f').contains(c),
        })
        && b[14] == b'7'
}

fn through_middleware(
    headers: HeaderMap,
    want_id: Option<&RequestId>,
    rejected: Option<&str>,
    parent: Option<&SpanContext>,
) {
    let out = lines();
    out.0.lock().unwrap().clear();
    let mut req = Request::builder().uri("/fuzz").body(()).unwrap();
    *req.headers_mut() = headers;
    let mut svc = RequestIdLayer::new().layer(Handler);
    let mut fut = pin!(svc.call(req));
    let res = match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(r) => r.unwrap(),
        Poll::Pending => panic!("the handler is ready at once"),
    };
    let text = String::from_utf8(std::mem::take(&mut *out.0.lock().unwrap())).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    let mut ids = Vec::new();
    for line in &lines {
        let v: Json = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        let id = v["request_id"]
            .as_str()
            .unwrap_or_else(|| panic!("no request_id: {line}"));
        match want_id {
            Some(want) => assert_eq!(id, want.as_str(), "{line}"),
            None => assert!(is_uuid_v7(id), "{line}"),
        }
        assert_eq!(
            v.get("request_id.rejected").and_then(Json::as_str),
            rejected,
            "{line}"
        );
        let trace = v["trace_id"]
            .as_str()
            .unwrap_or_else(|| panic!("no trace_id: {line}"));
        assert!(trace.len() == 32 && trace != "0".repeat(32), "{line}");
        if let Some(p) = parent {
            assert_eq!(trace, p.trace_id().to_string(), "not continued: {line}");
            assert_ne!(
                v["span_id"].as_str(),
                Some(p.span_id().to_string().as_str())
            );
        }
        ids.push(id.to_owned());
    }
    assert_eq!(ids[0], ids[1]);
    // The response echoes the ID in force.
    assert_eq!(res.headers()[X_REQUEST_ID].as_bytes(), ids[0].as_bytes());
}

// ---- the input -----------------------------------------------------------------------------

/// The input: a flags byte (bits 0-1: how many `x-request-id` values, up to 3; bit 2: a
/// `traceparent`; bit 3: a `tracestate`), then those values in that order, separated by
/// `0xff`.
fn read(data: &[u8]) -> Option<(Vec<&[u8]>, Option<&[u8]>, Option<&[u8]>)> {
    let (&flags, rest) = data.split_first()?;
    let mut parts = rest.split(|&b| b == 0xff);
    let ids = (0..flags & 3)
        .map(|_| parts.next().unwrap_or_default())
        .collect();
    let tp = (flags & 4 != 0).then(|| parts.next().unwrap_or_default());
    let state = (flags & 8 != 0).then(|| parts.next().unwrap_or_default());
    Some((ids, tp, state))
}

fuzz_target!(|data: &[u8]| {
    // The whole input as one value, then structured.
    check_id(data);
    let Some((ids, tp, state)) = read(data) else {
        return;
    };
    let mut headers = HeaderMap::new();
    let mut offered = Vec::new();
    for &raw in &ids {
        check_id(raw);
        // What HTTP can carry (no CR, LF, NUL…) reaches the middleware.
        if let Ok(v) = HeaderValue::from_bytes(raw) {
            headers.append(X_REQUEST_ID, v);
            offered.push(raw);
        }
    }
    if let Some(v) = tp.and_then(|t| HeaderValue::from_bytes(t).ok()) {
        headers.insert(HeaderName::from_static("traceparent"), v);
    }
    if let Some(v) = state.and_then(|t| HeaderValue::from_bytes(t).ok()) {
        headers.insert(HeaderName::from_static("tracestate"), v);
    }
    let parent = check_traceparent(&headers);
    let want_id = offered
        .iter()
        .find_map(|raw| RequestId::parse_bytes(raw).ok());
    let rejected = match &want_id {
        Some(_) => None,
        None => offered
            .first()
            .map(|raw| RequestId::parse_bytes(raw).unwrap_err().excerpt),
    };
    through_middleware(
        headers,
        want_id.as_ref(),
        rejected.as_deref(),
        parent.as_ref(),
    );
});
