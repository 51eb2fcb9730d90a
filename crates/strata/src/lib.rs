//! Production observability for async Rust services, on top of `tracing`.
//!
//! One call installs a subscriber that writes structured JSON logs (strata's documented schema)
//! to stdout, with span fields inherited by every event, error chains kept as data and a
//! `CRITICAL` level; it returns a guard that flushes when dropped.
//!
//! ```
//! let _guard = strata::init(); // keep it alive until the end of `main`
//!
//! let span = tracing::info_span!("request", request_id = "0193a5c2", user_id = 314159_u64);
//! let _enter = span.enter();
//! tracing::info!(event = "charge_created", duration_ms = 142, "Payment successful");
//! strata::critical!("database unreachable");
//! ```
//!
//! # Configuration
//!
//! | setting | builder | environment | default |
//! |---|---|---|---|
//! | service name | [`Builder::with_service`] | `STRATA_SERVICE` | the executable's name |
//! | environment | [`Builder::with_env`] | `STRATA_ENV` | `development` |
//! | release version | [`Builder::with_version`] | `STRATA_VERSION` | none |
//! | log filter | [`Builder::with_filter`] | `RUST_LOG` | [`Builder::with_default_filter`], else `info` |
//!
//! Code wins over the environment, the environment over defaults. An invalid value is a typed
//! [`InitError`] naming the setting, the value and what was expected.
//!
//! The log filter applies to the JSON output only (a per-layer filter), so OTLP export and
//! metrics see every span. It filters *events*: spans at INFO
//! and above are always kept, so with `RUST_LOG=warn` a WARN line inside a request still
//! carries the request's `request_id` and other span fields.
//!
//! # Feature flags
//!
//! - `json` (default): the JSON formatter, [`strata_json`].
//! - `otlp`: traces, log records and metrics over OTLP (or to a local file), `strata_otlp`,
//!   with `Builder::with_otlp`.
//! - `metrics`: metrics from spans, `strata_metrics`, with `Builder::with_metrics`; with
//!   `otlp` as well, the same instruments go over OTLP and the exporter's losses are a metric.
//! - `full`: everything.
//!
//! The default pulls in no network client: OTLP (tonic, reqwest) only with `otlp`.
#![cfg_attr(docsrs, feature(doc_cfg))]

use std::fmt;

pub use strata_core::{Classify, ErrorClass, Severity, critical, log_error};
#[cfg(feature = "json")]
pub use strata_json::{self as json, Preset};

pub use strata_core;

use tracing_subscriber::filter::{EnvFilter, FilterExt, filter_fn};
use tracing_subscriber::prelude::*;

/// The environment variable naming the service.
pub const ENV_SERVICE: &str = "STRATA_SERVICE";
/// The environment variable naming the deployment environment.
pub const ENV_ENV: &str = "STRATA_ENV";
/// The environment variable giving the release version.
pub const ENV_VERSION: &str = "STRATA_VERSION";
/// The environment variable holding the log filter (`tracing-subscriber`'s `EnvFilter` syntax).
pub const ENV_FILTER: &str = "RUST_LOG";

