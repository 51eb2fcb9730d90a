//! Sinks for strata's output: files rotated by size and/or time, and a lossless, batching
//! non-blocking writer that never makes a request wait on the disk.
//!
//! ```no_run
//! use strata_router::{NonBlockingBuilder, Period, Policy, RollingFile};
//! use tracing_subscriber::prelude::*;
//!
//! let file = RollingFile::new("logs", "app")
//!     .with_max_bytes(50 << 20)
//!     .with_period(Period::Daily)
//!     .with_max_files(10)
//!     .open()?;
//! let (writer, _guard) = NonBlockingBuilder::default().with_policy(Policy::Block).spawn(file)?;
//! tracing_subscriber::registry()
//!     .with(strata_json::layer().with_writer(move || writer.clone()))
//!     .init();
//! tracing::info!("to a rotated file, off the request path");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! [`RouterLayer`] sends each event to every [`Route`] whose filter (level range, target
//! prefixes, error class) matches, rendering it once per distinct [`Format`] however many sinks
//! take it; network sinks never receive events from the network stack or telemetry crates.
//!
//! Status: routing, stdout/stderr, files, the non-blocking writer and syslog (RFC 5424 over
//! UDP, TCP and unix sockets). The alert sinks
//! (Slack, Discord, PagerDuty, webhooks, SMTP), alert policy and TOML configuration come next.
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
