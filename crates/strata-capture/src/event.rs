//! The error event: what one captured error carries, stored locally as JSON and converted to a
//! Sentry event for a DSN.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use strata_core::redact::{MASK, Redaction};

/// One link of an error's `source()` chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainLink {
    /// The error's type, where it can be known (`my_crate::PaymentError`, `std::io::Error`).
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub ty: Option<String>,
    /// Its `Display` text.
    pub message: String,
}

/// One stack frame, outermost caller first (Sentry's order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Frame {
    /// The function, demangled, without its hash.
    pub function: String,
    /// The source file, when debug info has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// The line, when debug info has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    /// Whether the frame is the application's own code (not the standard library, the async
    /// runtime, the web framework, tracing or strata).
    pub in_app: bool,
}

/// One breadcrumb: an event that happened before the error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BreadcrumbRecord {
    /// RFC 3339, UTC.
    pub timestamp: String,
    /// `INFO`, `WARN`, …
    pub level: String,
    /// The event's target.
    pub target: String,
    /// The event's message.
    pub message: String,
    /// The event's fields.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub data: Map<String, Value>,
}

/// Where the error happened: the request or job it belongs to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestContext {
    /// The request ID (strata-request-id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The W3C trace ID, when a tracing layer set one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// The W3C span ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub span_id: Option<String>,
    /// The user, from a `user_id` field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// The route template (`/users/{id}`), or a job's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// The HTTP method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
}

/// A captured error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ErrorEvent {
    /// 32 hex digits.
    pub event_id: String,
    /// RFC 3339, UTC.
    pub timestamp: String,
    /// Milliseconds since the Unix epoch (for ordering and the store).
    pub unix_ms: i64,
    /// `ERROR` or `CRITICAL`.
    pub level: String,
    /// The event's message (or the error's, when the event had none).
    pub message: String,
    /// The event's target.
    pub target: String,
    /// The module that logged it (the fingerprint's call site).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
    /// Source file and line of the log call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// `business`, `external` or `system`, when logged with a class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    /// The error and its `source()` chain, outermost first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chain: Vec<ChainLink>,
    /// The stack where the error was captured, outermost caller first (empty when stack
    /// traces are off).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub frames: Vec<Frame>,
    /// The events before it: of the same request, or the process's latest.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub breadcrumbs: Vec<BreadcrumbRecord>,
    /// Request or job context.
    #[serde(default)]
    pub request: RequestContext,
    /// service, environment, release, host.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// The event's fields and those of its spans (the event's win).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub fields: Map<String, Value>,
    /// The group: error type chain + normalised message + module, 16 hex digits.
    pub fingerprint: String,
    /// The thread that logged it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread: Option<String>,
    /// The release (version) that logged it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    /// The deployment environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
}

impl ErrorEvent {
    /// Calls `f` on every piece of text in the event that came from the application — the
    /// message, each link of the chain, every field value and breadcrumb (message and data),
    /// the user — with the field's name where there is one. A way to redact by rules of one's
    /// own (strata's rules: [`ErrorEvent::redact`], or `Capture::with_redaction`):
    ///
    /// ```
    /// # fn redact(e: &mut strata_capture::ErrorEvent) {
    /// e.visit_text(|key, text| {
    ///     if key.is_some_and(|k| k.contains("password")) || text.contains("Bearer ") {
    ///         *text = "[redacted]".to_owned();
    ///     }
    /// });
    /// # }
    /// ```
    pub fn visit_text(&mut self, mut f: impl FnMut(Option<&str>, &mut String)) {
        fn value(key: &str, v: &mut Value, f: &mut impl FnMut(Option<&str>, &mut String)) {
            match v {
                Value::String(s) => f(Some(key), s),
                Value::Array(a) => a.iter_mut().for_each(|v| value(key, v, f)),
                Value::Object(m) => m.iter_mut().for_each(|(k, v)| value(k, v, f)),
                _ => {}
            }
        }
        f(Some("message"), &mut self.message);
        for link in &mut self.chain {
            f(Some("error"), &mut link.message);
        }
        for (k, v) in &mut self.fields {
            value(k, v, &mut f);
        }
        for b in &mut self.breadcrumbs {
            f(Some("message"), &mut b.message);
            for (k, v) in &mut b.data {
                value(k, v, &mut f);
            }
        }
        if let Some(u) = &mut self.request.user_id {
            f(Some("user_id"), u);
        }
    }