/// Why strata could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InitError {
    /// A filter directive (from code or `RUST_LOG`) does not parse.
    #[error(
        "invalid log filter in {setting}: {value:?}: {reason} (expected EnvFilter directives such as \"info,my_crate=debug\")"
    )]
    InvalidFilter {
        /// Where the filter came from: `RUST_LOG` or `Builder::with_filter`.
        setting: &'static str,
        /// The offending value.
        value: String,
        /// What the parser said.
        reason: String,
    },
    /// A setting is empty or otherwise unusable.
    #[error("invalid {setting}: {value:?}: {expected}")]
    InvalidSetting {
        /// The setting (`STRATA_SERVICE`, `Builder::with_service`…).
        setting: &'static str,
        /// The offending value.
        value: String,
        /// What was expected.
        expected: &'static str,
    },
    /// OpenTelemetry export could not start (a bad `OTEL_*` setting, say).
    #[cfg(feature = "otlp")]
    #[error(transparent)]
    Otlp(#[from] strata_otlp::OtlpError),
    /// A global subscriber is already installed (strata was initialised twice, or another
    /// logging library got there first).
    #[error("a global tracing subscriber is already installed")]
    AlreadyInitialized(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
}

/// Sets strata up from the environment and installs it as the global subscriber.
///
/// # Panics
///
/// If the configuration is invalid or a global subscriber is already installed; use
/// [`try_init`] to handle those as errors.
pub fn init() -> Guard {
    match try_init() {
        Ok(g) => g,
        Err(e) => panic!("strata::init failed: {e}"),
    }
}

/// Sets strata up from the environment and installs it as the global subscriber.
///
/// # Errors
///
/// [`InitError`] when a setting is invalid or a global subscriber is already installed.
pub fn try_init() -> Result<Guard, InitError> {
    builder().try_init()
}

/// A builder for everything [`init`] sets up.
pub fn builder() -> Builder {
    Builder::default()
}

/// Configuration for strata; see the [crate documentation](crate#configuration) for the
/// precedence of each setting.
#[derive(Debug, Default, Clone)]
#[must_use = "a builder does nothing until `init` or `try_init` is called"]
pub struct Builder {
    service: Option<String>,
    env: Option<String>,
    version: Option<String>,
    filter: Option<String>,
    default_filter: Option<String>,
    #[cfg(feature = "json")]
    preset: Preset,
    #[cfg(feature = "json")]
    span_close: bool,
    #[cfg(feature = "json")]
    file_line: bool,
    #[cfg(feature = "json")]
    thread: bool,
    #[cfg(feature = "json")]
    max_field_len: Option<usize>,
    #[cfg(feature = "otlp")]
    otlp: Option<strata_otlp::Otlp>,
    #[cfg(feature = "metrics")]
    metrics: Option<strata_metrics::Metrics>,
}

impl Builder {
    /// Sets the service name (overrides `STRATA_SERVICE`).
    pub fn with_service(mut self, service: impl Into<String>) -> Self {
        self.service = Some(service.into());
        self
    }

    /// Sets the deployment environment (overrides `STRATA_ENV`).
    pub fn with_env(mut self, env: impl Into<String>) -> Self {
        self.env = Some(env.into());
        self
    }

    /// Sets the release version (overrides `STRATA_VERSION`), e.g. `env!("CARGO_PKG_VERSION")`.
    pub fn with_version(mut self, version: impl Into<String>) -> Self {
        self.version = Some(version.into());
        self
    }

    /// Sets the log filter (overrides `RUST_LOG`), in `EnvFilter` syntax.
    pub fn with_filter(mut self, directives: impl Into<String>) -> Self {
        self.filter = Some(directives.into());
        self
    }

    /// Sets the filter used when neither [`Builder::with_filter`] nor `RUST_LOG` gives one.
    /// Default: `info`.
    pub fn with_default_filter(mut self, directives: impl Into<String>) -> Self {
        self.default_filter = Some(directives.into());
        self
    }

    /// Selects the JSON schema preset. Default: [`Preset::Default`].
    #[cfg(feature = "json")]
    pub fn with_preset(mut self, preset: Preset) -> Self {
        self.preset = preset;
        self
    }

    /// Also logs a line with `duration_ms` when a span closes. Default: off.
    #[cfg(feature = "json")]
    pub fn with_span_close(mut self, on: bool) -> Self {
        self.span_close = on;
        self
    }

    /// Adds source file and line to every line. Default: off.
    #[cfg(feature = "json")]
    pub fn with_file_line(mut self, on: bool) -> Self {
        self.file_line = on;
        self
    }

    /// Adds the emitting thread's name to every line. Default: off.
    #[cfg(feature = "json")]
    pub fn with_thread(mut self, on: bool) -> Self {
        self.thread = on;
        self
    }

    /// Cuts string values longer than `bytes`, visibly. Default: 16 KiB.
    #[cfg(feature = "json")]
    pub fn with_max_field_len(mut self, bytes: usize) -> Self {
        self.max_field_len = Some(bytes);
        self
    }

    /// Exports traces, log records and metrics with these settings (`Otlp::new()` reads the
    /// `OTEL_*` environment; with no endpoint, a local file). Its layer sees every span, whatever
    /// the log filter.
    #[cfg(feature = "otlp")]
    pub fn with_otlp(mut self, otlp: strata_otlp::Otlp) -> Self {
        self.otlp = Some(otlp);
        self
    }

    /// Derives metrics from spans into `metrics` (expose it with `metrics.serve(…)` or
    /// `metrics.service()`). With OTLP export too, the same instruments go over OTLP, and the
    /// exporter's losses appear as `strata_telemetry_dropped_total{source="strata-otlp/…"}`.
    #[cfg(feature = "metrics")]
    pub fn with_metrics(mut self, metrics: &strata_metrics::Metrics) -> Self {
        self.metrics = Some(metrics.clone());
        self
    }

    /// The settings after applying the environment: what [`Builder::try_init`] would use.
    ///
    /// # Errors
    ///
    /// [`InitError`] naming the first invalid setting.
    pub fn resolve(&self) -> Result<Settings, InitError> {
        let service = pick(&self.service, "Builder::with_service", ENV_SERVICE)
            .map(|(s, v)| check_name(s, v))
            .transpose()?
            .unwrap_or_else(strata_json_default_service);
        let env = pick(&self.env, "Builder::with_env", ENV_ENV)
            .map(|(s, v)| check_name(s, v))
            .transpose()?
            .unwrap_or_else(|| "development".to_owned());
        let version = pick(&self.version, "Builder::with_version", ENV_VERSION)
            .map(|(s, v)| check_name(s, v))
            .transpose()?;
        let (filter_setting, filter) = pick(&self.filter, "Builder::with_filter", ENV_FILTER)
            .or_else(|| {
                self.default_filter
                    .clone()
                    .map(|f| ("Builder::with_default_filter", f))
            })
            .unwrap_or(("default", "info".to_owned()));
        // Parse now so a bad filter is reported at setup, naming its source.
        parse_filter(filter_setting, &filter)?;
        Ok(Settings {
            service,
            env,
            version,
            filter,
            filter_setting,
        })
    }

    /// Installs strata as the global subscriber.
    ///
    /// # Errors
    ///
    /// [`InitError`] when a setting is invalid or a global subscriber is already installed.
    pub fn try_init(self) -> Result<Guard, InitError> {
        let settings = self.resolve()?;
        // The log filter decides which *events* are written. Spans at INFO and above always
        // exist, so a WARN line inside a request still carries the request's fields
        // (request_id, user_id…) when the filter is `warn`.
        let filter =
            parse_filter(settings.filter_setting, &settings.filter)?.or(filter_fn(|meta| {
                meta.is_span() && *meta.level() <= tracing::Level::INFO
            }));
        // OTLP export and metrics see every span and event (no log filter on their layers).
        #[cfg(feature = "otlp")]
        let otlp = self.start_otlp()?;
        #[cfg(feature = "otlp")]
        let otlp_layer = otlp.as_ref().map(strata_otlp::OtlpGuard::layer);
        #[cfg(not(feature = "otlp"))]
        let otlp_layer: Option<tracing_subscriber::layer::Identity> = None;
        #[cfg(feature = "metrics")]
        let metrics_layer = self.metrics.as_ref().map(|m| {
            #[cfg(feature = "otlp")]
            if let Some(g) = &otlp {
                let counts = g.drop_counts();
                let logs = counts.clone();
                m.register_dropped("strata-otlp/spans", move || counts.spans());
                m.register_dropped("strata-otlp/logs", move || logs.logs());
                let _ = m.clone().with_meter_provider(g.meter_provider());
            }
            m.layer()
        });
        #[cfg(not(feature = "metrics"))]
        let metrics_layer: Option<tracing_subscriber::layer::Identity> = None;
        #[cfg(feature = "json")]
        {
            let mut json = strata_json::layer()
                .with_preset(self.preset)
                .with_service(settings.service.clone())
                .with_env(settings.env.clone())
                .with_span_close(self.span_close)
                .with_file_line(self.file_line)
                .with_thread(self.thread);
            if let Some(max) = self.max_field_len {
                json = json.with_max_field_len(max);
            }
            if let Some(v) = &settings.version {
                json = json.with_version(v.clone());
            }
            let handle = json.handle();
            tracing_subscriber::registry()
                .with(json.with_filter(filter))
                .with(otlp_layer)
                .with(metrics_layer)
                .try_init()
                .map_err(|e| InitError::AlreadyInitialized(Box::new(e)))?;
            Ok(Guard {
                settings,
                json: Some(handle),
                #[cfg(feature = "otlp")]
                otlp,
            })
        }
        #[cfg(not(feature = "json"))]
        {
            tracing_subscriber::registry()
                .with(strata_core::StoreLayer::new().with_filter(filter))
                .with(otlp_layer)
                .with(metrics_layer)
                .try_init()
                .map_err(|e| InitError::AlreadyInitialized(Box::new(e)))?;
            Ok(Guard {
                settings,
                #[cfg(feature = "otlp")]
                otlp,
            })
        }
    }

    /// Starts OTLP export when asked for, with the service, environment and version given in
    /// code (the environment's `OTEL_*` and `STRATA_*` otherwise).
    #[cfg(feature = "otlp")]
    fn start_otlp(&self) -> Result<Option<strata_otlp::OtlpGuard>, InitError> {
        let Some(mut otlp) = self.otlp.clone() else {
            return Ok(None);
        };
        if let Some(s) = &self.service {
            otlp = otlp.with_service_name(s.clone());
        }
        if let Some(e) = &self.env {
            otlp = otlp.with_environment(e.clone());
        }
        if let Some(v) = &self.version {
            otlp = otlp.with_service_version(v.clone());
        }
        Ok(Some(otlp.start()?))
    }

    /// Installs strata as the global subscriber.
    ///
    /// # Panics
    ///
    /// When [`Builder::try_init`] fails.
    pub fn init(self) -> Guard {
        match self.try_init() {
            Ok(g) => g,
            Err(e) => panic!("strata::init failed: {e}"),
        }
    }
}

#[cfg(feature = "json")]
fn strata_json_default_service() -> String {
    strata_json::default_service_name()
}

#[cfg(not(feature = "json"))]
fn strata_json_default_service() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "unknown_service".to_owned())
}

