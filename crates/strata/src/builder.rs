//! The builder: code settings, their merge with the rest ([`Builder::resolve`]) and the
//! composition of every strata layer ([`Builder::try_init`]).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use strata_core::Severity;
use strata_core::redact::Redaction;
use tracing_subscriber::filter::{EnvFilter, FilterExt, filter_fn};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::layer::Filter;
use tracing_subscriber::prelude::*;
use tracing_subscriber::registry::LookupSpan;

use crate::config::{
    self, CaptureConfig, Config, ConfigError, DiagnosticsConfig, LogConfig, LogFormat,
    MetricsConfig, OtlpConfig, RedactionConfig, Resolver, Source,
};

/// The diagnostics endpoint shows every request in flight: off loopback it needs a token, and
/// the production profile serves it only with one; a token must be hard to guess.
fn check_diagnostics(
    d: &DiagnosticsConfig,
    profile: Profile,
    r: &Resolver,
) -> Result<(), ConfigError> {
    let origin = |key| r.sources.get(key).cloned().unwrap_or(Source::Default);
    if let Some(token) = &d.token
        && (token.len() < 16 || !token.bytes().all(|b| b.is_ascii_graphic()))
    {
        return Err(ConfigError::Invalid {
            key: "diagnostics.token".to_owned(),
            origin: origin("diagnostics.token"),
            value: "(hidden)".to_owned(),
            expected: "at least 16 visible ASCII characters".to_owned(),
        });
    }
    let Some(addr) = d.listen.filter(|_| d.enabled && d.token.is_none()) else {
        return Ok(());
    };
    if !addr.ip().is_loopback() {
        return Err(ConfigError::Invalid {
            key: "diagnostics.listen".to_owned(),
            origin: origin("diagnostics.listen"),
            value: addr.to_string(),
            expected: "a loopback address (127.0.0.1, [::1]), or a diagnostics.token: anyone who can reach it could read every request in flight".to_owned(),
        });
    }
    if profile == Profile::Production {
        return Err(ConfigError::Invalid {
            key: "diagnostics.token".to_owned(),
            origin: origin("diagnostics.listen"),
            value: "(none)".to_owned(),
            expected: format!(
                "a token (STRATA_DIAGNOSTICS_TOKEN): the production profile serves diagnostics on {addr} only with one"
            ),
        });
    }
    Ok(())
}
use crate::guard::{Guard, Parts};
use crate::{InitError, Profile};

/// Everything [`crate::init`] sets up, with code settings that win over the environment, the
/// config file and the profile (see the [crate documentation](crate#configuration)).
#[must_use = "a builder does nothing until `init` or `try_init` is called"]
pub struct Builder {
    /// The profile, the name given, and the setter that gave it.
    profile: Option<(Option<Profile>, String, &'static str)>,
    config_file: Option<Option<PathBuf>>,
    service: Option<String>,
    version: Option<String>,
    filter: Option<String>,
    default_filter: Option<String>,
    format: Option<LogFormat>,
    color: Option<bool>,
    file_line: Option<bool>,
    thread: Option<bool>,
    span_close: Option<bool>,
    max_field_len: Option<usize>,
    backtraces: Option<bool>,
    redaction: Option<Option<Redaction>>,
    capture: Option<bool>,
    otlp: Option<bool>,
    metrics: Option<bool>,
    metrics_listen: Option<std::net::SocketAddr>,
    shutdown_timeout: Option<Duration>,
    panic_hook: bool,
    writer: Option<BoxMakeWriter>,
    #[cfg(feature = "capture")]
    capture_settings: Option<strata_capture::Capture>,
    #[cfg(feature = "otlp")]
    otlp_settings: Option<strata_otlp::Otlp>,
    #[cfg(feature = "metrics")]
    metrics_instance: Option<strata_metrics::Metrics>,
    #[cfg(feature = "diagnostics")]
    heuristics: Option<strata_diagnostics::HeuristicsConfig>,
    #[cfg(feature = "router")]
    router: Option<strata_router::RouterConfig>,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            profile: None,
            config_file: None,
            service: None,
            version: None,
            filter: None,
            default_filter: None,
            format: None,
            color: None,
            file_line: None,
            thread: None,
            span_close: None,
            max_field_len: None,
            backtraces: None,
            redaction: None,
            capture: None,
            otlp: None,
            metrics: None,
            metrics_listen: None,
            shutdown_timeout: None,
            panic_hook: true,
            writer: None,
            #[cfg(feature = "capture")]
            capture_settings: None,
            #[cfg(feature = "otlp")]
            otlp_settings: None,
            #[cfg(feature = "metrics")]
            metrics_instance: None,
            #[cfg(feature = "diagnostics")]
            heuristics: None,
            #[cfg(feature = "router")]
            router: None,
        }
    }
}

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("profile", &self.profile.as_ref().map(|p| &p.1))
            .field("config_file", &self.config_file)
            .field("service", &self.service)
            .field("filter", &self.filter)
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

impl Builder {
    /// Sets the profile (overrides `STRATA_ENV` and the file's `env`).
    pub fn with_profile(mut self, profile: Profile) -> Self {
        self.profile = Some((
            Some(profile),
            profile.name().to_owned(),
            "Builder::with_profile",
        ));
        self
    }

