//! Sentry-style error capture for strata: every ERROR and CRITICAL event becomes an error
//! event with its message, `source()` chain, stack trace, breadcrumbs (the request's last
//! events), request context, tags and span fields; events are grouped by a stable fingerprint
//! and sent to any Sentry-protocol server (sentry.io, GlitchTip, Bugsink) by DSN, or kept in a
//! local SQLite store when there is none. A panic hook logs CRITICAL, captures and flushes
//! everything before the process dies.
//!
//! ```
//! use strata_capture::Capture;
//! use tracing_subscriber::prelude::*;
//!
//! # let dir = tempfile::tempdir()?;
//! let (capture, guard) = Capture::new()
//!     .with_release("1.4.2")
//!     .with_environment("production")
//!     .with_store(dir.path().join("errors.db")) // or .with_dsn("https://key@o1.ingest.sentry.io/1")?
//!     .start()?;
//! let _default = tracing_subscriber::registry()
//!     .with(strata_core::StoreLayer::default())
//!     .with(capture)
//!     .set_default();
//! strata_capture::install_panic_hook();
//!
//! tracing::info!("a breadcrumb");
//! tracing::error!(order_id = 42, "charging the card failed");
//! guard.flush(std::time::Duration::from_secs(5));
//! assert_eq!(guard.stats().stored, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Business-class errors (see [`strata_core::ErrorClass`]) are kept as breadcrumbs, not
//! issues. A failed request is one issue: strata-request-id's access line for a 5xx is captured
//! only when the request captured no error of its own (a handler that answered 500 without
//! logging why). Everything after the caller has gathered the event — resolving the stack,
//! redaction, the before-send hook, the store and the network — happens on the capture thread,
//! behind a bounded queue whose drops are counted.
//!
//! With [`Capture::with_redaction`], secrets never reach the store or the server: sensitive
//! fields (by name, whatever their type) become `"[REDACTED]"` and secrets recognised by their
//! shape are masked in the message, the error chain, field values, breadcrumbs and the request
//! context ([`ErrorEvent::redact`]); grouping is unchanged.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod crumbs;
mod event;
mod layer;
mod panic;
#[cfg(feature = "sentry")]
mod sentry_out;
#[cfg(feature = "store")]
mod store;
mod worker;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::mpsc::{self, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use strata_core::{Classify, Severity};

pub use event::{BreadcrumbRecord, ChainLink, ErrorEvent, Frame, RequestContext};
pub use layer::CaptureLayer;
pub use panic::{install_panic_hook, install_panic_hook_with};
#[cfg(feature = "store")]
pub use store::{Group, LocalStore, Recorded, StoreError};
pub use worker::{BeforeSend, CaptureStats};

use worker::{Config, Counters, Msg, Output, Shared};

/// The capture could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaptureError {
    /// The DSN does not parse (the DSN itself is not repeated: it holds a key).
    #[error("invalid DSN: {reason}; expected https://<public key>@<host>/<project id>")]
    InvalidDsn {
        /// What is wrong with it.
        reason: String,
    },
    /// A DSN was given but the crate was built without its `sentry` feature.
    #[error("a DSN was given but strata-capture was built without its `sentry` feature")]
    SentryDisabled,
    /// The local store could not be opened.
    #[cfg(feature = "store")]
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The capture thread could not be started.
    #[error("could not start the capture thread: {0}")]
    Spawn(#[from] std::io::Error),
}

/// The capture's settings; [`Capture::start`] makes the layer and its guard.
pub struct Capture {
    dsn: Option<String>,
    store: Option<PathBuf>,
    release: Option<String>,
    environment: Option<String>,
    service: Option<String>,
    breadcrumbs: usize,
    crumb_min: Severity,
    capture_min: Severity,
    backtraces: bool,
    in_app: Vec<String>,
    queue: usize,
    max_len: usize,
    before_send: Option<BeforeSend>,
    redaction: Option<Arc<strata_core::Redaction>>,
}

impl std::fmt::Debug for Capture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Capture")
            .field("dsn", &self.dsn.as_ref().map(|_| "(hidden)"))
            .field("store", &self.store)
            .field("release", &self.release)
            .field("environment", &self.environment)
            .field("breadcrumbs", &self.breadcrumbs)
            .field("redaction", &self.redaction.is_some())
            .finish_non_exhaustive()
    }
}

