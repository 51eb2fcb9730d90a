//! Error events to any Sentry-protocol server, through the `sentry` crate's protocol types,
//! envelopes and rate limiter, sent by a transport that counts what does not arrive.

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use sentry::protocol::{
    Breadcrumb, Context, Event, Exception, Frame, Level, Map, Request, SpanId, Stacktrace,
    TraceContext, TraceId, User, Values,
};

use sentry::transports::{RateLimiter, RateLimitingCategory};

use crate::event::ErrorEvent;
use crate::worker::{Counters, Output};

fn level(l: &str) -> Level {
    match l {
        "CRITICAL" => Level::Fatal,
        "ERROR" => Level::Error,
        "WARN" => Level::Warning,
        "INFO" => Level::Info,
        _ => Level::Debug,
    }
}

fn hex<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != N * 2 {
        return None;
    }
    let mut out = [0u8; N];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(s.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(out)
}

fn time(ms: i64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

/// The Sentry event for `e`: the exception chain (innermost first, as Sentry orders it, with
/// the stack on the outermost), breadcrumbs, tags, user, request, `contexts.trace`,
/// fingerprint, release and environment.
pub(crate) fn to_sentry(e: &ErrorEvent) -> Event<'static> {
    let mut ev = Event::new();
    if let Some(id) = hex::<16>(&e.event_id) {
        ev.event_id = sentry::types::Uuid::from_bytes(id);
    }
    ev.level = level(&e.level);
    ev.timestamp = time(e.unix_ms);
    ev.message = Some(e.message.clone());
    ev.logger = Some(e.target.clone());
    ev.platform = Cow::Borrowed("native");
    ev.release = e.release.clone().map(Cow::Owned);
    ev.environment = e.environment.clone().map(Cow::Owned);
    ev.server_name = e.tags.get("host").cloned().map(Cow::Owned);
    ev.fingerprint = Cow::Owned(vec![Cow::Owned(e.fingerprint.clone())]);
    ev.culprit = e.location.clone();
    ev.transaction = e.request.route.clone();
    ev.tags = e.tags.clone().into_iter().collect();
    if let Some(c) = &e.class {
        ev.tags.insert("error.class".into(), c.clone());
    }
    if let Some(r) = &e.request.request_id {
        ev.tags.insert("request_id".into(), r.clone());
    }
    ev.extra = e.fields.clone().into_iter().collect();
    let stack = (!e.frames.is_empty()).then(|| Stacktrace {
        frames: e
            .frames
            .iter()
            .map(|f| Frame {
                function: Some(f.function.clone()),
                filename: f.file.clone(),
                lineno: f.line.map(u64::from),
                in_app: Some(f.in_app),
                ..Frame::default()
            })
            .collect(),
        ..Stacktrace::default()
    });
    let mut exceptions: Vec<Exception> = if e.chain.is_empty() {
        vec![Exception {
            ty: e
                .class
                .clone()
                .map_or_else(|| "Error".to_owned(), |c| format!("{c} error")),
            value: Some(e.message.clone()),
            module: e.module.clone(),
            ..Exception::default()
        }]
    } else {
        e.chain
            .iter()
            .map(|l| Exception {
                ty: l.ty.clone().unwrap_or_else(|| "Error".to_owned()),
                value: Some(l.message.clone()),
                ..Exception::default()
            })
            .collect()
    };
    exceptions.reverse();
    if let Some(last) = exceptions.last_mut() {
        last.stacktrace = stack;
        last.module.clone_from(&e.module);
        if e.target == "panic" {
            last.ty = "panic".to_owned();
            last.mechanism = Some(sentry::protocol::Mechanism {
                ty: "panic".to_owned(),
                handled: Some(false),
                ..sentry::protocol::Mechanism::default()
            });
        }
    }
    ev.exception = Values::from(exceptions);
    ev.breadcrumbs = Values::from(
        e.breadcrumbs
            .iter()
            .map(|b| Breadcrumb {
                timestamp: time_of(&b.timestamp),
                category: Some(b.target.clone()),
                level: level(&b.level),
                message: Some(b.message.clone()),
                data: b.data.clone().into_iter().collect(),
                ..Breadcrumb::default()
            })
            .collect::<Vec<_>>(),
    );
    if let Some(user) = &e.request.user_id {
        ev.user = Some(User {
            id: Some(user.clone()),
            ..User::default()
        });
    }
    // HTTP requests only (jobs have a route-like name but no method).
    if e.request.method.is_some() {
        let mut headers = Map::new();
        if let Some(id) = &e.request.request_id {
            headers.insert("x-request-id".to_owned(), id.clone());
        }
        ev.request = Some(Request {
            method: e.request.method.clone(),
            url: e.request.route.as_deref().and_then(|r| {
                format!(
                    "http://{}{r}",
                    e.tags.get("service").map_or("app", String::as_str)
                )
                .parse()
                .ok()
            }),
            headers,
            ..Request::default()
        });
    }
    if let (Some(t), Some(s)) = (
        e.request.trace_id.as_deref().and_then(hex::<16>),
        e.request.span_id.as_deref().and_then(hex::<8>),
    ) {
        ev.contexts.insert(
            "trace".to_owned(),
            Context::Trace(Box::new(TraceContext {
                trace_id: TraceId::from(t),
                span_id: SpanId::from(s),
                ..TraceContext::default()
            })),
        );
    }
    ev
}

