//! Configuration: the profile's defaults, then the config file, then the environment, then
//! code — merged, checked key by key, and shown with where each value came from.
//!
//! ```toml
//! # strata.toml (or the file STRATA_CONFIG names)
//! env = "production"          # the profile: development, staging, production (dev, prod…)
//! service = "shop"
//! version = "1.4.2"
//! shutdown_timeout = "5s"
//!
//! [log]
//! level = "info,sqlx=warn"    # tracing EnvFilter directives (RUST_LOG)
//! format = "json"             # json, ecs, gcp, otel, console (STRATA_LOG_FORMAT)
//! color = "auto"              # auto, always, never (STRATA_COLOR; NO_COLOR is honoured)
//! file_line = false
//! thread = false
//! span_close = false
//! max_field_len = "16KiB"
//! backtraces = false          # stack frames under ERROR lines of the console format
//!
//! [redaction]
//! enabled = true              # STRATA_REDACT
//! fields = ["pin", "otp"]     # more sensitive field names
//! exceptions = ["token_count"]
//! token_prefixes = ["acme_live_"]
//! disable_patterns = ["card"] # jwt, bearer, card, aws_key, private_key, url_password, token_prefix, key_value
//!
//! [capture]
//! enabled = true              # STRATA_CAPTURE
//! dsn = "https://key@sentry.example.com/1"   # SENTRY_DSN
//! store = ".strata/errors.db" # STRATA_ERRORS_DB
//! min_level = "error"
//! breadcrumbs = 100
//! backtraces = true
//!
//! [otlp]
//! enabled = true              # STRATA_OTLP (OTEL_SDK_DISABLED=true turns it off)
//! endpoint = "http://collector:4317"   # OTEL_EXPORTER_OTLP_ENDPOINT
//! protocol = "grpc"           # or http/protobuf (OTEL_EXPORTER_OTLP_PROTOCOL)
//! sample_ratio = 0.1          # parent-based ratio (OTEL_TRACES_SAMPLER, OTEL_TRACES_SAMPLER_ARG)
//! headers = { "x-api-key" = "…" }      # OTEL_EXPORTER_OTLP_HEADERS
//! file = ".strata/telemetry.jsonl"     # STRATA_TELEMETRY_FILE, when no endpoint is set
//! logs = true                 # OTEL_LOGS_EXPORTER=none turns it off
//! span_events = "warn"        # events kept in their span too (default: warn with logs, else all)
//!
//! [metrics]
//! enabled = true              # STRATA_METRICS
//! listen = "127.0.0.1:9464"   # STRATA_METRICS_ADDR: GET /metrics on a listener of its own
//! lag_probe = "250ms"         # event-loop lag probe, when started inside a tokio runtime
//!
//! [diagnostics]               # feature `diagnostics`
//! enabled = true              # STRATA_DIAGNOSTICS: in-flight registry, stuck WARNs, SIGUSR1 dump, heuristics
//! listen = "127.0.0.1:6060"   # STRATA_DIAGNOSTICS_ADDR: /debug/inflight, /debug/health, /debug/pprof/profile
//! token = "…"                 # STRATA_DIAGNOSTICS_TOKEN: required off loopback, and in production
//! stuck_after = "30s"         # a request or job this old is reported, once, as still running
//! heuristics = true           # MemoryGrowing, SustainedHighCpu, QueueBacklog, EventLoopLag WARNs (with metrics)
//! tokio_console = true        # feature `tokio-console`; on by default in development when Tokio is built with RUSTFLAGS="--cfg tokio_unstable"
//!
//! [[router.route]]            # more outputs: files, syslog, alerts (see strata_router::RouterConfig)
//! sink = "file"
//! dir = "logs"
//! ```
//!
//! Every key is checked: an unknown key, a value of the wrong type or out of range is a
//! [`ConfigError`] naming the key, where it came from, the value and what was expected. The
//! [`Config`] a builder resolves ([`effective`], [`crate::Builder::resolve`]) prints as the
//! file above with, for each value, its origin — secrets masked.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use strata_core::Severity;
use strata_core::redact::{Pattern, Redaction};

use crate::profile::{PROFILE_NAMES, Profile};

/// The default config file, read when it exists in the working directory.
pub const DEFAULT_FILE: &str = "strata.toml";

/// Environment variables strata reads (besides `RUST_LOG`, `NO_COLOR`, `SENTRY_DSN` and the
/// `OTEL_*` of strata-otlp); a `STRATA_*` variable close to one of these is reported as a
/// likely typo.
pub const ENV_VARS: &[&str] = &[
    "STRATA_ENV",
    "STRATA_SERVICE",
    "STRATA_VERSION",
    "STRATA_CONFIG",
    "STRATA_LOG_FORMAT",
    "STRATA_COLOR",
    "STRATA_REDACT",
    "STRATA_CAPTURE",
    "STRATA_ERRORS_DB",
    "STRATA_OTLP",
    "STRATA_TELEMETRY_FILE",
    "STRATA_METRICS",
    "STRATA_METRICS_ADDR",
    "STRATA_DIAGNOSTICS",
    "STRATA_DIAGNOSTICS_ADDR",
    "STRATA_DIAGNOSTICS_TOKEN",
    "STRATA_SHUTDOWN_TIMEOUT",
    "STRATA_SENTRY_DEBUG",
];

/// Where a setting's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Source {
    /// The profile's default.
    Profile(Profile),
    /// strata's default, the same in every profile.
    Default,
    /// The configuration file.
    File(PathBuf),
    /// An environment variable.
    Env(&'static str),
    /// A [`Builder`](crate::Builder) setter.
    Code(&'static str),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Profile(p) => write!(f, "profile {p}"),
            Source::Default => f.write_str("default"),
            Source::File(p) => write!(f, "{}", p.display()),
            Source::Env(v) => f.write_str(v),
            Source::Code(c) => f.write_str(c),
        }
    }
}

