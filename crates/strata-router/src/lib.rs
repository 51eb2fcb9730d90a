//! The severity router: each event goes to every route whose filter matches — level range,
//! target prefixes, error class, field predicates — rendered once per format however many sinks
//! take it. Sinks: stdout/stderr, files rotated by size and/or time (with retention and gzip)
//! behind a lossless batching non-blocking writer, syslog (RFC 5424 over UDP, TCP, unix
//! sockets), and alerts to Slack, Discord, PagerDuty, any JSON webhook and email, under a
//! policy that keeps them actionable and never noisy.
//!
//! ```
//! use strata_core::Severity;
//! use strata_router::{
//!     AlertSink, Destination, Format, NonBlockingBuilder, Period, Route, RouteFilter,
//!     RouterLayer, RollingFile, Stdout,
//! };
//! use tracing_subscriber::prelude::*;
//!
//! # let dir = tempfile::tempdir()?;
//! # let logs = dir.path();
//! // Everything from INFO up to a daily file (rotated at 50 MB too), off the request path.
//! let file = RollingFile::new(logs, "app")
//!     .with_max_bytes(50 << 20)
//!     .with_period(Period::Daily)
//!     .with_max_files(10)
//!     .open()?;
//! let (file, _file_guard) = NonBlockingBuilder::default().spawn(file)?;
//! // Errors to the console as text, and to the on-call channel as alerts.
//! let errors = RouteFilter::default().with_levels(Severity::Error, Severity::Critical);
//! let (oncall, _alert_guard) = AlertSink::new(Destination::webhook("http://127.0.0.1:9/alerts")?).spawn()?;
//!
//! let router = RouterLayer::new()
//!     .with_route(Route::new(RouteFilter::default(), Format::Json(strata_json::JsonFormat::new()), file))
//!     .with_route(Route::new(errors.clone(), Format::Text, Stdout))
//!     .with_route(Route::alert(errors, oncall));
//! let _default = tracing_subscriber::registry().with(router).set_default();
//! tracing::info!(order_id = 42, "order placed");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The same from configuration — see [`RouterConfig`] for every key:
//!
//! ```toml
//! [[route]]
//! sink = "file"
//! dir = "logs"
//! max_size = "50MB"
//! rotation = "daily"
//! keep_files = 10
//!
//! [[route]]
//! sink = "slack"
//! url = "https://hooks.slack.com/services/T000/B000/XXXX"
//! throttle = "5m"
//! ```
//!
//! # Redaction
//!
//! [`RouterLayer::with_redaction`] masks secrets (see [`strata_core::redact`]) in every line
//! the router renders, before any sink sees it: text lines, and JSON lines of every format
//! without rules of its own — the alert sinks build their payloads from those lines, so Slack,
//! Discord, PagerDuty, webhooks and email get the masked text too. [`RouterConfig::build_with`]
//! passes on the base format's rules.
//!
//! # Alerts
//!
//! [`AlertSink`] takes a copy of the rendered line into a bounded queue and returns; its own
//! thread parses it, applies the [`AlertPolicy`] per error fingerprint (business errors never
//! alert, CRITICAL alerts at once, external errors only when repeated, repeats folded into one
//! "occurred 37 more times in the last 5 min" digest per window) and delivers with retries,
//! exponential backoff with jitter and `Retry-After`. Payloads follow each service's documented
//! format and limits, with log content unable to mention `@channel`/`@everyone`, forge links or
//! inject email headers. The generic webhook receives one JSON object per alert:
//!
//! | key | what |
//! |---|---|
//! | `version` | `1` |
//! | `kind` | `first`, `repeated` (an external error reached the threshold) or `digest` |
//! | `title`, `text` | `[CRITICAL] service: message`; the repetition sentence or `null` |
//! | `severity`, `class`, `fingerprint` | `ERROR`/`CRITICAL`…, `business`/`external`/`system`/`null`, 16 hex digits |
//! | `message`, `target`, `service`, `environment`, `version_deployed`, `request_id`, `trace_id`, `timestamp` | from the event |
//! | `occurrences`, `window_seconds` | how many, over how long (`1`, `null` for a first alert) |
//! | `error_chain` | `Type: message` of the error and each source |
//! | `event` | the whole log line |
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "alerts")]
mod alert;
mod background;
mod config;
mod file;
mod nonblocking;
mod predicate;
mod router;
mod syslog;
mod text;

#[cfg(feature = "alerts")]
pub use alert::{
    AlertError, AlertGuard, AlertPolicy, AlertSink, AlertStats, Destination, PAGERDUTY_EVENTS_URL,
    Retry,
};
pub use background::{Background, BackgroundGuard};
pub use config::{ConfigError, RouteConfig, RouterConfig, RouterGuard, Size};
pub use file::{ClockFn, FileError, Period, RollingFile};
pub use nonblocking::{
    DropReport, NonBlocking, NonBlockingBuilder, Policy, WorkerGuard, non_blocking,
};
pub use predicate::{FieldPredicate, PredicateError};
pub use router::{
    EventInfo, Format, NO_NETWORK_TARGETS, Route, RouteFilter, RouterLayer, Sink, Stderr, Stdout,
};
pub use syslog::{SyslogSink, Transport};