/// Code first, then the environment variable (an empty variable counts as unset).
fn pick(
    code: &Option<String>,
    code_name: &'static str,
    var: &'static str,
) -> Option<(&'static str, String)> {
    if let Some(v) = code {
        return Some((code_name, v.clone()));
    }
    match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => Some((var, v)),
        Ok(_) => None,
        Err(std::env::VarError::NotPresent) => None,
        Err(std::env::VarError::NotUnicode(raw)) => Some((var, raw.to_string_lossy().into_owned())),
    }
}

/// Names (service, env, version) must be non-empty, at most 256 bytes, with no control characters.
fn check_name(setting: &'static str, value: String) -> Result<String, InitError> {
    let v = value.trim();
    if v.is_empty() || v.len() > 256 || v.chars().any(|c| c.is_control() || c == '\u{FFFD}') {
        let mut shown = strata_core::encode::clip(&value, 64).to_owned();
        if shown.len() < value.len() {
            shown.push('…');
        }
        return Err(InitError::InvalidSetting {
            setting,
            value: shown,
            expected: "1 to 256 bytes of valid UTF-8 without control characters",
        });
    }
    Ok(v.to_owned())
}

fn parse_filter(setting: &'static str, value: &str) -> Result<EnvFilter, InitError> {
    EnvFilter::builder()
        .parse(value)
        .map_err(|e| InitError::InvalidFilter {
            setting,
            value: value.to_owned(),
            reason: e.to_string(),
        })
}