/// Configuration that cannot be used: which key, from where, what value, what was expected.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A value of the wrong type, out of range or not one of the accepted words.
    #[error("invalid {key} = {value} (from {origin}): expected {expected}")]
    Invalid {
        /// The setting (`log.format`, `capture.dsn`…).
        key: String,
        /// Where the value came from (a file, an environment variable, a setter).
        origin: Source,
        /// The value as given (`(hidden)` for secrets).
        value: String,
        /// What would have been accepted.
        expected: String,
    },
    /// A key the configuration file may not have.
    #[error("unknown key `{key}` in {}: expected one of {expected}{}", file.display(), suggestion.as_ref().map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default())]
    UnknownKey {
        /// The key's path (`log.colour`).
        key: String,
        /// The file.
        file: PathBuf,
        /// The keys accepted there.
        expected: String,
        /// The nearest accepted key, when one is close.
        suggestion: Option<String>,
    },
    /// The file is not valid TOML.
    #[error("{}: line {line}: {message}", file.display())]
    Syntax {
        /// The file.
        file: PathBuf,
        /// The line of the error.
        line: usize,
        /// What the parser said.
        message: String,
    },
    /// The file could not be read.
    #[error("cannot read the configuration file {} (from {origin}): {error}", file.display())]
    Read {
        /// The file.
        file: PathBuf,
        /// Where its name came from.
        origin: Source,
        /// Why.
        #[source]
        error: std::io::Error,
    },
}

/// How log lines are written to standard output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LogFormat {
    /// strata's JSON schema.
    Json,
    /// JSON in the Elastic Common Schema.
    Ecs,
    /// JSON for Google Cloud Logging.
    Gcp,
    /// JSON in the OpenTelemetry log data model.
    Otel,
    /// The coloured human format for a terminal.
    Console,
}

impl LogFormat {
    /// The name in configuration.
    pub const fn name(self) -> &'static str {
        match self {
            LogFormat::Json => "json",
            LogFormat::Ecs => "ecs",
            LogFormat::Gcp => "gcp",
            LogFormat::Otel => "otel",
            LogFormat::Console => "console",
        }
    }

    fn from_name(s: &str) -> Option<LogFormat> {
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "json" => LogFormat::Json,
            "ecs" => LogFormat::Ecs,
            "gcp" => LogFormat::Gcp,
            "otel" | "opentelemetry" => LogFormat::Otel,
            "console" | "pretty" | "text" => LogFormat::Console,
            _ => return None,
        })
    }
}

/// The log output's settings.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct LogConfig {
    /// `EnvFilter` directives for log lines (not for traces and metrics, which see every span).
    pub level: String,
    /// The format of standard output.
    pub format: LogFormat,
    /// Whether the console format is coloured.
    pub color: bool,
    /// Source file and line in every line.
    pub file_line: bool,
    /// The thread's name in every line.
    pub thread: bool,
    /// A line with `duration_ms` when a span closes.
    pub span_close: bool,
    /// The longest string value written, in bytes.
    pub max_field_len: usize,
    /// Stack frames under ERROR and CRITICAL lines of the console format.
    pub backtraces: bool,
}

/// Redaction's settings.
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct RedactionConfig {
    /// Whether secrets are masked in every output.
    pub enabled: bool,
    /// More sensitive field names.
    pub fields: Vec<String>,
    /// Field names never masked.
    pub exceptions: Vec<String>,
    /// More token prefixes.
    pub token_prefixes: Vec<String>,
    /// Value patterns turned off.
    pub disable_patterns: Vec<Pattern>,
}

impl RedactionConfig {
    /// The rules, or `None` when redaction is off.
    pub fn rules(&self) -> Option<Redaction> {
        if !self.enabled {
            return None;
        }
        let mut r = Redaction::new();
        for f in &self.fields {
            r = r.with_field(f);
        }
        for e in &self.exceptions {
            r = r.with_exception(e);
        }
        for p in &self.token_prefixes {
            r = r.with_token_prefix(p);
        }
        for p in &self.disable_patterns {
            r = r.without_pattern(*p);
        }
        Some(r)
    }
}

/// Error capture's settings.
#[derive(Clone, PartialEq)]
#[non_exhaustive]
pub struct CaptureConfig {
    /// Whether errors are captured.
    pub enabled: bool,
    /// The Sentry-protocol DSN (a secret: never shown whole).
    pub dsn: Option<String>,
    /// The local store (used when there is no DSN).
    pub store: PathBuf,
    /// The lowest level captured as an error event.
    pub min_level: Severity,
    /// Breadcrumbs kept per request.
    pub breadcrumbs: usize,
    /// Whether stack traces are captured.
    pub backtraces: bool,
}

impl fmt::Debug for CaptureConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaptureConfig")
            .field("enabled", &self.enabled)
            .field("dsn", &self.dsn.as_deref().map(mask_url))
            .field("store", &self.store)
            .field("min_level", &self.min_level)
            .field("breadcrumbs", &self.breadcrumbs)
            .field("backtraces", &self.backtraces)
            .finish()
    }
}

/// OTLP export's settings as far as strata's configuration goes; the `OTEL_*` variables are
/// read by strata-otlp itself (and win over the file).
#[derive(Clone, PartialEq)]
#[non_exhaustive]
pub struct OtlpConfig {
    /// Whether traces, log records and metrics are exported.
    pub enabled: bool,
    /// The collector's endpoint (none: the local file).
    pub endpoint: Option<String>,
    /// `grpc` or `http/protobuf`.
    pub protocol: Option<String>,
    /// The parent-based sampling ratio of new traces (none: every trace).
    pub sample_ratio: Option<f64>,
    /// Headers sent with every export (values are secrets: never shown).
    pub headers: Vec<(String, String)>,
    /// The local OTLP/JSON file, when no endpoint is set.
    pub file: Option<PathBuf>,
    /// Whether log records are exported too.
    pub logs: bool,
    /// The events also recorded as span events: this level and more severe (none: WARN when
    /// log records are exported, every level otherwise).
    pub span_events: Option<tracing::level_filters::LevelFilter>,
}