    /// Sets the profile by name (`production`, `prod`…), checked by [`Builder::try_init`].
    pub fn with_env(mut self, env: impl Into<String>) -> Self {
        let name = env.into();
        self.profile = Some((Profile::from_name(&name), name, "Builder::with_env"));
        self
    }

    /// Reads this configuration file (instead of `STRATA_CONFIG` or `./strata.toml`); it must
    /// exist.
    pub fn with_config_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.config_file = Some(Some(path.into()));
        self
    }

    /// Reads no configuration file, whatever `STRATA_CONFIG` says or `./strata.toml` holds.
    pub fn without_config_file(mut self) -> Self {
        self.config_file = Some(None);
        self
    }

    /// Sets the service name (overrides `STRATA_SERVICE`).
    pub fn with_service(mut self, service: impl Into<String>) -> Self {
        self.service = Some(service.into());
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

    /// Sets the filter used when neither code, `RUST_LOG` nor the file gives one (instead of
    /// the profile's level).
    pub fn with_default_filter(mut self, directives: impl Into<String>) -> Self {
        self.default_filter = Some(directives.into());
        self
    }

    /// Sets the format of standard output (overrides `STRATA_LOG_FORMAT`).
    pub fn with_format(mut self, format: LogFormat) -> Self {
        self.format = Some(format);
        self
    }

    /// Colours the console format or not (overrides `STRATA_COLOR`; default: when standard
    /// output is a terminal and `NO_COLOR` is not set).
    pub fn with_color(mut self, on: bool) -> Self {
        self.color = Some(on);
        self
    }

    /// Adds source file and line to every line.
    pub fn with_file_line(mut self, on: bool) -> Self {
        self.file_line = Some(on);
        self
    }

    /// Adds the emitting thread's name to every JSON line.
    pub fn with_thread(mut self, on: bool) -> Self {
        self.thread = Some(on);
        self
    }

    /// Also logs a line with `duration_ms` when a span closes (JSON formats).
    pub fn with_span_close(mut self, on: bool) -> Self {
        self.span_close = Some(on);
        self
    }

    /// Cuts string values longer than `bytes`, visibly. Default: 16 KiB.
    pub fn with_max_field_len(mut self, bytes: usize) -> Self {
        self.max_field_len = Some(bytes);
        self
    }

    /// Shows the application's stack frames under ERROR and CRITICAL lines of the console
    /// format.
    pub fn with_backtraces(mut self, on: bool) -> Self {
        self.backtraces = Some(on);
        self
    }

    /// Masks secrets with these rules in every output (`None`: no redaction), instead of the
    /// profile's default and the `[redaction]` section.
    pub fn with_redaction(mut self, redaction: Option<Redaction>) -> Self {
        self.redaction = Some(redaction);
        self
    }

    /// Sends what goes to standard output (JSON lines or the console format) to `make_writer`
    /// instead: a file, a test's buffer.
    pub fn with_writer<M>(mut self, make_writer: M) -> Self
    where
        M: for<'w> MakeWriter<'w> + Send + Sync + 'static,
    {
        self.writer = Some(BoxMakeWriter::new(make_writer));
        self
    }

    /// Turns error capture on or off (overrides `STRATA_CAPTURE`).
    pub fn with_capture_enabled(mut self, on: bool) -> Self {
        self.capture = Some(on);
        self
    }

    /// Captures errors with these settings (instead of the `[capture]` section; the service,
    /// environment, version and redaction are still set from the configuration).
    #[cfg(feature = "capture")]
    pub fn with_capture(mut self, capture: strata_capture::Capture) -> Self {
        self.capture = Some(true);
        self.capture_settings = Some(capture);
        self
    }

    /// Installs strata-capture's panic hook (a CRITICAL line, the capture, every output
    /// flushed before the process dies) when capture is on. Default: on.
    pub fn with_panic_hook(mut self, on: bool) -> Self {
        self.panic_hook = on;
        self
    }

    /// Turns OTLP export on or off (overrides `STRATA_OTLP`).
    pub fn with_otlp_enabled(mut self, on: bool) -> Self {
        self.otlp = Some(on);
        self
    }

    /// Exports traces, log records and metrics with these settings (`Otlp::new()` reads the
    /// `OTEL_*` environment; with no endpoint, a local file), instead of the `[otlp]` section.
    /// Its layer sees every span, whatever the log filter.
    #[cfg(feature = "otlp")]
    pub fn with_otlp(mut self, otlp: strata_otlp::Otlp) -> Self {
        self.otlp = Some(true);
        self.otlp_settings = Some(otlp);
        self
    }

    /// Turns metrics on or off (overrides `STRATA_METRICS`).
    pub fn with_metrics_enabled(mut self, on: bool) -> Self {
        self.metrics = Some(on);
        self
    }

    /// Derives metrics from spans into `metrics` (else into a `Metrics` of its own,
    /// [`Guard::metrics`]). With OTLP export too, the same instruments go over OTLP, and the
    /// losses of every strata output appear as `strata_telemetry_dropped_total{source}`.
    #[cfg(feature = "metrics")]
    pub fn with_metrics(mut self, metrics: &strata_metrics::Metrics) -> Self {
        self.metrics = Some(true);
        self.metrics_instance = Some(metrics.clone());
        self
    }

    /// The heuristics' thresholds and sampling interval (default: those of the shipped alert
    /// rules). They run when `diagnostics.heuristics` and metrics are on.
    #[cfg(feature = "diagnostics")]
    pub fn with_heuristics(mut self, config: strata_diagnostics::HeuristicsConfig) -> Self {
        self.heuristics = Some(config);
        self
    }

    /// Serves `GET /metrics` on `addr` (overrides `STRATA_METRICS_ADDR`), on a thread of its
    /// own until the guard is dropped.
    pub fn with_metrics_listen(mut self, addr: std::net::SocketAddr) -> Self {
        self.metrics_listen = Some(addr);
        self
    }

    /// Routes events to more outputs — files, syslog, alerts — instead of the `[router]`
    /// section.
    #[cfg(feature = "router")]
    pub fn with_router(mut self, router: strata_router::RouterConfig) -> Self {
        self.router = Some(router);
        self
    }

    /// How long dropping the guard (or [`crate::shutdown`]) waits, at most, for every output to
    /// flush (overrides `STRATA_SHUTDOWN_TIMEOUT`). Default: 5 s.
    pub fn with_shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = Some(timeout);
        self
    }

    /// The configuration after merging code, the environment, the config file and the
    /// profile: what [`Builder::try_init`] would set up.
    ///
    /// # Errors
    ///
    /// [`InitError::Config`] naming the first invalid key.
    pub fn resolve(&self) -> Result<Config, InitError> {
        self.resolve_config().map_err(InitError::Config)
    }

    fn resolve_config(&self) -> Result<Config, ConfigError> {
        let mut r = Resolver {
            file: None,
            sources: Default::default(),
        };
        // The file first: everything else may come from it.
        let file = match &self.config_file {
            Some(Some(p)) => Some((p.clone(), Source::Code("Builder::with_config_file"))),
            Some(None) => None,
            None => match std::env::var_os("STRATA_CONFIG").filter(|p| !p.is_empty()) {
                Some(p) => Some((PathBuf::from(p), Source::Env("STRATA_CONFIG"))),
                None => Path::new(config::DEFAULT_FILE)
                    .is_file()
                    .then(|| (PathBuf::from(config::DEFAULT_FILE), Source::Default)),
            },
        };
        if let Some((path, origin)) = &file {
            r.file = Some(config::File::read(path, origin.clone())?);
        }
        let code = |key: &'static str, setter: &'static str, value: Option<&String>, parse| {
            value
                .map(|v| check_code(key, setter, v, parse))
                .transpose()
                .map(|v| v.map(|v| (v, setter)))
        };

        let profile = r.get(
            "env",
            self.profile
                .as_ref()
                .map(|(p, name, setter)| {
                    p.map(|p| (p, *setter)).ok_or_else(|| ConfigError::Invalid {
                        key: "env".to_owned(),
                        origin: Source::Code(setter),
                        value: format!("{name:?}"),
                        expected: crate::profile::PROFILE_NAMES.to_owned(),
                    })
                })
                .transpose()?,
            &["STRATA_ENV"],
            config::p_profile,
            (Profile::Development, Source::Default),
        )?;
        let by_profile = Source::Profile(profile);
        let dev = profile.is_development();
        let service = r.get(
            "service",
            code(
                "service",
                "Builder::with_service",
                self.service.as_ref(),
                config::p_name,
            )?,
            &["STRATA_SERVICE"],
            config::p_name,
            (exe_name(), Source::Default),
        )?;
        let version = r.get(
            "version",
            code(
                "version",
                "Builder::with_version",
                self.version.as_ref(),
                config::p_name,
            )?
            .map(|(v, s)| (Some(v), s)),
            &["STRATA_VERSION"],
            |raw| config::p_name(raw).map(Some),
            (None, Source::Default),
        )?;
        let shutdown_timeout = r.get(
            "shutdown_timeout",
            self.shutdown_timeout
                .map(|d| (d, "Builder::with_shutdown_timeout")),
            &["STRATA_SHUTDOWN_TIMEOUT"],
            config::p_duration,
            (Duration::from_secs(5), Source::Default),
        )?;

        // [log]
        let default_level = match &self.default_filter {
            Some(f) => (
                check_code(
                    "log.level",
                    "Builder::with_default_filter",
                    f,
                    config::p_filter,
                )?,
                Source::Code("Builder::with_default_filter"),
            ),
            None => (profile.log_level().to_owned(), by_profile.clone()),
        };
        let level = r.get(
            "log.level",
            code(
                "log.level",
                "Builder::with_filter",
                self.filter.as_ref(),
                config::p_filter,
            )?,
            &["RUST_LOG"],
            config::p_filter,
            default_level,
        )?;
        let console_built = cfg!(feature = "console");
        let mut format = r.get(
            "log.format",
            self.format.map(|f| (f, "Builder::with_format")),
            &["STRATA_LOG_FORMAT"],
            config::p_format,
            (
                if dev && console_built {
                    LogFormat::Console
                } else {
                    LogFormat::Json
                },
                by_profile.clone(),
            ),
        )?;
        let json_built = cfg!(feature = "json");
        let needs = |f: LogFormat| match f {
            LogFormat::Console => (!console_built).then_some("console"),
            _ => (!json_built).then_some("json"),
        };
        if let Some(feature) = needs(format) {
            let origin = r
                .sources
                .get("log.format")
                .cloned()
                .unwrap_or(Source::Default);
            if !matches!(origin, Source::Profile(_)) || !console_built && !json_built {
                return Err(ConfigError::Invalid {
                    key: "log.format".to_owned(),
                    origin,
                    value: format!("{:?}", format.name()),
                    expected: format!(
                        "a format this build has (strata's `{feature}` cargo feature is off)"
                    ),
                });
            }
            format = if console_built {
                LogFormat::Console
            } else {
                LogFormat::Json
            };
        }
        let color = r
            .get(
                "log.color",
                self.color.map(|c| (Some(c), "Builder::with_color")),
                &["STRATA_COLOR"],
                config::p_color,
                (None, Source::Default),
            )?
            .unwrap_or_else(color_default);
        let bool_key =
            |r: &mut Resolver, key, code: Option<bool>, setter, env: &[&'static str], default| {
                r.get(key, code.map(|v| (v, setter)), env, config::p_bool, default)
            };
        let log = LogConfig {
            level,
            format,
            color,
            file_line: bool_key(
                &mut r,
                "log.file_line",
                self.file_line,
                "Builder::with_file_line",
                &[],
                (dev, by_profile.clone()),
            )?,
            thread: bool_key(
                &mut r,
                "log.thread",
                self.thread,
                "Builder::with_thread",
                &[],
                (false, Source::Default),
            )?,
            span_close: bool_key(
                &mut r,
                "log.span_close",
                self.span_close,
                "Builder::with_span_close",
                &[],
                (false, Source::Default),
            )?,
            max_field_len: r.get(
                "log.max_field_len",
                self.max_field_len
                    .map(|n| (n.max(16), "Builder::with_max_field_len")),
                &[],
                config::p_size,
                (16 * 1024, Source::Default),
            )?,
            backtraces: bool_key(
                &mut r,
                "log.backtraces",
                self.backtraces,
                "Builder::with_backtraces",
                &[],
                (dev, by_profile.clone()),
            )?,
        };

        // [redaction]
        let redaction = RedactionConfig {
            enabled: bool_key(
                &mut r,
                "redaction.enabled",
                self.redaction.as_ref().map(Option::is_some),
                "Builder::with_redaction",
                &["STRATA_REDACT"],
                (!dev, by_profile.clone()),
            )?,
            fields: r.get(
                "redaction.fields",
                None,
                &[],
                config::p_list,
                (Vec::new(), Source::Default),
            )?,
            exceptions: r.get(
                "redaction.exceptions",
                None,
                &[],
                config::p_list,
                (Vec::new(), Source::Default),
            )?,
            token_prefixes: r.get(
                "redaction.token_prefixes",
                None,
                &[],
                config::p_list,
                (Vec::new(), Source::Default),
            )?,
            disable_patterns: r.get(
                "redaction.disable_patterns",
                None,
                &[],
                config::p_patterns,
                (Vec::new(), Source::Default),
            )?,
        };

        // [capture]
        let mut capture = CaptureConfig {
            enabled: bool_key(
                &mut r,
                "capture.enabled",
                self.capture,
                "Builder::with_capture_enabled",
                &["STRATA_CAPTURE"],
                (true, by_profile.clone()),
            )?,
            dsn: r.get(
                "capture.dsn",
                None,
                &["SENTRY_DSN"],
                |raw| config::p_text(raw).map(Some),
                (None, Source::Default),
            )?,
            store: r.get(
                "capture.store",
                None,
                &["STRATA_ERRORS_DB"],
                config::p_path,
                (PathBuf::from(".strata/errors.db"), Source::Default),
            )?,
            min_level: r.get(
                "capture.min_level",
                None,
                &[],
                config::p_severity,
                (Severity::Error, Source::Default),
            )?,
            breadcrumbs: r.get(
                "capture.breadcrumbs",
                None,
                &[],
                config::p_count,
                (100, Source::Default),
            )?,
            backtraces: bool_key(
                &mut r,
                "capture.backtraces",
                None,
                "",
                &[],
                (true, Source::Default),
            )?,
        };
        if capture.enabled && !cfg!(feature = "capture") {
            r.feature_off("capture.enabled", "capture")?;
            capture.enabled = false;
        }

        // [otlp]: the OTEL_* variables are strata-otlp's; they are shown here, not applied.
        let sdk_disabled =
            std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.trim().eq_ignore_ascii_case("true"));
        let mut otlp = OtlpConfig {
            enabled: if sdk_disabled && self.otlp.is_none() {
                r.sources
                    .insert("otlp.enabled", Source::Env("OTEL_SDK_DISABLED"));
                false
            } else {
                bool_key(
                    &mut r,
                    "otlp.enabled",
                    self.otlp,
                    "Builder::with_otlp_enabled",
                    &["STRATA_OTLP"],
                    (true, by_profile.clone()),
                )?
            },
            endpoint: r.get(
                "otlp.endpoint",
                None,
                &[
                    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                    "OTEL_EXPORTER_OTLP_ENDPOINT",
                ],
                |raw| config::p_text(raw).map(Some),
                (None, Source::Default),
            )?,
            protocol: r.get(
                "otlp.protocol",
                None,
                &[
                    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
                    "OTEL_EXPORTER_OTLP_PROTOCOL",
                ],
                |raw| match config::p_text(raw)?.as_str() {
                    p @ ("grpc" | "http/protobuf") => Ok(Some(p.to_owned())),
                    _ => Err("grpc or http/protobuf"),
                },
                (None, Source::Default),
            )?,
            sample_ratio: if r.env_set("otlp.sample_ratio", &["OTEL_TRACES_SAMPLER"]) {
                None
            } else {
                r.get(
                    "otlp.sample_ratio",
                    None,
                    &[],
                    |raw| config::p_ratio(raw).map(Some),
                    (
                        (profile == Profile::Production).then_some(0.1),
                        by_profile.clone(),
                    ),
                )?
            },
            headers: if r.env_set("otlp.headers", &["OTEL_EXPORTER_OTLP_HEADERS"]) {
                Vec::new()
            } else {
                r.get(
                    "otlp.headers",
                    None,
                    &[],
                    config::p_headers,
                    (Vec::new(), Source::Default),
                )?
            },
            file: r.get(
                "otlp.file",
                None,
                &["STRATA_TELEMETRY_FILE"],
                |raw| config::p_path(raw).map(Some),
                (None, Source::Default),
            )?,
            logs: if std::env::var("OTEL_LOGS_EXPORTER").is_ok_and(|v| v.trim() == "none") {
                r.sources
                    .insert("otlp.logs", Source::Env("OTEL_LOGS_EXPORTER"));
                false
            } else {
                bool_key(&mut r, "otlp.logs", None, "", &[], (true, Source::Default))?
            },
            span_events: r.get(
                "otlp.span_events",
                None,
                &["STRATA_OTLP_SPAN_EVENTS"],
                |raw| config::p_level(raw).map(Some),
                (None, Source::Default),
            )?,
        };
        if otlp.enabled && !cfg!(feature = "otlp") {
            r.feature_off("otlp.enabled", "otlp")?;
            otlp.enabled = false;
        }

        // [metrics]
        let mut metrics = MetricsConfig {
            enabled: bool_key(
                &mut r,
                "metrics.enabled",
                self.metrics,
                "Builder::with_metrics_enabled",
                &["STRATA_METRICS"],
                (true, by_profile.clone()),
            )?,
            listen: r.get(
                "metrics.listen",
                self.metrics_listen
                    .map(|a| (Some(a), "Builder::with_metrics_listen")),
                &["STRATA_METRICS_ADDR"],
                |raw| config::p_addr(raw).map(Some),
                (None, Source::Default),
            )?,
            lag_probe: r.get(
                "metrics.lag_probe",
                None,
                &[],
                |raw| config::p_duration(raw).map(Some),
                (Some(Duration::from_millis(250)), Source::Default),
            )?,
        };
        if metrics.enabled && !cfg!(feature = "metrics") {
            r.feature_off("metrics.enabled", "metrics")?;
            metrics.enabled = false;
        }

        // [diagnostics]
        let mut diagnostics = DiagnosticsConfig {
            enabled: bool_key(
                &mut r,
                "diagnostics.enabled",
                None,
                "",
                &["STRATA_DIAGNOSTICS"],
                (true, Source::Default),
            )?,
            listen: r.get(
                "diagnostics.listen",
                None,
                &["STRATA_DIAGNOSTICS_ADDR"],
                |raw| config::p_addr(raw).map(Some),
                (None, Source::Default),
            )?,
            token: r.get(
                "diagnostics.token",
                None,
                &["STRATA_DIAGNOSTICS_TOKEN"],
                |raw| config::p_text(raw).map(Some),
                (None, Source::Default),
            )?,
            stuck_after: r.get(
                "diagnostics.stuck_after",
                None,
                &[],
                config::p_duration,
                (Duration::from_secs(30), Source::Default),
            )?,
            heuristics: bool_key(
                &mut r,
                "diagnostics.heuristics",
                None,
                "",
                &[],
                (true, Source::Default),
            )?,
            tokio_console: bool_key(
                &mut r,
                "diagnostics.tokio_console",
                None,
                "",
                &[],
                (
                    dev && cfg!(feature = "tokio-console") && cfg!(tokio_unstable),
                    by_profile.clone(),
                ),
            )?,
        };
        if diagnostics.tokio_console && !cfg!(feature = "tokio-console") {
            r.feature_off("diagnostics.tokio_console", "tokio-console")?;
            diagnostics.tokio_console = false;
        }
        if diagnostics.enabled && !cfg!(feature = "diagnostics") {
            r.feature_off("diagnostics.enabled", "diagnostics")?;
            diagnostics.enabled = false;
        }
        check_diagnostics(&diagnostics, profile, &r)?;

        #[cfg(feature = "router")]
        let router = match &self.router {
            Some(routes) => {
                r.sources
                    .insert("router", Source::Code("Builder::with_router"));
                Some(routes.clone())
            }
            None => r.router()?,
        };
        #[cfg(not(feature = "router"))]
        if r.file.as_ref().is_some_and(|f| f.has("router")) {
            return Err(ConfigError::Invalid {
                key: "router".to_owned(),
                origin: Source::File(file.map(|f| f.0).unwrap_or_default()),
                value: "(routes)".to_owned(),
                expected: "no routes: this build of strata has no `router` cargo feature"
                    .to_owned(),
            });
        }

        Ok(Config {
            profile,
            service,
            version,
            file: file.map(|f| f.0),
            log,
            redaction,
            capture,
            otlp,
            metrics,
            diagnostics,
            shutdown_timeout,
            #[cfg(feature = "router")]
            router,
            unknown_env: config::misspelt_env(),
            sources: r.sources,
        })
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

    /// Sets up every output the configuration asks for and installs strata as the global
    /// subscriber; returns the guard that flushes them all.
    ///
    /// Everything is checked before anything starts: a bad setting starts no thread.
    ///
    /// # Errors
    ///
    /// [`InitError`] when a setting is invalid, an output cannot be opened, or a global
    /// subscriber is already installed.
    pub fn try_init(mut self) -> Result<Guard, InitError> {
        let cfg = self.resolve()?;
        // Before any output is opened: a second init must not create files or threads.
        if tracing::dispatcher::has_been_set() {
            return Err(InitError::AlreadyInitialized(
                "tracing's global default dispatcher is already set".into(),
            ));
        }
        #[allow(unused_variables, reason = "read by the optional outputs")]
        let redaction: Option<Arc<Redaction>> = match self.redaction.take() {
            Some(code) => code.map(Arc::new),
            None => cfg.redaction.rules().map(Arc::new),
        };
        #[allow(unused_mut, reason = "set by the optional outputs")]
        let mut parts = Parts::new(cfg.shutdown_timeout);

        // Outputs that can fail to start, before anything is installed.
        #[cfg(feature = "router")]
        let router_layer = match &cfg.router {
            Some(routes) => {
                let base = json_format(&cfg, redaction.clone());
                let (layer, guard) = routes
                    .build_with(&base, "router.")
                    .map_err(InitError::Router)?;
                parts.router = Some(guard);
                Some(under_log_filter(layer, &cfg.log.level))
            }
            None => None,
        };
        #[cfg(not(feature = "router"))]
        let router_layer: Option<tracing_subscriber::layer::Identity> = None;

        #[cfg(feature = "capture")]
        let capture_layer = if cfg.capture.enabled {
            let (layer, guard) = self.start_capture(&cfg, redaction.clone())?;
            parts.capture = Some(guard);
            parts.capture_stats = Some(layer.clone());
            Some(layer)
        } else {
            None
        };
        #[cfg(not(feature = "capture"))]
        let capture_layer: Option<tracing_subscriber::layer::Identity> = None;

        // Every span is traced; log records follow the log filter, like log lines.
        #[cfg(feature = "otlp")]
        let (otlp_layer, otlp_logs) = if cfg.otlp.enabled {
            let guard = Arc::new(self.start_otlp(&cfg, redaction.clone())?);
            strata_otlp::install_propagation();
            let layers = (Some(guard.traces_layer()), Some(guard.logs_layer()));
            parts.set_otlp(guard);
            layers
        } else {
            (None, None)
        };
        #[cfg(not(feature = "otlp"))]
        let (otlp_layer, otlp_logs): (
            Option<tracing_subscriber::layer::Identity>,
            Option<tracing_subscriber::layer::Identity>,
        ) = (None, None);

        #[cfg(feature = "metrics")]
        let metrics_layer = if cfg.metrics.enabled {
            let m = self.metrics_instance.take().unwrap_or_default();
            parts.wire_metrics(&m)?;
            if let Some(addr) = cfg.metrics.listen {
                parts
                    .serve_metrics(&m, addr)
                    .map_err(|error| InitError::Metrics { addr, error })?;
            }
            if let (Some(every), Ok(_)) =
                (cfg.metrics.lag_probe, tokio::runtime::Handle::try_current())
            {
                parts.lag_probe = Some(m.spawn_lag_probe(every));
            }
            let layer = m.layer();
            parts.metrics = Some(m);
            Some(layer)
        } else {
            None
        };
        #[cfg(not(feature = "metrics"))]
        let metrics_layer: Option<tracing_subscriber::layer::Identity> = None;

        #[cfg(feature = "diagnostics")]
        let diagnostics_layer = if cfg.diagnostics.enabled {
            let inflight =
                strata_diagnostics::Inflight::new().with_stuck_after(cfg.diagnostics.stuck_after);
            let layer = inflight.layer();
            #[allow(unused_mut)]
            let mut d = crate::guard::DiagnosticsParts::start(inflight, &cfg.diagnostics)
                .map_err(InitError::Diagnostics)?;
            #[cfg(feature = "metrics")]
            if let (true, Some(m)) = (cfg.diagnostics.heuristics, &parts.metrics) {
                let thresholds = self.heuristics.take().unwrap_or_default();
                d.watch_metrics(m, thresholds)
                    .map_err(InitError::Diagnostics)?;
            }
            parts.diagnostics = Some(d);
            Some(layer)
        } else {
            None
        };
        #[cfg(not(feature = "diagnostics"))]
        let diagnostics_layer: Option<tracing_subscriber::layer::Identity> = None;

        // tokio-console: its layer only where Tokio records task events (tokio_unstable);
        // elsewhere its constructor would panic, so strata says what is missing instead.
        #[cfg(feature = "tokio-console")]
        let tokio_console_layer = if cfg.diagnostics.tokio_console && cfg!(tokio_unstable) {
            Some(console_subscriber::spawn())
        } else {
            None
        };
        #[cfg(not(feature = "tokio-console"))]
        let tokio_console_layer: Option<tracing_subscriber::layer::Identity> = None;
        let tokio_console_missing_cfg = cfg.diagnostics.tokio_console && !cfg!(tokio_unstable);

        // Standard output (or the writer given in code), JSON or console.
        let writer = self
            .writer
            .take()
            .unwrap_or_else(|| BoxMakeWriter::new(std::io::stdout));
        #[cfg(feature = "console")]
        let (console_layer, writer) = if cfg.log.format == LogFormat::Console {
            let layer = strata_console::layer()
                .with_writer(writer)
                .with_color(cfg.log.color)
                .with_backtraces(cfg.log.backtraces)
                .with_redaction(redaction.clone());
            (Some(under_log_filter(layer, &cfg.log.level)), None)
        } else {
            (None, Some(writer))
        };
        #[cfg(not(feature = "console"))]
        let (console_layer, writer): (Option<tracing_subscriber::layer::Identity>, _) =
            (None, Some(writer));
        #[cfg(feature = "json")]
        let json_layer = writer.map(|w| {
            let layer = strata_json::layer()
                .with_format(json_format(&cfg, redaction.clone()))
                .with_span_close(cfg.log.span_close)
                .with_writer(w);
            parts.json = Some(layer.handle());
            layer
        });
        #[cfg(not(feature = "json"))]
        let json_layer: Option<tracing_subscriber::layer::Identity> = {
            let _ = writer;
            None
        };

        // Log records and JSON lines follow the log filter: one filter for both, checked per
        // event when it is static (`Logged`), else one per-layer filter (each per-layer filter
        // costs every span callback its own bookkeeping).
        let logged = (otlp_logs.is_some() || json_layer.is_some()).then(|| {
            under_log_filter(
                tracing_subscriber::Layer::and_then(otlp_logs, json_layer),
                &cfg.log.level,
            )
        });

        // OTLP first: spans get their trace IDs before any other layer reads them.
        tracing_subscriber::registry()
            .with(strata_core::StoreLayer::new())
            .with(otlp_layer)
            .with(logged)
            .with(console_layer)
            .with(router_layer)
            .with(capture_layer)
            .with(metrics_layer)
            .with(diagnostics_layer)
            .with(tokio_console_layer)
            .try_init()
            .map_err(|e| InitError::AlreadyInitialized(Box::new(e)))?;

        #[cfg(feature = "capture")]
        if self.panic_hook && cfg.capture.enabled {
            strata_capture::install_panic_hook_with(cfg.shutdown_timeout);
        }
        if tokio_console_missing_cfg {
            tracing::warn!(
                target: "strata",
                event = "tokio_console_unavailable",
                "tokio-console is on (diagnostics.tokio_console) but Tokio was built without task events: build with RUSTFLAGS=\"--cfg tokio_unstable\" to use it"
            );
        }
        for (var, like) in &cfg.unknown_env {
            tracing::warn!(
                target: "strata",
                variable = %var,
                did_you_mean = like,
                "{var} is not a strata setting (did you mean {like}?)"
            );
        }
        Ok(Guard::new(cfg, parts))
    }

    #[cfg(feature = "capture")]
    fn start_capture(
        &mut self,
        cfg: &Config,
        redaction: Option<Arc<Redaction>>,
    ) -> Result<(strata_capture::CaptureLayer, strata_capture::CaptureGuard), InitError> {
        let c = &cfg.capture;
        let mut capture = match self.capture_settings.take() {
            Some(code) => code,
            None => {
                let mut capture = strata_capture::Capture::new()
                    .with_breadcrumbs(c.breadcrumbs, Severity::Info)
                    .with_min_level(c.min_level)
                    .with_backtraces(c.backtraces);
                if let Some(dsn) = &c.dsn {
                    capture = capture.with_dsn(dsn).map_err(|e| {
                        InitError::Config(ConfigError::Invalid {
                            key: "capture.dsn".to_owned(),
                            origin: cfg
                                .source("capture.dsn")
                                .cloned()
                                .unwrap_or(Source::Default),
                            value: "(hidden)".to_owned(),
                            expected: e.to_string(),
                        })
                    })?;
                }
                if c.dsn.is_none() || cfg.source("capture.store") != Some(&Source::Default) {
                    capture = capture.with_store(&c.store);
                }
                capture
            }
        };
        capture = capture
            .with_service(cfg.service.clone())
            .with_environment(cfg.profile.name());
        if let Some(v) = &cfg.version {
            capture = capture.with_release(v.clone());
        }
        capture
            .with_redaction(redaction)
            .start()
            .map_err(InitError::Capture)
    }

    #[cfg(feature = "otlp")]
    fn start_otlp(
        &mut self,
        cfg: &Config,
        redaction: Option<Arc<Redaction>>,
    ) -> Result<strata_otlp::OtlpGuard, InitError> {
        let o = &cfg.otlp;
        let from_file_or_profile =
            |key: &str| matches!(cfg.source(key), Some(Source::File(_) | Source::Profile(_)));
        let mut otlp = match self.otlp_settings.take() {
            Some(code) => code,
            None => {
                let mut otlp = strata_otlp::Otlp::new();
                if from_file_or_profile("otlp.endpoint")
                    && let Some(e) = &o.endpoint
                {
                    otlp = otlp.with_endpoint(e.clone());
                }
                if from_file_or_profile("otlp.protocol")
                    && let Some(p) = &o.protocol
                {
                    otlp = otlp.with_protocol(if p == "grpc" {
                        strata_otlp::Protocol::Grpc
                    } else {
                        strata_otlp::Protocol::HttpProtobuf
                    });
                }
                if from_file_or_profile("otlp.sample_ratio")
                    && let Some(ratio) = o.sample_ratio
                {
                    otlp = otlp.with_sampler(strata_otlp::Sampler::ParentBased(Box::new(
                        strata_otlp::Sampler::TraceIdRatioBased(ratio),
                    )));
                }
                for (k, v) in &o.headers {
                    otlp = otlp.with_header(k.clone(), v.clone());
                }
                if let (Some(Source::File(_)), Some(path)) = (cfg.source("otlp.file"), &o.file) {
                    otlp = otlp.with_file(path.clone(), 50_000_000);
                }
                if matches!(cfg.source("otlp.logs"), Some(Source::File(_))) {
                    otlp = otlp.with_logs(o.logs);
                }
                if let Some(level) = o.span_events {
                    otlp = otlp.with_span_events(level);
                }
                otlp
            }
        };
        otlp = otlp
            .with_service_name(cfg.service.clone())
            .with_environment(cfg.profile.name())
            .with_redaction(redaction);
        if let Some(v) = &cfg.version {
            otlp = otlp.with_service_version(v.clone());
        }
        Ok(otlp.start()?)
    }
}

