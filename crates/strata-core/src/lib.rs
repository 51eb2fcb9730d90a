//! Shared vocabulary of the strata observability stack.
//!
//! - [`Severity`]: TRACE … ERROR plus CRITICAL, emitted with [`critical!`] and mapped to
//!   OpenTelemetry severity numbers.
//! - [`ErrorClass`] and [`Classify`]: the tiered error strategy (business / external / system),
//!   and [`log_error!`] to log an error at the level its class calls for, with its chain.
//! - [`store`]: the span-field store every strata layer reads — each span's fields captured
//!   once, structured, inherited by events in child spans.
//! - [`encode`]: allocation-free JSON encoding primitives.
//!
//! # Setup
//!
//! Layers of other strata crates maintain the store themselves; [`StoreLayer`] does only that,
//! for code that wants to read span fields with no output installed:
//!
//! ```
//! use strata_core::{critical, store, StoreLayer};
//! use tracing_subscriber::prelude::*;
//!
//! let subscriber = tracing_subscriber::registry().with(StoreLayer::new());
//! tracing::subscriber::with_default(subscriber, || {
//!     let span = tracing::info_span!("request", request_id = "abc", user_id = 7_u64);
//!     let _guard = span.enter();
//!     tracing::info!("inside a request");
//!     critical!("the database is unreachable");
//! });
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod encode;
pub mod error;
pub mod fingerprint;
pub mod flush;
pub mod redact;
mod severity;
pub mod store;
pub mod time;

pub use error::{Classify, ErrorClass};
pub use redact::Redaction;
pub use severity::{CRITICAL_FIELD, ParseSeverityError, Severity};
pub use store::{FieldValue, SpanFields, TraceContext};

/// The service name strata uses when none is given in code: `STRATA_SERVICE`, or the
/// executable's name.
pub fn default_service_name() -> String {
    if let Ok(s) = std::env::var("STRATA_SERVICE")
        && !s.trim().is_empty()
    {
        return s.trim().to_owned();
    }
    std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "unknown_service".to_owned())
}

/// This machine's host name (printable ASCII), for syslog headers, error tags and the
/// OpenTelemetry resource; `None` where it cannot be read.
pub fn host_name() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_graphic()))
}

/// Marks the calling thread as background work, for strata's export and writer threads: nice
/// 10 on Linux (a thread's nice value is its own there), so a request thread sharing its CPU
/// runs first and telemetry waits in its queue. On a CPU saturated for long the queues can
/// then overflow sooner: those losses are counted like any other. Elsewhere nothing. Best
/// effort: failing (a seccomp filter, a container that forbids it) changes nothing else.
pub fn background_thread() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority with `who` 0 changes the calling thread only; no memory is passed.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, 10);
    }
}

/// Targets of the network stack and of telemetry crates (strata's own sinks included). Their
/// events must never be sent over the network by a telemetry sink — each send would log again,
/// a feedback loop. A prefix ending in `_` matches crate families (`hyper_util`). Not tower or
/// tower-http: their request spans and events (`TraceLayer`) are the application's.
pub const TELEMETRY_TARGETS: &[&str] = &[
    "hyper",
    "hyper_",
    "h2",
    "tonic",
    "tonic_",
    "reqwest",
    "lettre",
    "opentelemetry",
    "opentelemetry_",
    "tracing_opentelemetry",
    "rustls",
    "rustls_",
    "tokio_rustls",
    "hickory_",
    "sentry",
    "sentry_",
    "strata_router",
    "strata_otlp",
    "strata_capture",
];

/// Whether `target` belongs to one of [`TELEMETRY_TARGETS`] (`tonic::transport` does,
/// `tonics` does not; module paths and `-` separated names both count).
pub fn is_telemetry_target(target: &str) -> bool {
    TELEMETRY_TARGETS.iter().any(|prefix| {
        target.strip_prefix(prefix).is_some_and(|rest| {
            rest.is_empty()
                || rest.starts_with("::")
                || rest.starts_with('-')
                || prefix.ends_with('_')
        })
    })
}

