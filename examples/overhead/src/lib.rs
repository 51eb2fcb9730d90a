//! The HTTP overhead benchmark of issue 10: what observability costs a real service.
//!
//! One axum hello-world service (`GET /` → `Hello, World!`) run four ways ([`Mode`]):
//!
//! - `bare`: no instrumentation at all;
//! - `strata`: strata with everything on (staging profile: JSON lines to a file, request IDs,
//!   traces and log records over OTLP/gRPC to an in-process receiver, metrics from spans, error
//!   capture with breadcrumbs into the local store, redaction);
//! - `peers`: the stack people use today — tower-http's `SetRequestId` / `TraceLayer` /
//!   `PropagateRequestId`, `tracing_subscriber::fmt().json()` to a file through
//!   tracing-appender, tracing-opentelemetry with the SDK's `BatchSpanProcessor` exporting
//!   over OTLP/gRPC to the same kind of receiver, and sentry-tracing (breadcrumbs and errors);
//! - `strata-production`: strata at its production profile (WARN lines, 10 % of traces).
//!
//! Run the whole benchmark (a few minutes; hold the build lock on a shared machine):
//!
//! ```sh
//! cargo run --release -p example-overhead --bin overhead
//! cargo run --release -p example-overhead --bin overhead -- --rounds 5 --duration 10
//! ```
//!
//! The driver ([`driver`]) starts each mode's server as a child process pinned to CPU 0
//! (`taskset -c 0 overhead server MODE`) and the load generator ([`load`]) as another pinned to
//! CPU 1 (`overhead load …`): a fixed number of keep-alive connections, a warm-up, then a
//! bounded measurement during which it records every request's latency and reads the server's
//! CPU time from `/proc`. Modes are interleaved over several rounds and the medians printed as
//! a markdown table, with the overhead ratios strata / peers over bare.

pub mod driver;
pub mod load;
pub mod procfs;
pub mod service;

use std::fmt;
use std::str::FromStr;

/// One way of running the hello-world service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// No instrumentation at all: no subscriber, no middleware.
    Bare,
    /// strata with everything on (the staging profile), through `strata::builder()`.
    Strata,
    /// tower-http + tracing-subscriber JSON + tracing-opentelemetry (SDK batch processor) +
    /// sentry-tracing.
    Peers,
    /// strata at its production profile: WARN lines, 10 % of new traces sampled.
    StrataProduction,
}

impl Mode {
    /// Every mode, in the order the tables show them.
    pub const ALL: [Mode; 4] = [
        Mode::Bare,
        Mode::Strata,
        Mode::Peers,
        Mode::StrataProduction,
    ];

    /// The name on the command line and in tables: `bare`, `strata`, `peers`,
    /// `strata-production`.
    pub const fn name(self) -> &'static str {
        match self {
            Mode::Bare => "bare",
            Mode::Strata => "strata",
            Mode::Peers => "peers",
            Mode::StrataProduction => "strata-production",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Mode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Mode::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| {
                format!("unknown mode {s:?}: expected bare, strata, peers or strata-production")
            })
    }
}

/// Removes from a child's environment every variable that would change how strata, the
/// OpenTelemetry SDK or Sentry are configured (`STRATA_*`, `OTEL_*`, `RUST_LOG`,
/// `SENTRY_DSN`), so each mode runs exactly as its code says.
pub fn clean_env(cmd: &mut std::process::Command) {
    for (key, _) in std::env::vars_os() {
        let k = key.to_string_lossy();
        if k.starts_with("STRATA_")
            || k.starts_with("OTEL_")
            || k == "RUST_LOG"
            || k == "SENTRY_DSN"
        {
            cmd.env_remove(&key);
        }
    }
}
