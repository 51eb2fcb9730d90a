//! Production debugging for services built on `tracing`: timeouts and slow-call warnings
//! around any `.await`, the requests and jobs in flight (and the stuck ones), dumped to the log
//! on SIGUSR1 or served by a guarded admin endpoint.
//!
//! ```no_run
//! use std::time::Duration;
//! use tracing_subscriber::prelude::*;
//!
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let inflight = strata_diagnostics::Inflight::new().with_stuck_after(Duration::from_secs(30));
//! tracing_subscriber::registry()
//!     .with(strata_json::JsonLayer::new())
//!     .with(inflight.layer())
//!     .init();
//! // "request still running after 30 s", once per stuck request
//! let _watch = inflight.spawn_watch(Duration::from_secs(1))?;
//! // `kill -USR1 <pid>`: every request and job in flight, in the log
//! let _dump = inflight.dump_on_sigusr1()?;
//! // GET /debug/inflight, /debug/health on loopback
//! let _server = strata_diagnostics::Diagnostics::new(inflight)
//!     .serve("127.0.0.1:6060".parse()?)
//!     .await?;
//!
//! // Around any await: an ERROR and a typed error past the limit, a WARN past the threshold.
//! let charge = strata_diagnostics::timeout(Duration::from_secs(5), async { "charged" }).await?;
//! let rows = strata_diagnostics::warn_if_slow_named("query", Duration::from_millis(500), async {
//!     vec![charge]
//! })
//! .await;
//! # drop(rows); Ok(()) }
//! ```
//!
//! - [`timeout`] / [`timeout_named`]: [`TimedOut`] (an external error) and an ERROR line with
//!   `operation`, `duration_ms`, `limit_ms`, in the caller's span.
//! - [`warn_if_slow`] / [`warn_if_slow_named`]: the lesson's `Slow query: 832ms` WARN, with
//!   `duration_ms` and `threshold_ms`.
//! - [`Inflight`]: every open `request` and `job` span of strata-request-id, with its request
//!   ID, route or job name and age; [`Inflight::check_stuck`] / [`Inflight::spawn_watch`]
//!   report work older than a threshold once, as WARN `still running after 30 s`.
//! - [`Diagnostics`]: `GET /debug/inflight` (JSON), `GET /debug/health`, and
//!   `GET /debug/pprof/profile?seconds=N` (a CPU profile of the whole process as a flame-graph
//!   SVG, or pprof protobuf with `format=pprof`; feature `profiling`, on by default); refuses a
//!   non-loopback address without a bearer token, and every request without the token when
//!   one is set.
//! - [`Heuristics`]: the lesson's "detecting problems automatically" from strata-metrics'
//!   figures — `MemoryGrowing`, `SustainedHighCpu` (busy with no progress), `QueueBacklog`,
//!   `EventLoopLag`, the names of the shipped Prometheus rules — each a WARN with its evidence,
//!   once per episode.

mod heuristics;
mod inflight;
mod periodic;
#[cfg(feature = "profiling")]
mod profile;
mod server;
mod slow;

pub use heuristics::{Finding, Heuristics, HeuristicsConfig, HeuristicsGuard, Problem, Sample};
pub use inflight::{Inflight, InflightLayer, InflightWork, Kind, WatchGuard};
#[cfg(feature = "profiling")]
pub use profile::MAX_PROFILE_SECONDS;
pub use server::{Diagnostics, DiagnosticsError, DiagnosticsServer, MIN_TOKEN_LEN};
pub use slow::{TimedOut, timeout, timeout_named, warn_if_slow, warn_if_slow_named};
