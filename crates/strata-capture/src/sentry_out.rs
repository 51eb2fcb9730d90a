//! Error events to any Sentry-protocol server, through the `sentry` crate's protocol types
//! and transport (which queues, retries and honours rate limits).

use std::borrow::Cow;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use sentry::protocol::{
    Breadcrumb, Context, Event, Exception, Frame, Level, Map, Request, SpanId, Stacktrace,
    TraceContext, TraceId, User, Values,
};

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