impl Default for Capture {
    fn default() -> Self {
        Self::new()
    }
}

/// Where the local store goes by default: `STRATA_ERRORS_DB`, or `.strata/errors.db` in the
/// working directory (where `strata errors` looks).
pub fn default_store_path() -> PathBuf {
    std::env::var_os("STRATA_ERRORS_DB")
        .filter(|p| !p.is_empty())
        .map_or_else(|| PathBuf::from(".strata").join("errors.db"), PathBuf::from)
}

impl Capture {
    /// Defaults: no DSN (so the local store at [`default_store_path`]), 100 breadcrumbs from
    /// INFO, ERROR and CRITICAL captured, stack traces on, a queue of 256 events, values cut at
    /// 8 KiB, no redaction; release, environment and service from `STRATA_VERSION`,
    /// `STRATA_ENV` and `STRATA_SERVICE` when set.
    pub fn new() -> Self {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        Capture {
            dsn: None,
            store: None,
            release: env("STRATA_VERSION"),
            environment: env("STRATA_ENV"),
            service: env("STRATA_SERVICE"),
            breadcrumbs: 100,
            crumb_min: Severity::Info,
            capture_min: Severity::Error,
            backtraces: true,
            in_app: Vec::new(),
            queue: 256,
            max_len: 8 * 1024,
            before_send: None,
            redaction: None,
        }
    }

    /// Sends events to the Sentry-protocol server of `dsn`.
    ///
    /// # Errors
    ///
    /// [`CaptureError::InvalidDsn`] when it does not parse; [`CaptureError::SentryDisabled`]
    /// without the `sentry` feature.
    pub fn with_dsn(mut self, dsn: &str) -> Result<Self, CaptureError> {
        #[cfg(feature = "sentry")]
        {
            dsn.trim()
                .parse::<sentry::types::Dsn>()
                .map_err(|e| CaptureError::InvalidDsn {
                    reason: e.to_string(),
                })?;
            self.dsn = Some(dsn.trim().to_owned());
            Ok(self)
        }
        #[cfg(not(feature = "sentry"))]
        {
            let _ = (dsn, &mut self);
            Err(CaptureError::SentryDisabled)
        }
    }

    /// Keeps events in a local store at `path` (also when a DSN is set).
    #[must_use]
    pub fn with_store(mut self, path: impl Into<PathBuf>) -> Self {
        self.store = Some(path.into());
        self
    }

    /// The release (version) events are tagged with; the store tracks new errors and
    /// regressions per release.
    #[must_use]
    pub fn with_release(mut self, release: impl Into<String>) -> Self {
        self.release = Some(release.into());
        self
    }

    /// The deployment environment.
    #[must_use]
    pub fn with_environment(mut self, env: impl Into<String>) -> Self {
        self.environment = Some(env.into());
        self
    }

    /// The service name tag.
    #[must_use]
    pub fn with_service(mut self, service: impl Into<String>) -> Self {
        self.service = Some(service.into());
        self
    }

    /// How many breadcrumbs each request (and the process outside requests) keeps, and the
    /// lowest level recorded. Default: 100 from INFO.
    #[must_use]
    pub fn with_breadcrumbs(mut self, n: usize, min: Severity) -> Self {
        self.breadcrumbs = n.clamp(1, 10_000);
        self.crumb_min = min;
        self
    }

    /// The lowest level captured as an error event. Default: ERROR (which includes CRITICAL).
    #[must_use]
    pub fn with_min_level(mut self, min: Severity) -> Self {
        self.capture_min = min;
        self
    }

    /// Whether stack traces are captured (resolved on the capture thread). Default: on.
    #[must_use]
    pub fn with_backtraces(mut self, on: bool) -> Self {
        self.backtraces = on;
        self
    }

    /// Crates whose frames are marked in-app even though they look like libraries (repeatable).
    #[must_use]
    pub fn with_in_app(mut self, krate: impl Into<String>) -> Self {
        self.in_app.push(krate.into());
        self
    }

    /// The queue's capacity in events (1 to 100 000). Default: 256.
    #[must_use]
    pub fn with_queue_capacity(mut self, n: usize) -> Self {
        self.queue = n.clamp(1, 100_000);
        self
    }