impl fmt::Debug for OtlpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtlpConfig")
            .field("enabled", &self.enabled)
            .field("endpoint", &self.endpoint.as_deref().map(mask_url))
            .field("protocol", &self.protocol)
            .field("sample_ratio", &self.sample_ratio)
            .field(
                "headers",
                &self.headers.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .field("file", &self.file)
            .field("logs", &self.logs)
            .field("span_events", &self.span_events)
            .finish()
    }
}

/// Metrics' settings.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct MetricsConfig {
    /// Whether metrics are derived from spans.
    pub enabled: bool,
    /// Where `GET /metrics` is served (none: mount `Metrics::service` yourself).
    pub listen: Option<SocketAddr>,
    /// The event-loop lag probe's interval (none: no probe).
    pub lag_probe: Option<Duration>,
}

/// Production debugging's settings (feature `diagnostics`).
#[derive(Clone, PartialEq)]
#[non_exhaustive]
pub struct DiagnosticsConfig {
    /// Whether the in-flight registry, the stuck-work watch, the SIGUSR1 dump and the
    /// heuristics run.
    pub enabled: bool,
    /// Where the diagnostics endpoint listens (none: no endpoint).
    pub listen: Option<SocketAddr>,
    /// The bearer token the endpoint requires (masked in `Debug` and in the effective output).
    pub token: Option<String>,
    /// The age after which a request or job is reported as still running.
    pub stuck_after: Duration,
    /// Whether the heuristics run over the metrics (thresholds: `Builder::with_heuristics`).
    pub heuristics: bool,
    /// Whether tokio-console's layer is added (feature `tokio-console`; Tokio built with
    /// `--cfg tokio_unstable`).
    pub tokio_console: bool,
}

impl fmt::Debug for DiagnosticsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DiagnosticsConfig")
            .field("enabled", &self.enabled)
            .field("listen", &self.listen)
            .field("token", &self.token.as_ref().map(|_| "[REDACTED]"))
            .field("stuck_after", &self.stuck_after)
            .field("heuristics", &self.heuristics)
            .field("tokio_console", &self.tokio_console)
            .finish()
    }
}

/// The merged configuration: what [`crate::Builder::try_init`] sets up, and where each value
/// came from. Its `Display` is a TOML document with the origin of every value as a comment,
/// secrets masked.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// The profile.
    pub profile: Profile,
    /// The service name.
    pub service: String,
    /// The release version.
    pub version: Option<String>,
    /// The configuration file read, if any.
    pub file: Option<PathBuf>,
    /// The log output.
    pub log: LogConfig,
    /// Redaction.
    pub redaction: RedactionConfig,
    /// Error capture.
    pub capture: CaptureConfig,
    /// OTLP export.
    pub otlp: OtlpConfig,
    /// Metrics.
    pub metrics: MetricsConfig,
    /// Production debugging.
    pub diagnostics: DiagnosticsConfig,
    /// How long the guard waits for every output to flush.
    pub shutdown_timeout: Duration,
    /// The routes of the `[router]` section.
    #[cfg(feature = "router")]
    pub router: Option<strata_router::RouterConfig>,
    /// `STRATA_*` variables that look like misspelt settings, with the setting they resemble.
    pub unknown_env: Vec<(String, &'static str)>,
    pub(crate) sources: BTreeMap<&'static str, Source>,
}

impl Config {
    /// Where the setting `key` (`log.level`, `capture.dsn`…) came from.
    pub fn source(&self, key: &str) -> Option<&Source> {
        self.sources.get(key)
    }
}

/// The configuration [`crate::init`] would use now: the profile, the config file and the
/// environment merged (no code settings), or the first invalid key.
///
/// # Errors
///
/// A [`ConfigError`] naming the key.
pub fn effective() -> Result<Config, ConfigError> {
    crate::builder().resolve().map_err(|e| match e {
        crate::InitError::Config(c) => c,
        other => ConfigError::Invalid {
            key: "(setup)".to_owned(),
            origin: Source::Default,
            value: String::new(),
            expected: other.to_string(),
        },
    })
}

/// `scheme://user:password@host/path` with the user and password masked.
fn mask_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((_, host)) => format!("{scheme}://[REDACTED]@{host}"),
            None => url.to_owned(),
        },
        None => "[REDACTED]".to_owned(),
    }
}

// ---- reading values ------------------------------------------------------------------------

/// A raw value: an environment variable's text or a file's TOML value.
#[derive(Clone, Copy)]
pub(crate) enum Raw<'a> {
    Text(&'a str),
    Toml(&'a toml::Value),
}

/// `text` with every character a terminal would act on escaped (`\u{1b}`), for messages.
fn visible(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            c if unprintable(c) => c.escape_debug().to_string(),
            c => c.to_string(),
        })
        .collect()
}

impl Raw<'_> {
    fn text(&self) -> Option<&str> {
        match self {
            Raw::Text(s) => Some(s),
            Raw::Toml(toml::Value::String(s)) => Some(s),
            Raw::Toml(_) => None,
        }
    }

    /// The value for an error message, on one line with nothing a terminal would act on.
    fn shown(&self) -> String {
        match self {
            Raw::Text(s) => format!("{s:?}"),
            Raw::Toml(toml::Value::String(s)) => toml_string(s),
            // TOML writes C1 controls and bidirectional overrides raw.
            Raw::Toml(v) => visible(&v.to_string()),
        }
    }
}