/// The settings strata runs with, after code and environment are merged.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Settings {
    /// The service name.
    pub service: String,
    /// The deployment environment.
    pub env: String,
    /// The release version, if any.
    pub version: Option<String>,
    /// The log filter directives.
    pub filter: String,
    /// Where the filter came from (`RUST_LOG`, `Builder::with_filter`, `default`…).
    pub filter_setting: &'static str,
}

/// Keeps strata's outputs alive; flushes them when dropped.
///
/// Hold it until the end of `main` (`let _guard = strata::init();` — not `let _ = …`, which
/// drops it at once).
#[must_use = "dropping the guard flushes strata's outputs (and, as later features add them, stops their background workers); hold it until the end of main"]
pub struct Guard {
    settings: Settings,
    #[cfg(feature = "json")]
    json: Option<strata_json::JsonHandle>,
    /// Dropped after the JSON flush: flushes and stops the exporters, bounded.
    #[cfg(feature = "otlp")]
    otlp: Option<strata_otlp::OtlpGuard>,
}

impl fmt::Debug for Guard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guard")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Guard {
    /// The settings strata was set up with.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Flushes every output now (the OTLP exporters waiting at most 5 s).
    pub fn flush(&self) {
        #[cfg(feature = "json")]
        if let Some(j) = &self.json {
            let _ = j.flush();
        }
        #[cfg(feature = "otlp")]
        if let Some(o) = &self.otlp {
            let _ = o.flush(std::time::Duration::from_secs(5));
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.flush();
    }
}
