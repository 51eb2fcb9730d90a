//! Production observability for async Rust services, on top of `tracing`: one call sets up
//! logs, error capture, traces and metrics the way the profile — development, staging or
//! production — calls for, and returns one guard that flushes them all.
//!
//! ```
//! # let dir = tempfile::tempdir()?; // the local outputs (.strata/) go to a scratch directory
//! # std::env::set_current_dir(dir.path())?;
//! let _guard = strata::builder()
//!     .with_service("payment_api")
//!     .with_version(env!("CARGO_PKG_VERSION"))
//!     .without_config_file()
//!     .try_init()?; // or strata::init(): everything from the environment and strata.toml
//!
//! let span = tracing::info_span!("request", request_id = "0193a5c2", user_id = 314159_u64);
//! let _enter = span.enter();
//! tracing::info!(event = "charge_created", duration_ms = 142, "Payment successful");
//! tracing::warn!(password = "hunter2", "masked in staging and production");
//! strata::critical!("database unreachable");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Profiles
//!
//! `STRATA_ENV` picks the [`Profile`] (`development` by default; `dev`, `stage`, `prod`… are
//! accepted), and the profile gives every setting its default:
//!
//! - **development**: DEBUG, the coloured console format (plain when not a terminal), file and
//!   line, stack frames under errors, errors in the local store, traces in a local file.
//! - **staging**: INFO, JSON lines, redaction, capture (Sentry with `SENTRY_DSN`, else the local
//!   store), every trace exported.
//! - **production**: WARN for logs (traces and metrics still see every request: the log level
//!   filters log outputs only), JSON, redaction, capture, 10 % of new traces sampled.
//!
//! The table of every default is on [`Profile`].
//!
//! # Configuration
//!
//! Each setting comes from, in order of precedence: code (the [`Builder`]'s `with_*`), the
//! environment (`STRATA_*`, `RUST_LOG`, `SENTRY_DSN`, `OTEL_*`), the config file
//! (`strata.toml` in the working directory, or the file `STRATA_CONFIG` names), the profile.
//! The keys of the file and their variables are in [`config`]. Every value is checked: a bad
//! one is an [`InitError::Config`] naming the key, where it came from, the value and what was
//! expected, and an unknown key in the file is an error too (with a suggestion).
//! [`config::effective`] (or [`Guard::config`]) shows the merged result, each value with its
//! origin, secrets masked:
//!
//! ```text
//! # strata configuration: production profile, file strata.toml
//! env = "production"        # STRATA_ENV
//! service = "shop"          # strata.toml
//! ...
//! [capture]
//! dsn = "https://[REDACTED]@o1.ingest.sentry.io/42"  # SENTRY_DSN
//! ```
//!
//! # Redaction
//!
//! On by default in staging and production: values of fields named like secrets (`password`,
//! `token`, `api_key`, `authorization`, `cookie`, `card_number`, `ssn`…) and secrets found by
//! their shape (JWTs, bearer tokens, card numbers passing Luhn, AWS keys, private keys,
//! `user:password@` in URLs…) are masked before every output: JSON lines, the console, routed
//! files and alerts, captured errors, exported spans and log records. See
//! [`strata_core::redact`]; additions and exceptions in `[redaction]`.
//!
//! # Shutting down
//!
//! Dropping the [`Guard`] flushes every sink, transport and exporter, waiting at most
//! `shutdown_timeout` (5 s) in all. A program that ends with `std::process::exit` calls
//! [`shutdown`] first. With capture on, a panic hook logs the panic as CRITICAL and flushes
//! everything before the process dies, `panic = "abort"` included.
//!
//! # Feature flags
//!
//! - `json` (default): JSON lines, [`strata_json`].
//! - `console` (default): the development console format, `strata_console`.
//! - `router`: more outputs — rotating files, syslog — from `[[router.route]]`.
//! - `alerts`: Slack, Discord, PagerDuty, webhook and email routes (reqwest, lettre).
//! - `capture`: error capture into the local store and the panic hook.
//! - `sentry`: capture to a Sentry-protocol server by DSN (the sentry crate).
//! - `request-id`: request-ID middleware, propagation and job context, as [`request_id`].
//! - `otlp`: traces, log records and metrics over OTLP, or to a local file.
//! - `metrics`: RED metrics from spans, Prometheus exposition, the lag probe.
//! - `full`: everything.
//!
//! The defaults pull in no network client: reqwest, tonic, lettre and the sentry SDK come only
//! with `alerts`, `otlp` and `sentry`.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod builder;
pub mod config;
mod guard;
mod logged;
mod profile;

pub use builder::Builder;
pub use config::{Config, ConfigError, LogFormat, Source};
pub use guard::{Guard, shutdown};
pub use profile::{PROFILE_NAMES, Profile, UnknownProfile};

pub use strata_core::redact::Redaction;
pub use strata_core::{Classify, ErrorClass, Severity, critical, log_error};
#[cfg(feature = "json")]
pub use strata_json::{self as json, Preset};

#[cfg(feature = "capture")]
pub use strata_capture as capture;
pub use strata_core;
#[cfg(feature = "diagnostics")]
pub use strata_diagnostics as diagnostics;
#[cfg(feature = "metrics")]
pub use strata_metrics as metrics;
#[cfg(feature = "otlp")]
pub use strata_otlp as otlp;
#[cfg(feature = "request-id")]
pub use strata_request_id as request_id;
#[cfg(feature = "router")]
pub use strata_router as router;

/// Why strata could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InitError {
    /// A setting is invalid (from code, the environment or the config file).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A route of `[router]` could not be opened (a directory not writable…).
    #[cfg(feature = "router")]
    #[error(transparent)]
    Router(strata_router::ConfigError),
    /// Error capture could not start (the local store could not be opened…).
    #[cfg(feature = "capture")]
    #[error("error capture could not start: {0}")]
    Capture(#[source] strata_capture::CaptureError),
    /// OpenTelemetry export could not start (a bad `OTEL_*` setting, say).
    #[cfg(feature = "otlp")]
    #[error(transparent)]
    Otlp(#[from] strata_otlp::OtlpError),
    /// The metrics listener could not bind its address.
    #[cfg(feature = "metrics")]
    #[error("cannot serve metrics on {addr} (metrics.listen): {error}")]
    Metrics {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        #[source]
        error: std::io::Error,
    },
    /// Diagnostics could not start: the endpoint's address could not be bound
    /// (`diagnostics.listen`), or a thread or the SIGUSR1 handler could not be set up.
    #[cfg(feature = "diagnostics")]
    #[error("diagnostics could not start: {0}")]
    Diagnostics(#[source] std::io::Error),
    /// A global subscriber is already installed (strata was initialised twice, or another
    /// logging library got there first).
    #[error("a global tracing subscriber is already installed")]
    AlreadyInitialized(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
}

/// Sets strata up from the profile, `strata.toml` and the environment, and installs it as the
/// global subscriber.
///
/// # Panics
///
/// If the configuration is invalid, an output cannot start or a global subscriber is already
/// installed; use [`try_init`] to handle those as errors.
pub fn init() -> Guard {
    builder().init()
}

/// Sets strata up from the profile, `strata.toml` and the environment, and installs it as the
/// global subscriber.
///
/// # Errors
///
/// [`InitError`] when a setting is invalid, an output cannot start or a global subscriber is
/// already installed.
pub fn try_init() -> Result<Guard, InitError> {
    builder().try_init()
}

/// A builder for everything [`init`] sets up, with settings in code that win over everything
/// else.
pub fn builder() -> Builder {
    Builder::default()
}