    /// The longest string kept in a field, message or breadcrumb, in bytes. Default: 8 KiB.
    #[must_use]
    pub fn with_max_field_len(mut self, n: usize) -> Self {
        self.max_len = n.max(16);
        self
    }

    /// A hook run on every event before it is stored or sent (on the capture thread), after
    /// [`Capture::with_redaction`]'s masking: change it or return `false` to drop it.
    #[must_use]
    pub fn with_before_send(
        mut self,
        hook: impl Fn(&mut ErrorEvent) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.before_send = Some(Arc::new(hook));
        self
    }

    /// Masks secrets in every event (see [`strata_core::redact`] and [`ErrorEvent::redact`]):
    /// values of fields with sensitive names — the event's, its spans', breadcrumb data,
    /// nested keys — become `"[REDACTED]"` whatever their type, and the message, the error
    /// chain, text values, breadcrumbs and the request context are scanned for secrets. Done
    /// on the capture thread (the caller pays nothing), before the before-send hook, the local
    /// store and the Sentry client; the fingerprint is computed from the event as logged, so
    /// grouping does not change. Default: none.
    #[must_use]
    pub fn with_redaction(mut self, redaction: Option<Arc<strata_core::Redaction>>) -> Self {
        self.redaction = redaction;
        self
    }

    /// Opens the outputs and starts the capture thread.
    ///
    /// # Errors
    ///
    /// When the store cannot be opened or the thread cannot start.
    pub fn start(self) -> Result<(CaptureLayer, CaptureGuard), CaptureError> {
        #[allow(unused_variables, reason = "read by the store, an optional output")]
        let release = self.release.clone().unwrap_or_else(|| "unknown".to_owned());
        let counters = Arc::new(Counters::default());
        let mut outputs: Vec<Box<dyn Output>> = Vec::new();
        #[cfg(feature = "sentry")]
        if let Some(dsn) = &self.dsn {
            let mut o = sentry::ClientOptions::new();
            o.dsn = dsn.parse().ok();
            o.release = self.release.clone().map(Into::into);
            o.environment = self.environment.clone().map(Into::into);
            o.default_integrations = false;
            o.send_default_pii = false;
            // The sentry crate's own diagnostics on stderr, for debugging delivery.
            o.debug = std::env::var_os("STRATA_SENTRY_DEBUG").is_some();
            // Sent from the capture thread (whose queue bounds memory), and counted when the
            // server does not take them: the sentry crate's own transport drops silently.
            o.transport = Some(Arc::new(sentry_out::CountingTransportFactory {
                counters: Arc::clone(&counters),
            }));
            let o = sentry::apply_defaults(o);
            outputs.push(Box::new(sentry_out::SentryOutput {
                client: sentry::Client::from(o),
            }));
        }
        #[cfg(feature = "store")]
        if self.store.is_some() || self.dsn.is_none() {
            let path = self.store.clone().unwrap_or_else(default_store_path);
            outputs.push(Box::new(store::StoreOutput {
                store: LocalStore::open(&path, &release)?,
                reported: false,
            }));
        }
        let mut tags = BTreeMap::new();
        let host = strata_core::host_name();
        for (k, v) in [
            ("service", self.service.clone()),
            ("environment", self.environment.clone()),
            ("release", self.release.clone()),
            ("host", host),
        ] {
            if let Some(v) = v {
                tags.insert(k.to_owned(), v);
            }
        }
        let (tx, rx) = mpsc::sync_channel(self.queue);
        let shared = Arc::new(Shared {
            id: strata_core::store::next_id(),
            cfg: Config {
                breadcrumbs: self.breadcrumbs,
                crumb_min: self.crumb_min,
                capture_min: self.capture_min,
                backtraces: self.backtraces,
                in_app: self.in_app,
                max_len: self.max_len,
                tags,
                release: self.release,
                environment: self.environment,
                before_send: self.before_send,
                redaction: self.redaction,
            },
            tx: tx.clone(),
            counters,
            threads: crumbs::ThreadRings::default(),
        });
        let worker = Arc::clone(&shared);
        let handle = std::thread::Builder::new()
            .name("strata-capture".to_owned())
            .spawn(move || {
                strata_core::background_thread();
                worker::run(&rx, &worker, &mut outputs);
            })?;
        let for_flush = tx.clone();
        let registration = strata_core::flush::register("strata-capture", move |deadline| {
            request_flush(&for_flush, deadline);
        });
        let guard = CaptureGuard {
            tx: Mutex::new(Some(tx)),
            counters: Arc::clone(&shared.counters),
            handle: Some(handle),
            _registration: registration,
        };
        Ok((CaptureLayer { shared }, guard))
    }
}