type Parse<T> = fn(Raw<'_>) -> Result<T, &'static str>;

pub(crate) fn p_bool(r: Raw<'_>) -> Result<bool, &'static str> {
    const E: &str = "true or false (1/0, on/off, yes/no)";
    match r {
        Raw::Toml(toml::Value::Boolean(b)) => Ok(*b),
        _ => match r.text().map(|s| s.trim().to_ascii_lowercase()).as_deref() {
            Some("1" | "true" | "on" | "yes") => Ok(true),
            Some("0" | "false" | "off" | "no") => Ok(false),
            _ => Err(E),
        },
    }
}

pub(crate) fn p_name(r: Raw<'_>) -> Result<String, &'static str> {
    const E: &str = "1 to 256 bytes of text without control characters";
    let s = r.text().ok_or(E)?.trim();
    if s.is_empty() || s.len() > 256 || s.chars().any(|c| c.is_control() || c == '\u{FFFD}') {
        return Err(E);
    }
    Ok(s.to_owned())
}

pub(crate) fn p_profile(r: Raw<'_>) -> Result<Profile, &'static str> {
    r.text().and_then(Profile::from_name).ok_or(PROFILE_NAMES)
}

pub(crate) fn p_filter(r: Raw<'_>) -> Result<String, &'static str> {
    const E: &str = "tracing EnvFilter directives such as \"info,my_crate=debug\"";
    let s = directives(r.text().ok_or(E)?);
    tracing_subscriber::EnvFilter::builder()
        .with_regex(false)
        .parse(&s)
        .map(|_| s)
        .map_err(|_| E)
}

/// `level`'s directives, each trimmed: tracing-subscriber 0.3.23 indexes a directive's text by
/// positions in its trimmed copy, and panics when it starts with a space before a multi-byte
/// character (`" info1ゞ=warn"`, found by the config fuzz target).
fn directives(level: &str) -> String {
    level
        .split(',')
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(",")
}

pub(crate) fn p_format(r: Raw<'_>) -> Result<LogFormat, &'static str> {
    r.text()
        .and_then(LogFormat::from_name)
        .ok_or("json, ecs, gcp, otel or console")
}

pub(crate) fn p_color(r: Raw<'_>) -> Result<Option<bool>, &'static str> {
    const E: &str = "auto, always or never";
    match r {
        Raw::Toml(toml::Value::Boolean(b)) => Ok(Some(*b)),
        _ => match r.text().map(|s| s.trim().to_ascii_lowercase()).as_deref() {
            Some("auto") => Ok(None),
            Some("always" | "true" | "on") => Ok(Some(true)),
            Some("never" | "false" | "off") => Ok(Some(false)),
            _ => Err(E),
        },
    }
}

pub(crate) fn p_size(r: Raw<'_>) -> Result<usize, &'static str> {
    const E: &str = "a size from 16 bytes to 1 GiB: 4096, \"64KiB\", \"1MB\"";
    let n = match r {
        Raw::Toml(toml::Value::Integer(n)) => u64::try_from(*n).map_err(|_| E)?,
        _ => {
            let s = r.text().ok_or(E)?.trim();
            let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
            let n: u64 = s[..split].parse().map_err(|_| E)?;
            let mult: u64 = match s[split..].trim().to_ascii_lowercase().as_str() {
                "" | "b" => 1,
                "kb" => 1_000,
                "kib" => 1 << 10,
                "mb" => 1_000_000,
                "mib" => 1 << 20,
                _ => return Err(E),
            };
            n.checked_mul(mult).ok_or(E)?
        }
    };
    if !(16..=1 << 30).contains(&n) {
        return Err(E);
    }
    usize::try_from(n).map_err(|_| E)
}

pub(crate) fn p_duration(r: Raw<'_>) -> Result<Duration, &'static str> {
    const E: &str = "a duration from 1ms to 1h: \"500ms\", \"5s\", \"2m\"";
    let s = r.text().ok_or(E)?.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let n: u64 = s[..split].parse().map_err(|_| E)?;
    let d = match s[split..].trim() {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" | "min" => Duration::from_secs(n.checked_mul(60).ok_or(E)?),
        "h" => Duration::from_secs(n.checked_mul(3600).ok_or(E)?),
        _ => return Err(E),
    };
    if d < Duration::from_millis(1) || d > Duration::from_secs(3600) {
        return Err(E);
    }
    Ok(d)
}

pub(crate) fn p_severity(r: Raw<'_>) -> Result<Severity, &'static str> {
    r.text()
        .and_then(|s| s.trim().parse().ok())
        .ok_or("trace, debug, info, warn, error or critical")
}

pub(crate) fn p_level(r: Raw<'_>) -> Result<tracing::level_filters::LevelFilter, &'static str> {
    use tracing::level_filters::LevelFilter;
    match r.text().map(|s| s.trim().to_ascii_lowercase()).as_deref() {
        Some("trace") => Ok(LevelFilter::TRACE),
        Some("debug") => Ok(LevelFilter::DEBUG),
        Some("info") => Ok(LevelFilter::INFO),
        Some("warn") => Ok(LevelFilter::WARN),
        Some("error") => Ok(LevelFilter::ERROR),
        Some("off") => Ok(LevelFilter::OFF),
        _ => Err("trace, debug, info, warn, error or off"),
    }
}

pub(crate) fn p_count(r: Raw<'_>) -> Result<usize, &'static str> {
    const E: &str = "a whole number from 1 to 10000";
    let n = match r {
        Raw::Toml(toml::Value::Integer(n)) => *n,
        _ => r.text().and_then(|s| s.trim().parse().ok()).ok_or(E)?,
    };
    usize::try_from(n)
        .ok()
        .filter(|n| (1..=10_000).contains(n))
        .ok_or(E)
}

pub(crate) fn p_list(r: Raw<'_>) -> Result<Vec<String>, &'static str> {
    const E: &str = "a list of names: [\"a\", \"b\"] (in the environment: a,b)";
    match r {
        Raw::Toml(toml::Value::Array(a)) => a
            .iter()
            .map(|v| v.as_str().map(str::to_owned).ok_or(E))
            .collect(),
        _ => Ok(r
            .text()
            .ok_or(E)?
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()),
    }
}

pub(crate) fn p_patterns(r: Raw<'_>) -> Result<Vec<Pattern>, &'static str> {
    const E: &str = "pattern names: jwt, bearer, card, aws_key, private_key, url_password, token_prefix, key_value";
    p_list(r)
        .map_err(|_| E)?
        .iter()
        .map(|n| Pattern::from_name(n).ok_or(E))
        .collect()
}

pub(crate) fn p_path(r: Raw<'_>) -> Result<PathBuf, &'static str> {
    r.text()
        .filter(|s| !s.trim().is_empty())
        .map(PathBuf::from)
        .ok_or("a file path")
}

pub(crate) fn p_text(r: Raw<'_>) -> Result<String, &'static str> {
    r.text()
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().to_owned())
        .ok_or("a non-empty string")
}

pub(crate) fn p_addr(r: Raw<'_>) -> Result<SocketAddr, &'static str> {
    r.text()
        .and_then(|s| s.trim().parse().ok())
        .ok_or("an IP address and port: \"127.0.0.1:9464\"")
}

pub(crate) fn p_ratio(r: Raw<'_>) -> Result<f64, &'static str> {
    const E: &str = "a number from 0 to 1";
    let x = match r {
        Raw::Toml(toml::Value::Float(x)) => *x,
        Raw::Toml(toml::Value::Integer(n)) => *n as f64,
        _ => r.text().and_then(|s| s.trim().parse().ok()).ok_or(E)?,
    };
    if (0.0..=1.0).contains(&x) {
        Ok(x)
    } else {
        Err(E)
    }
}

pub(crate) fn p_headers(r: Raw<'_>) -> Result<Vec<(String, String)>, &'static str> {
    const E: &str = "a table of header names and string values: { \"x-api-key\" = \"…\" }";
    match r {
        Raw::Toml(toml::Value::Table(t)) => t
            .iter()
            .map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())).ok_or(E))
            .collect(),
        _ => Err(E),
    }
}

/// The keys a configuration file may hold, by table.
const TOP_KEYS: &[&str] = &[
    "env",
    "service",
    "version",
    "shutdown_timeout",
    "log",
    "redaction",
    "capture",
    "otlp",
    "metrics",
    "diagnostics",
    "router",
];
const SECTIONS: &[(&str, &[&str])] = &[
    (
        "log",
        &[
            "level",
            "format",
            "color",
            "file_line",
            "thread",
            "span_close",
            "max_field_len",
            "backtraces",
        ],
    ),
    (
        "redaction",
        &[
            "enabled",
            "fields",
            "exceptions",
            "token_prefixes",
            "disable_patterns",
        ],
    ),
    (
        "capture",
        &[
            "enabled",
            "dsn",
            "store",
            "min_level",
            "breadcrumbs",
            "backtraces",
        ],
    ),
    (
        "otlp",
        &[
            "enabled",
            "endpoint",
            "protocol",
            "sample_ratio",
            "headers",
            "file",
            "logs",
            "span_events",
        ],
    ),
    ("metrics", &["enabled", "listen", "lag_probe"]),
    (
        "diagnostics",
        &[
            "enabled",
            "listen",
            "token",
            "stuck_after",
            "heuristics",
            "tokio_console",
        ],
    ),
    ("router", &["route"]),
];

/// The edit distance between two short strings.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(row[j + 1] + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

fn nearest<'a>(word: &str, among: &[&'a str]) -> Option<&'a str> {
    among
        .iter()
        .map(|k| (distance(word, k), *k))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, k)| k)
}

/// The configuration file, parsed and checked for unknown keys.
pub(crate) struct File {
    path: PathBuf,
    table: toml::Table,
}

impl File {
    pub(crate) fn read(path: &Path, origin: Source) -> Result<File, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            file: path.to_owned(),
            origin,
            error,
        })?;
        Self::parse(path, &text)
    }

    pub(crate) fn parse(path: &Path, text: &str) -> Result<File, ConfigError> {
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            let line = e.span().map_or(1, |s| {
                text[..s.start.min(text.len())].matches('\n').count() + 1
            });
            ConfigError::Syntax {
                file: path.to_owned(),
                line,
                message: e.message().to_owned(),
            }
        })?;
        // Keys are the file's text: a quoted key may hold any character (`"\e[2J"`).
        let unknown = |key: String, within: &[&str], word: &str| ConfigError::UnknownKey {
            key: visible(&key),
            file: path.to_owned(),
            expected: within.join(", "),
            suggestion: nearest(word, within).map(str::to_owned),
        };
        for (k, v) in &table {
            if !TOP_KEYS.contains(&k.as_str()) {
                return Err(unknown(k.clone(), TOP_KEYS, k));
            }
            if let Some((_, keys)) = SECTIONS.iter().find(|(s, _)| s == k) {
                let Some(t) = v.as_table() else {
                    return Err(ConfigError::Invalid {
                        key: k.clone(),
                        origin: Source::File(path.to_owned()),
                        value: visible(&v.to_string()),
                        expected: format!("a table: [{k}]"),
                    });
                };
                if let Some(inner) = t.keys().find(|i| !keys.contains(&i.as_str())) {
                    return Err(unknown(format!("{k}.{inner}"), keys, inner));
                }
            }
        }
        Ok(File {
            path: path.to_owned(),
            table,
        })
    }

    fn get(&self, key: &str) -> Option<&toml::Value> {
        match key.split_once('.') {
            Some((section, rest)) => self.table.get(section)?.as_table()?.get(rest),
            None => self.table.get(key),
        }
    }

    /// Whether the file has the top-level key `key`.
    #[cfg_attr(feature = "router", allow(dead_code))]
    pub(crate) fn has(&self, key: &str) -> bool {
        self.table.contains_key(key)
    }

    #[cfg(feature = "router")]
    fn router(&self) -> Result<Option<strata_router::RouterConfig>, ConfigError> {
        let Some(v) = self.table.get("router") else {
            return Ok(None);
        };
        let text = toml::to_string(v).unwrap_or_default();
        let invalid = |e: String| ConfigError::Invalid {
            key: "router".to_owned(),
            origin: Source::File(self.path.clone()),
            value: "(routes)".to_owned(),
            expected: format!("valid routes: {e}"),
        };
        // Keys of the file's TOML are relative to `[router]`.
        let routes = strata_router::RouterConfig::from_toml(&text)
            .map_err(|e| invalid(format!("router.{e}")))?;
        routes
            .check("router.")
            .map_err(|e| invalid(e.to_string()))?;
        Ok(Some(routes))
    }
}

/// Reads one environment variable: `None` when unset or blank.
fn env_var(name: &'static str) -> Result<Option<String>, ConfigError> {
    match std::env::var(name) {
        Ok(v) if v.trim().is_empty() => Ok(None),
        Ok(v) => Ok(Some(v)),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(raw)) => Err(ConfigError::Invalid {
            key: name.to_owned(),
            origin: Source::Env(name),
            value: format!("{:?}", raw.to_string_lossy()),
            expected: "valid UTF-8".to_owned(),
        }),
    }
}

/// `STRATA_*` variables that are not settings but are one or two letters away from one.
pub(crate) fn misspelt_env() -> Vec<(String, &'static str)> {
    let mut out: Vec<(String, &'static str)> = std::env::vars_os()
        .filter_map(|(k, _)| k.into_string().ok())
        .filter(|k| k.starts_with("STRATA_") && !ENV_VARS.contains(&k.as_str()))
        .filter_map(|k| nearest(&k, ENV_VARS).map(|n| (k, n)))
        .collect();
    out.sort();
    out
}

/// Merges one setting: code, then the environment, then the file, then the default.
pub(crate) struct Resolver {
    pub(crate) file: Option<File>,
    pub(crate) sources: BTreeMap<&'static str, Source>,
}

impl Resolver {
    /// Resolves `key`: `code` (with its setter's name) wins, then the first set variable of
    /// `env`, then the file's `key`, then `default`.
    pub(crate) fn get<T>(
        &mut self,
        key: &'static str,
        code: Option<(T, &'static str)>,
        env: &[&'static str],
        parse: Parse<T>,
        default: (T, Source),
    ) -> Result<T, ConfigError> {
        if let Some((v, setter)) = code {
            self.sources.insert(key, Source::Code(setter));
            return Ok(v);
        }
        for &var in env {
            if let Some(text) = env_var(var)? {
                let v = parse(Raw::Text(&text)).map_err(|expected| ConfigError::Invalid {
                    key: format!("{var} ({key})"),
                    origin: Source::Env(var),
                    value: Raw::Text(&text).shown(),
                    expected: expected.to_owned(),
                })?;
                self.sources.insert(key, Source::Env(var));
                return Ok(v);
            }
        }
        if let Some(f) = &self.file
            && let Some(value) = f.get(key)
        {
            let v = parse(Raw::Toml(value)).map_err(|expected| ConfigError::Invalid {
                key: key.to_owned(),
                origin: Source::File(f.path.clone()),
                value: if key.ends_with("dsn") {
                    "(hidden)".to_owned()
                } else {
                    Raw::Toml(value).shown()
                },
                expected: expected.to_owned(),
            })?;
            self.sources.insert(key, Source::File(f.path.clone()));
            return Ok(v);
        }
        self.sources.insert(key, default.1);
        Ok(default.0)
    }

    /// Whether any of `env` is set (strata-otlp reads those itself).
    pub(crate) fn env_set(&mut self, key: &'static str, env: &[&'static str]) -> bool {
        match env
            .iter()
            .find(|v| std::env::var_os(v).is_some_and(|x| !x.is_empty()))
        {
            Some(v) => {
                self.sources.insert(key, Source::Env(v));
                true
            }
            None => false,
        }
    }

    #[cfg(feature = "router")]
    pub(crate) fn router(&mut self) -> Result<Option<strata_router::RouterConfig>, ConfigError> {
        match &self.file {
            Some(f) => {
                let r = f.router()?;
                if r.is_some() {
                    self.sources.insert("router", Source::File(f.path.clone()));
                }
                Ok(r)
            }
            None => Ok(None),
        }
    }

    /// An error for a section whose feature this build does not have.
    pub(crate) fn feature_off(&self, key: &'static str, feature: &str) -> Result<(), ConfigError> {
        match (&self.file, self.sources.get(key)) {
            (_, Some(origin @ (Source::File(_) | Source::Env(_) | Source::Code(_)))) => {
                Err(ConfigError::Invalid {
                    key: key.to_owned(),
                    origin: origin.clone(),
                    value: "true".to_owned(),
                    expected: format!(
                        "false: this build of strata has no `{feature}` cargo feature"
                    ),
                })
            }
            _ => Ok(()),
        }
    }
}

// ---- showing the result --------------------------------------------------------------------

/// Whether `Debug` escapes `c` (control characters, bidirectional overrides, unassigned code
/// points…), quotes and backslashes apart.
fn unprintable(c: char) -> bool {
    !matches!(c, '"' | '\'' | '\\') && c.escape_debug().nth(1).is_some()
}

/// `s` as a TOML basic string, `"…"`: quotes, backslashes and what Rust's `Debug` would
/// escape (control characters, bidirectional overrides, unassigned code points…) as TOML
/// escapes, so the output is TOML and safe on a terminal.
fn toml_string(s: &str) -> String {
    use fmt::Write as _;
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if unprintable(c) => {
                let _ = match u32::from(c) {
                    n @ 0..=0xffff => write!(out, "\\u{n:04X}"),
                    n => write!(out, "\\U{n:08X}"),
                };
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl Config {
    /// Every setting as `(key, value as TOML)`, secrets masked, in file order.
    fn rows(&self) -> Vec<(&'static str, String)> {
        let q = toml_string;
        let list = |v: &mut dyn Iterator<Item = &str>| {
            format!("[{}]", v.map(q).collect::<Vec<_>>().join(", "))
        };
        let opt = |v: Option<String>| v.map_or_else(|| "\"\"".to_owned(), |s| q(&s));
        let (l, r, c, o, m) = (
            &self.log,
            &self.redaction,
            &self.capture,
            &self.otlp,
            &self.metrics,
        );
        vec![
            ("env", q(self.profile.name())),
            ("service", q(&self.service)),
            ("version", opt(self.version.clone())),
            (
                "shutdown_timeout",
                q(&format!("{}ms", self.shutdown_timeout.as_millis())),
            ),
            ("log.level", q(&l.level)),
            ("log.format", q(l.format.name())),
            ("log.color", q(if l.color { "always" } else { "never" })),
            ("log.file_line", l.file_line.to_string()),
            ("log.thread", l.thread.to_string()),
            ("log.span_close", l.span_close.to_string()),
            ("log.max_field_len", l.max_field_len.to_string()),
            ("log.backtraces", l.backtraces.to_string()),
            ("redaction.enabled", r.enabled.to_string()),
            (
                "redaction.fields",
                list(&mut r.fields.iter().map(String::as_str)),
            ),
            (
                "redaction.exceptions",
                list(&mut r.exceptions.iter().map(String::as_str)),
            ),
            (
                "redaction.token_prefixes",
                list(&mut r.token_prefixes.iter().map(String::as_str)),
            ),
            (
                "redaction.disable_patterns",
                list(&mut r.disable_patterns.iter().map(|p| p.name())),
            ),
            ("capture.enabled", c.enabled.to_string()),
            ("capture.dsn", opt(c.dsn.as_deref().map(mask_url))),
            ("capture.store", q(&c.store.display().to_string())),
            ("capture.min_level", q(c.min_level.as_lower_str())),
            ("capture.breadcrumbs", c.breadcrumbs.to_string()),
            ("capture.backtraces", c.backtraces.to_string()),
            ("otlp.enabled", o.enabled.to_string()),
            ("otlp.endpoint", opt(o.endpoint.as_deref().map(mask_url))),
            ("otlp.protocol", q(o.protocol.as_deref().unwrap_or("grpc"))),
            (
                "otlp.sample_ratio",
                o.sample_ratio
                    .map_or_else(|| "1.0".to_owned(), |r| format!("{r:?}")),
            ),
            (
                "otlp.headers",
                format!(
                    "{{ {} }}",
                    o.headers
                        .iter()
                        .map(|(k, _)| format!("{} = \"[REDACTED]\"", toml_string(k)))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
            (
                "otlp.file",
                opt(o.file.as_ref().map(|p| p.display().to_string())),
            ),
            ("otlp.logs", o.logs.to_string()),
            (
                "otlp.span_events",
                // What strata-otlp applies when it is not set: WARN with log records.
                q(&o.span_events
                    .unwrap_or(if o.logs {
                        tracing::level_filters::LevelFilter::WARN
                    } else {
                        tracing::level_filters::LevelFilter::TRACE
                    })
                    .to_string()
                    .to_lowercase()),
            ),
            ("metrics.enabled", m.enabled.to_string()),
            ("metrics.listen", opt(m.listen.map(|a| a.to_string()))),
            (
                "metrics.lag_probe",
                opt(m.lag_probe.map(|d| format!("{}ms", d.as_millis()))),
            ),
            ("diagnostics.enabled", self.diagnostics.enabled.to_string()),
            (
                "diagnostics.listen",
                opt(self.diagnostics.listen.map(|a| a.to_string())),
            ),
            (
                "diagnostics.token",
                opt(self
                    .diagnostics
                    .token
                    .as_ref()
                    .map(|_| "[REDACTED]".to_owned())),
            ),
            (
                "diagnostics.stuck_after",
                q(&match self.diagnostics.stuck_after.as_millis() {
                    ms if ms % 1000 == 0 => format!("{}s", ms / 1000),
                    ms => format!("{ms}ms"),
                }),
            ),
            (
                "diagnostics.heuristics",
                self.diagnostics.heuristics.to_string(),
            ),
            (
                "diagnostics.tokio_console",
                self.diagnostics.tokio_console.to_string(),
            ),
        ]
    }
}

impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = self.file.as_ref().map_or_else(
            || "no config file".to_owned(),
            |p| format!("file {}", p.display()),
        );
        writeln!(
            f,
            "# strata configuration: {} profile, {file}",
            self.profile
        )?;
        let rows = self.rows();
        let mut i = 0;
        while i < rows.len() {
            let section = rows[i].0.split_once('.').map_or("", |(s, _)| s);
            let group: Vec<_> = rows[i..]
                .iter()
                .take_while(|(k, _)| k.split_once('.').map_or("", |(s, _)| s) == section)
                .collect();
            i += group.len();
            if !section.is_empty() {
                writeln!(f, "\n[{section}]")?;
            }
            let lines: Vec<(String, &'static str)> = group
                .iter()
                .map(|(k, v)| (format!("{} = {v}", k.rsplit('.').next().unwrap_or(k)), *k))
                .collect();
            let width = lines.iter().map(|(l, _)| l.len()).max().unwrap_or(0);
            for (line, key) in lines {
                let origin = self.sources.get(key).map(ToString::to_string);
                writeln!(f, "{line:width$}  # {}", origin.unwrap_or_default())?;
            }
        }
        #[cfg(feature = "router")]
        if let Some(r) = &self.router {
            for (i, route) in r.route.iter().enumerate() {
                writeln!(
                    f,
                    "\n[[router.route]]  # route {i}: sink {:?} (its settings are not shown: they may hold secrets)",
                    route.sink.as_deref().unwrap_or("?")
                )?;
            }
        }
        for (var, like) in &self.unknown_env {
            writeln!(
                f,
                "# warning: {var} is not a setting (did you mean {like}?)"
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_parse_or_say_what_was_expected() {
        assert_eq!(p_bool(Raw::Text("on")), Ok(true));
        assert_eq!(p_bool(Raw::Toml(&toml::Value::Boolean(false))), Ok(false));
        assert!(p_bool(Raw::Text("maybe")).is_err());
        assert_eq!(p_size(Raw::Text("64KiB")), Ok(65_536));
        assert_eq!(p_size(Raw::Toml(&toml::Value::Integer(4096))), Ok(4096));
        assert!(p_size(Raw::Text("2")).is_err());
        assert!(p_size(Raw::Toml(&toml::Value::Integer(-1))).is_err());
        assert_eq!(
            p_duration(Raw::Text("250ms")),
            Ok(Duration::from_millis(250))
        );
        assert!(p_duration(Raw::Text("5 weeks")).is_err());
        assert!(p_duration(Raw::Text("0s")).is_err());
        assert_eq!(p_format(Raw::Text("Console")), Ok(LogFormat::Console));
        assert_eq!(p_color(Raw::Text("auto")), Ok(None));
        assert_eq!(p_ratio(Raw::Toml(&toml::Value::Integer(1))), Ok(1.0));
        assert!(p_ratio(Raw::Text("1.5")).is_err());
        assert_eq!(
            p_patterns(Raw::Text("card, jwt")),
            Ok(vec![Pattern::Card, Pattern::Jwt])
        );
        assert!(p_patterns(Raw::Text("cards")).is_err());
        assert_eq!(p_severity(Raw::Text("critical")), Ok(Severity::Critical));
        assert!(p_name(Raw::Text("bad\u{1b}[31m")).is_err());
        assert!(p_filter(Raw::Text("info,[bad")).is_err());
    }

    #[test]
    fn unknown_keys_are_named_with_a_suggestion() {
        let err = File::parse(Path::new("s.toml"), "[log]\ncolour = \"never\"\n")
            .err()
            .unwrap();
        let text = err.to_string();
        assert!(
            text.contains("`log.colour`") && text.contains("`color`"),
            "{text}"
        );
        let err = File::parse(Path::new("s.toml"), "servce = \"x\"")
            .err()
            .unwrap();
        assert!(
            matches!(&err, ConfigError::UnknownKey { suggestion: Some(s), .. } if s == "service")
        );
        // A quoted key may hold any character: the message escapes what a terminal acts on.
        for text in ["\"x\\u001b[2Jy\" = 1", "[log]\n\"c\\u009b\\u202eo\" = 1"] {
            let err = File::parse(Path::new("s.toml"), text).err().unwrap();
            let shown = err.to_string();
            assert!(matches!(err, ConfigError::UnknownKey { .. }), "{shown}");
            assert!(
                !shown.chars().any(|c| c.is_control() || c == '\u{202e}'),
                "{shown:?}"
            );
            assert!(shown.contains("\\u{"), "escaped, not dropped: {shown}");
        }
        // A directive with a space before a multi-byte character: an error, not a panic.
        assert!(p_filter(Raw::Text(" info1\u{309e}=waEn")).is_err());
        assert_eq!(
            p_filter(Raw::Text(" info , shop=debug ")).unwrap(),
            "info,shop=debug"
        );
        let err = File::parse(Path::new("s.toml"), "log = 3").err().unwrap();
        assert!(err.to_string().contains("a table"), "{err}");
        let err = File::parse(Path::new("s.toml"), "a = [\n").err().unwrap();
        assert!(
            matches!(
                err,
                ConfigError::Syntax { line: 2, .. } | ConfigError::Syntax { line: 1, .. }
            ),
            "{err}"
        );
    }

    #[test]
    fn values_are_shown_as_toml_strings() {
        for (s, want) in [
            ("shop", r#""shop""#),
            (r#"a "b" \c'"#, r#""a \"b\" \\c'""#),
            (
                "a\nb\u{1b}[2J\u{202e}é\u{e0001}",
                r#""a\nb\u001B[2J\u202Eé\U000E0001""#,
            ),
        ] {
            let shown = toml_string(s);
            assert_eq!(shown, want);
            let back: toml::Table = format!("k = {shown}").parse().unwrap();
            assert_eq!(back["k"].as_str(), Some(s));
        }
        // Error messages too, whatever the value's type.
        let v: toml::Table = "s = 'a\u{9b}b'\na = ['x\u{202e}', 1]".parse().unwrap();
        assert_eq!(Raw::Toml(&v["s"]).shown(), r#""a\u009Bb""#);
        assert_eq!(Raw::Toml(&v["a"]).shown(), r#"["x\u{202e}", 1]"#);
    }

    #[test]
    fn urls_are_masked() {
        assert_eq!(
            mask_url("https://abc123@o1.ingest.sentry.io/42"),
            "https://[REDACTED]@o1.ingest.sentry.io/42"
        );
        assert_eq!(mask_url("http://collector:4317"), "http://collector:4317");
        assert_eq!(distance("STRATA_SERIVCE", "STRATA_SERVICE"), 2);
        assert_eq!(nearest("colour", &["color", "level"]), Some("color"));
    }
}