/// `layer` under the log filter `level`: checked per event when the filter is static
/// ([`crate::logged::Logged`]), else as a per-layer filter.
fn under_log_filter<S, L>(
    layer: L,
    level: &str,
) -> Box<dyn tracing_subscriber::Layer<S> + Send + Sync>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    L: tracing_subscriber::Layer<S> + Send + Sync + 'static,
{
    match crate::logged::Logged::new(layer, level) {
        Ok(logged) => Box::new(logged),
        Err(layer) => Box::new(layer.with_filter(log_filter(level))),
    }
}

/// The log filter: it decides which *events* are written. Spans at INFO and above always
/// exist, so a WARN line inside a request still carries the request's fields.
fn log_filter<S>(level: &str) -> Box<dyn Filter<S> + Send + Sync>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    // Field values match as text, not regular expressions: a hostile `log.level` could make
    // the regex compiler run for seconds (found by the config fuzz target). `level` passed
    // `config::p_filter`, which trimmed its directives.
    EnvFilter::builder()
        .with_regex(false)
        .parse(level)
        .unwrap_or_else(|_| EnvFilter::new("info"))
        .or(filter_fn(|meta| {
            meta.is_span() && *meta.level() <= tracing::Level::INFO
        }))
        .boxed()
}

/// The JSON format every JSON output of the configuration uses.
#[cfg(feature = "json")]
fn json_format(cfg: &Config, redaction: Option<Arc<Redaction>>) -> strata_json::JsonFormat {
    let preset = match cfg.log.format {
        LogFormat::Ecs => strata_json::Preset::Ecs,
        LogFormat::Gcp => strata_json::Preset::Gcp,
        LogFormat::Otel => strata_json::Preset::OpenTelemetry,
        _ => strata_json::Preset::Default,
    };
    let mut f = strata_json::JsonFormat::new()
        .with_preset(preset)
        .with_service(cfg.service.clone())
        .with_env(cfg.profile.name())
        .with_file_line(cfg.log.file_line)
        .with_thread(cfg.log.thread)
        .with_max_field_len(cfg.log.max_field_len)
        .with_redaction(redaction);
    if let Some(v) = &cfg.version {
        f = f.with_version(v.clone());
    }
    f
}

/// A value set in code, checked like the same value from anywhere else.
fn check_code<T>(
    key: &'static str,
    setter: &'static str,
    value: &str,
    parse: fn(config::Raw<'_>) -> Result<T, &'static str>,
) -> Result<T, ConfigError> {
    parse(config::Raw::Text(value)).map_err(|expected| {
        let mut shown = strata_core::encode::clip(value, 64).to_owned();
        if shown.len() < value.len() {
            shown.push('…');
        }
        ConfigError::Invalid {
            key: key.to_owned(),
            origin: Source::Code(setter),
            value: format!("{shown:?}"),
            expected: expected.to_owned(),
        }
    })
}

/// The executable's name: the default service name.
fn exe_name() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "unknown_service".to_owned())
}

/// Colour by default when standard output is a terminal and `NO_COLOR` is not set.
fn color_default() -> bool {
    #[cfg(feature = "console")]
    {
        strata_console::color_default()
    }
    #[cfg(not(feature = "console"))]
    {
        false
    }
}
