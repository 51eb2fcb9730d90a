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
//! Status: files and the non-blocking writer. Routing by level/target/class, syslog and the
//! alert sinks (Slack, Discord, PagerDuty, webhooks, SMTP) come next.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod file;
mod nonblocking;

pub use file::{ClockFn, FileError, Period, RollingFile};
pub use nonblocking::{
    DropReport, NonBlocking, NonBlockingBuilder, Policy, WorkerGuard, non_blocking,
};