    /// Masks secrets with `rules` (see [`strata_core::redact`]): the value of every field
    /// whose name is [sensitive](Redaction::is_sensitive) — the event's and its spans', in
    /// breadcrumb data, and keys of nested objects — becomes `"[REDACTED]"` whatever its JSON
    /// type; every other string — the message, each link of the chain, field values (in arrays
    /// and objects too), breadcrumb messages and data, and the request context (request ID,
    /// user, route, method) — goes through [`Redaction::redact`]. The fingerprint, types,
    /// code locations, tags and stack frames are left as they are.
    ///
    /// ```
    /// # fn mask(e: &mut strata_capture::ErrorEvent) {
    /// e.redact(&strata_core::Redaction::new());
    /// # }
    /// ```
    pub fn redact(&mut self, rules: &Redaction) {
        fn value(rules: &Redaction, v: &mut Value) {
            match v {
                Value::String(s) => _ = rules.redact_in_place(s),
                Value::Array(a) => a.iter_mut().for_each(|v| value(rules, v)),
                Value::Object(m) => fields(rules, m),
                _ => {}
            }
        }
        fn fields(rules: &Redaction, m: &mut Map<String, Value>) {
            for (k, v) in m.iter_mut() {
                if rules.is_sensitive(k) {
                    *v = Value::String(MASK.to_owned());
                } else {
                    value(rules, v);
                }
            }
        }
        let text = |s: &mut String| _ = rules.redact_in_place(s);
        text(&mut self.message);
        for link in &mut self.chain {
            text(&mut link.message);
        }
        fields(rules, &mut self.fields);
        for b in &mut self.breadcrumbs {
            text(&mut b.message);
            fields(rules, &mut b.data);
        }
        let r = &mut self.request;
        for s in [
            &mut r.request_id,
            &mut r.user_id,
            &mut r.route,
            &mut r.method,
        ]
        .into_iter()
        .flatten()
        {
            text(s);
        }
    }

    /// The error's type (the outermost link with a known type), for titles.
    pub fn error_type(&self) -> Option<&str> {
        self.chain.iter().find_map(|l| l.ty.as_deref())
    }

    /// `Type: message`, or the message.
    pub fn title(&self) -> String {
        match self.error_type() {
            Some(t) => format!("{t}: {}", self.message),
            None => self.message.clone(),
        }
    }
}

/// Crates whose frames are not the application's.
const NOT_APP: &[&str] = &[
    "std::",
    "core::",
    "alloc::",
    "<std::",
    "<core::",
    "<alloc::",
    "tokio::",
    "<tokio::",
    "futures",
    "<futures",
    "tracing",
    "<tracing",
    "hyper",
    "<hyper",
    "tower",
    "<tower",
    "axum",
    "<axum",
    "backtrace::",
    "<backtrace::",
    "strata_",
    "<strata_",
    "__rust",
    "rust_begin_unwind",
    "test::",
    "<test::",
];

/// Frames at the top of the stack that belong to the capture itself and are cut.
const CAPTURE_MACHINERY: &[&str] = &[
    "backtrace::",
    "<backtrace::",
    "strata_capture::",
    "<strata_capture::",
    "tracing",
    "<tracing",
    "strata_core::error::with_error_type",
    "core::ops::function",
    "<alloc::boxed::Box<F,A> as core::ops::function::Fn",
    "std::panicking",
    "core::panicking",
    "std::panic",
    "std::sys::backtrace",
    "std::rt::",
    "__rustc",
    "rust_begin_unwind",
];

/// The innermost frames captured: the application's code and the framework layers around it.
/// Unwinding costs the caller's thread about a microsecond per frame, so the runtime's outer
/// frames (which say nothing about the error) are left out.
pub(crate) const MAX_FRAMES: usize = 32;

/// The instruction pointers of the caller's stack, innermost first (cheap: nothing resolved).
pub(crate) fn capture_stack() -> Vec<usize> {
    let mut ips = Vec::with_capacity(MAX_FRAMES);
    // SAFETY: the unsynchronized walk only reads this thread's stack; the lock the synchronized
    // one takes is shared with symbol resolution, which the capture thread may be doing for
    // seconds (the first time it parses the debug info) — callers must not wait on that.
    unsafe {
        backtrace::trace_unsynchronized(|frame| {
            ips.push(frame.ip() as usize);
            ips.len() < MAX_FRAMES
        });
    }
    ips
}

/// Resolves a stack captured on the caller's thread into frames, outermost first, without the
/// capture machinery on top. `in_app` names crates that are the application's (frames of
/// other crates are the application's unless they are a known library).
pub(crate) fn frames(ips: &[usize], in_app: &[String]) -> Vec<Frame> {
    let mut out: Vec<Frame> = Vec::new();
    for &ip in ips {
        backtrace::resolve(ip as *mut std::ffi::c_void, |sym| {
            let Some(name) = sym.name() else { return };
            let function = format!("{name:#}");
            out.push(Frame {
                in_app: in_app.iter().any(|c| {
                    function.starts_with(c.as_str()) && function[c.len()..].starts_with("::")
                }) || !NOT_APP.iter().any(|p| function.starts_with(p)),
                file: sym.filename().map(|f| f.display().to_string()),
                line: sym.lineno(),
                function,
            });
        });
    }
    // Innermost first here: cut the capture machinery, then stop at the runtime's entry.
    let skip = out
        .iter()
        .position(|f| !CAPTURE_MACHINERY.iter().any(|p| f.function.starts_with(p)))
        .unwrap_or(0);
    out.drain(..skip);
    out.truncate(100);
    out.reverse();
    out
}