use tracing_core::Subscriber;
use tracing_core::span::{Attributes, Id, Record};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

/// Keys strata JSON lines write themselves in the default schema (some only with an option on:
/// `span`, `file`, `line`, `thread`); a user field with one of these names is always kept under
/// [`RESERVED_PREFIX`] instead (`fields.timestamp`), so a key means the same in every line.
pub const RESERVED_KEYS: &[&str] = &[
    "timestamp",
    "level",
    "service",
    "env",
    "version",
    "target",
    "event",
    "message",
    "trace_id",
    "span_id",
    "span",
    "file",
    "line",
    "thread",
];

/// The prefix a user field gets when its name collides with a key the schema writes itself.
pub const RESERVED_PREFIX: &str = "fields.";

/// A layer that only maintains the span-field [`store`].
///
/// Every strata layer already does this; install `StoreLayer` when you want the store with no
/// strata output (for instance in tests of your own layer).
#[derive(Debug, Clone, Copy)]
pub struct StoreLayer {
    id: u64,
}

impl Default for StoreLayer {
    fn default() -> Self {
        StoreLayer {
            id: store::next_id(),
        }
    }
}

impl StoreLayer {
    /// A new store layer.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }
}

impl<S> Layer<S> for StoreLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        store::on_new_span(attrs, id, &ctx, self.id);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        store::on_record(id, values, &ctx, self.id);
    }
}

/// Keeps the span-field [`store`] from a layer's own hooks, only when the subscriber has no
/// [`StoreLayer`] (which keeps it, first, for every layer): a layer that reads the store calls
/// these from its `on_register_dispatch`, `on_new_span` and `on_record`. With a `StoreLayer`
/// installed, each call is one relaxed load instead of a span lookup and a lock per span.
///
/// ```
/// use strata_core::StoreKeeper;
/// use tracing_core::span::{Attributes, Id, Record};
/// use tracing_core::{Dispatch, Subscriber};
/// use tracing_subscriber::layer::{Context, Layer};
/// use tracing_subscriber::registry::LookupSpan;
///
/// struct MyLayer(StoreKeeper);
///
/// impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for MyLayer {
///     fn on_register_dispatch(&self, subscriber: &Dispatch) {
///         self.0.on_register_dispatch(subscriber);
///     }
///     fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
///         self.0.on_new_span(attrs, id, &ctx);
///     }
///     fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
///         self.0.on_record(id, values, &ctx);
///     }
/// }
/// ```
#[derive(Debug)]
pub struct StoreKeeper {
    /// The layer's id as an owner of the store (see [`store::on_new_span`]).
    owner: u64,
    /// No `StoreLayer` in the subscriber (until registration says otherwise).
    needed: std::sync::atomic::AtomicBool,
}

impl Default for StoreKeeper {
    fn default() -> Self {
        StoreKeeper {
            owner: store::next_id(),
            needed: std::sync::atomic::AtomicBool::new(true),
        }
    }
}

impl StoreKeeper {
    /// A keeper for one layer.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Call from `Layer::on_register_dispatch`: looks for a [`StoreLayer`] in the subscriber.
    pub fn on_register_dispatch(&self, subscriber: &tracing_core::Dispatch) {
        let has_store = subscriber.downcast_ref::<StoreLayer>().is_some();
        self.needed
            .store(!has_store, std::sync::atomic::Ordering::Relaxed);
    }

    /// Call from `Layer::on_new_span`.
    pub fn on_new_span<S>(&self, attrs: &Attributes<'_>, id: &Id, ctx: &Context<'_, S>)
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        if self.needed.load(std::sync::atomic::Ordering::Relaxed) {
            store::on_new_span(attrs, id, ctx, self.owner);
        }
    }

    /// Call from `Layer::on_record`.
    pub fn on_record<S>(&self, id: &Id, values: &Record<'_>, ctx: &Context<'_, S>)
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        if self.needed.load(std::sync::atomic::Ordering::Relaxed) {
            store::on_record(id, values, ctx, self.owner);
        }
    }
}

#[doc(hidden)]
pub mod __private {
    pub use tracing;
}