/// Asks the thread to process everything queued and flush its outputs; waits until `deadline`
/// (not at all on the capture thread itself, which would wait for its own answer).
fn request_flush(tx: &SyncSender<Msg>, deadline: Instant) -> bool {
    if worker::on_capture_thread() {
        return false;
    }
    let (ack_tx, ack_rx) = mpsc::sync_channel(1);
    match send_until(tx, Msg::Flush(deadline, ack_tx), deadline) {
        Sent::Yes => ack_rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .is_ok(),
        // The thread is gone: nothing is pending.
        Sent::Gone => true,
        Sent::TimedOut => false,
    }
}

enum Sent {
    Yes,
    Gone,
    TimedOut,
}

/// Sends `msg`, waiting for room in the queue until `deadline` (the queue may be full of
/// errors: the capture thread is working through them).
fn send_until(tx: &SyncSender<Msg>, mut msg: Msg, deadline: Instant) -> Sent {
    loop {
        match tx.try_send(msg) {
            Ok(()) => return Sent::Yes,
            Err(mpsc::TrySendError::Disconnected(_)) => return Sent::Gone,
            Err(mpsc::TrySendError::Full(m)) if Instant::now() < deadline => {
                msg = m;
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(mpsc::TrySendError::Full(_)) => return Sent::TimedOut,
        }
    }
}

/// Flushes the capture (waiting at most 5 s) and stops its thread when dropped.
#[must_use = "dropping the guard stops error capture; hold it until the end of main"]
pub struct CaptureGuard {
    tx: Mutex<Option<SyncSender<Msg>>>,
    counters: Arc<Counters>,
    handle: Option<JoinHandle<()>>,
    _registration: strata_core::flush::Registration,
}

impl std::fmt::Debug for CaptureGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptureGuard")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl CaptureGuard {
    /// Waits (at most `timeout`) until every event captured so far is stored and handed to the
    /// transport, and the transport has sent it; `false` when time ran out.
    pub fn flush(&self, timeout: Duration) -> bool {
        let tx = self.tx.lock().unwrap_or_else(|e| e.into_inner()).clone();
        tx.is_none_or(|tx| request_flush(&tx, Instant::now() + timeout))
    }

    /// What the capture has done so far.
    pub fn stats(&self) -> CaptureStats {
        worker::stats(&self.counters)
    }
}

impl Drop for CaptureGuard {
    fn drop(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        let flushed = self.flush(Duration::from_secs(5));
        // The queue may be full again (errors logged meanwhile): retry until the deadline.
        let stopped = self
            .tx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .is_some_and(|tx| matches!(send_until(&tx, Msg::Stop, deadline), Sent::Yes));
        // Join only a thread that was told to stop and is not stuck.
        if let Some(h) = self.handle.take()
            && flushed
            && stopped
        {
            let _ = h.join();
        }
    }
}

/// Logs `error` at its class's level with its chain and the current context (so the capture
/// layer captures it unless it is a business error): for the boundaries of a service — an HTTP
/// handler, a job runner, a CLI's `main`.
///
/// ```
/// use strata_core::{Classify, ErrorClass};
///
/// #[derive(Debug)]
/// struct Timeout;
/// impl std::fmt::Display for Timeout {
///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str("timed out") }
/// }
/// impl std::error::Error for Timeout {}
/// impl Classify for Timeout { fn class(&self) -> ErrorClass { ErrorClass::External } }
///
/// strata_capture::report(&Timeout); // ERROR, error.class = "external", captured
/// ```
///
/// The caller's location is recorded as `report.location` and groups the error (not this
/// function's own line).
#[track_caller]
pub fn report<E>(error: &E)
where
    E: std::error::Error + Classify + 'static,
{
    let caller = std::panic::Location::caller();
    strata_core::log_error!(*error, report.location = %caller, "{error}");
}