/// Parses strata's RFC 3339 timestamps (`2026-11-25T10:40:39.935190Z`).
fn time_of(ts: &str) -> SystemTime {
    strata_core::time::parse_rfc3339(ts).unwrap_or_else(SystemTime::now)
}

/// The Sentry client as a capture output.
pub(crate) struct SentryOutput {
    pub(crate) client: sentry::Client,
}

impl Output for SentryOutput {
    fn take(&mut self, event: &ErrorEvent, counters: &Counters) {
        self.client.capture_event(to_sentry(event), None);
        counters.sent.fetch_add(1, Ordering::Relaxed);
    }

    fn flush(&mut self, deadline: Instant) {
        self.client
            .flush(Some(deadline.saturating_duration_since(Instant::now())));
    }
}

/// Creates [`CountingTransport`]s for the Sentry client.
pub(crate) struct CountingTransportFactory {
    pub(crate) counters: Arc<Counters>,
}

impl sentry::TransportFactory for CountingTransportFactory {
    fn create_transport_with_options(
        &self,
        options: sentry::TransportOptions,
    ) -> Arc<dyn sentry::Transport> {
        Arc::new(CountingTransport {
            url: options.dsn.envelope_api_url().to_string(),
            auth: options.dsn.to_auth(Some(&options.user_agent)).to_string(),
            client: OnceLock::new(),
            limits: Mutex::new(RateLimiter::new()),
            counters: Arc::clone(&self.counters),
            failing: AtomicU64::new(0),
        })
    }
}

/// Sends each envelope at once, on the capture thread — whose bounded queue is what bounds
/// memory while the server is slow or away — honouring the server's rate limits, and counts
/// every event the server did not take (`CaptureStats::undelivered`). The sentry crate's own
/// transport queues in a channel of 30 and drops silently; a tired on-call engineer needs to
/// know that errors went missing.
pub(crate) struct CountingTransport {
    url: String,
    auth: String,
    /// Made on the capture thread at the first send: a blocking client may not be made
    /// inside an async runtime, where `init` often runs.
    client: OnceLock<Option<reqwest::blocking::Client>>,
    limits: Mutex<RateLimiter>,
    counters: Arc<Counters>,
    /// Failed sends since the last success (0: working).
    failing: AtomicU64,
}

impl CountingTransport {
    fn lost(&self, why: &dyn std::fmt::Display) {
        self.counters.undelivered.fetch_add(1, Ordering::Relaxed);
        if self.failing.fetch_add(1, Ordering::Relaxed) == 0 {
            eprintln!(
                "strata-capture: sending an error event to Sentry failed: {why}; further failures are counted until it recovers"
            );
        }
    }

    fn delivered(&self) {
        let failures = self.failing.swap(0, Ordering::Relaxed);
        if failures > 0 {
            eprintln!(
                "strata-capture: error events reach Sentry again (after {failures} failed sends)"
            );
        }
    }
}

impl sentry::Transport for CountingTransport {
    fn send_envelope(&self, envelope: sentry::Envelope) {
        let client = self.client.get_or_init(|| {
            reqwest::blocking::Client::builder()
                .connect_timeout(Duration::from_secs(5))
                .timeout(Duration::from_secs(10))
                .build()
                .ok()
        });
        let Some(client) = client else {
            return self.lost(&"no HTTP client (TLS backend unavailable)");
        };
        {
            // strata sends error events only: their category, or everything, may be limited.
            let limits = self.limits.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(left) = limits
                .is_disabled(RateLimitingCategory::Any)
                .or_else(|| limits.is_disabled(RateLimitingCategory::Error))
            {
                return self.lost(&format_args!("rate-limited for {} s more", left.as_secs()));
            }
        }
        let mut body = Vec::new();
        if let Err(e) = envelope.to_writer(&mut body) {
            return self.lost(&e);
        }
        let response = client
            .post(&self.url)
            .header("X-Sentry-Auth", &self.auth)
            .body(body)
            .send();
        match response {
            Ok(r) => {
                let status = r.status();
                let header = |name: &str| r.headers().get(name).and_then(|v| v.to_str().ok());
                {
                    let mut limits = self.limits.lock().unwrap_or_else(|e| e.into_inner());
                    if let Some(h) = header("x-sentry-rate-limits") {
                        limits.update_from_sentry_header(h);
                    } else if let Some(h) = header("retry-after") {
                        limits.update_from_retry_after(h);
                    } else if status.as_u16() == 429 {
                        limits.update_from_429();
                    }
                }
                if status.is_success() {
                    self.delivered();
                } else {
                    self.lost(&format_args!("the server answered {status}"));
                }
            }
            Err(e) => self.lost(&e),
        }
    }
}
