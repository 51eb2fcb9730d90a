//! Routes from configuration: a TOML document (or the `[router]` section of a larger one) of
//! `[[route]]` tables, checked key by key.
//!
//! ```
//! use strata_router::RouterConfig;
//!
//! let config = RouterConfig::from_toml(r#"
//!     [[route]]
//!     sink = "stdout"
//!     format = "json"
//!     min_level = "info"
//!
//!     [[route]]
//!     sink = "file"
//!     dir = "target/doc-logs"
//!     prefix = "app"
//!     max_size = "50MB"
//!     rotation = "daily"
//!     keep_files = 10
//!
//!     [[route]]
//!     sink = "stderr"
//!     format = "text"
//!     min_level = "error"
//!     when = ["status >= 500"]
//! "#)?;
//! let (router, _guard) = config.build()?;
//! # Ok::<(), strata_router::ConfigError>(())
//! ```
//!
//! The keys of a route:
//!
//! | key | sinks | meaning |
//! |---|---|---|
//! | `sink` | all | `stdout`, `stderr`, `file`, `syslog`, `slack`, `discord`, `pagerduty`, `webhook`, `email` |
//! | `format` | non-alert | `json` (default), `ecs`, `gcp`, `otel`, `text` |
//! | `min_level`, `max_level` | all | `trace` … `critical` (default `info` … `critical`; alert sinks from `error`) |
//! | `targets`, `exclude_targets` | all | target prefixes |
//! | `classes` | all | `business`, `external`, `system` |
//! | `when` | all | field predicates, all must hold: `["status >= 500", "tenant == \"acme\""]` |
//! | `dir`, `prefix`, `max_size`, `rotation` (`hourly`/`daily`), `utc_offset` (`+02:00`), `keep_files`, `max_age`, `gzip`, `queue` (a size), `on_full` (`block`/`drop`) | file | rotation, retention, the non-blocking writer |
//! | `address` (`udp://host:port`, `tcp://host:port`, `unix:///dev/log`), `app_name`, `facility` (`user`, `local0`…`local7`), `queue_lines` | syslog | always in the background |
//! | `url` | slack, discord, webhook, pagerduty (optional) | the webhook or endpoint (a secret: never shown) |
//! | `routing_key` | pagerduty | the integration key |
//! | `headers` | webhook | extra headers, e.g. `{ Authorization = "Bearer …" }` |
//! | `smtp_url`, `from`, `to` | email | server (`smtp://`, `smtps://`, `?tls=required`), sender, recipients |
//! | `throttle`, `escalate_after`, `escalate_window`, `retry_attempts`, `queue_lines` | alert sinks | the [`AlertPolicy`](crate::AlertPolicy) and delivery |
//!
//! Secrets are masked in every route — JSON, text and alerts — when the base format given to
//! [`RouterConfig::build_with`] carries redaction rules.
//!
//! Sizes are bytes or `512KB`, `50MB`, `1GiB`; durations `500ms`, `30s`, `5m`, `2h`, `7d` (at
//! most 366 days); `queue_lines` counts lines (1 to 1 000 000).

use std::collections::BTreeMap;
use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Deserialize;
use strata_core::{ErrorClass, Severity};
use strata_json::{JsonFormat, Preset};

use crate::background::{Background, BackgroundGuard};
use crate::file::{Period, RollingFile};
use crate::nonblocking::{NonBlockingBuilder, Policy, WorkerGuard};
use crate::predicate::FieldPredicate;
use crate::router::{Format, Route, RouteFilter, RouterLayer, Stderr, Stdout};
use crate::syslog::{SyslogSink, Transport};

/// A configuration that is not valid: which key, what value, what was expected.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The TOML does not parse, a value has the wrong type, or a key is unknown.
    #[error("{key}: {message}")]
    Syntax {
        /// The path of the offending key (`route[2].max_size`), or `(line N)` for TOML syntax.
        key: String,
        /// What the parser said.
        message: String,
    },
    /// A value of the right type that is not acceptable.
    #[error("{key} = {value}: expected {expected}")]
    Invalid {
        /// The path of the key.
        key: String,
        /// The value as given (secrets are shown as `"(hidden)"`).
        value: String,
        /// What would have been accepted.
        expected: String,
    },
    /// A required key is missing.
    #[error("{key}: missing; {expected}")]
    Missing {
        /// The path of the key.
        key: String,
        /// What it should hold.
        expected: &'static str,
    },
    /// A valid configuration whose sink could not be opened (a directory not writable, a
    /// thread not started).
    #[error("{key}: could not open the sink: {message}")]
    Open {
        /// The route (`route[1]`).
        key: String,
        /// Why.
        message: String,
    },
}

/// The router's configuration: a list of routes.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouterConfig {
    /// The routes, in order.
    #[serde(default)]
    pub route: Vec<RouteConfig>,
}

/// One `[[route]]` table; see the module documentation for the keys.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct RouteConfig {
    pub sink: Option<String>,
    pub format: Option<String>,
    pub min_level: Option<String>,
    pub max_level: Option<String>,
    pub targets: Option<Vec<String>>,
    pub exclude_targets: Option<Vec<String>>,
    pub classes: Option<Vec<String>>,
    pub when: Option<Vec<String>>,
    // file
    pub dir: Option<PathBuf>,
    pub prefix: Option<String>,
    pub max_size: Option<Size>,
    pub rotation: Option<String>,
    pub utc_offset: Option<String>,
    pub keep_files: Option<u64>,
    pub max_age: Option<String>,
    pub gzip: Option<bool>,
    pub queue: Option<Size>,
    pub queue_lines: Option<u64>,
    pub on_full: Option<String>,
    // syslog
    pub address: Option<String>,
    pub app_name: Option<String>,
    pub facility: Option<String>,
    // alerts
    pub url: Option<String>,
    pub routing_key: Option<String>,
    pub headers: Option<BTreeMap<String, String>>,
    pub smtp_url: Option<String>,
    pub from: Option<String>,
    pub to: Option<Vec<String>>,
    pub throttle: Option<String>,
    pub escalate_after: Option<u64>,
    pub escalate_window: Option<String>,
    pub retry_attempts: Option<u64>,
}

impl fmt::Debug for RouteConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Secrets (webhook URLs, keys, SMTP credentials, headers) are not shown.
        f.debug_struct("RouteConfig")
            .field("sink", &self.sink)
            .field("format", &self.format)
            .field("min_level", &self.min_level)
            .field("max_level", &self.max_level)
            .field("targets", &self.targets)
            .field("when", &self.when)
            .finish_non_exhaustive()
    }
}

/// A size: a number of bytes, or a string with a unit (`512KB`, `50MB`, `1GiB`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
#[allow(missing_docs)]
pub enum Size {
    Bytes(u64),
    Text(String),
}

fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = (&s[..split], s[split..].trim());
    let n: f64 = num.parse().ok()?;
    let mult: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        _ => return None,
    };
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )]
    let bytes = (n * mult as f64) as u64;
    (n.is_finite() && n >= 0.0).then_some(bytes)
}

/// Parses `500ms`, `30s`, `5m`, `2h`, `7d` (and a bare number of seconds).
pub(crate) fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let n: u64 = s[..split].parse().ok()?;
    Some(match s[split..].trim() {
        "ms" => Duration::from_millis(n),
        "" | "s" => Duration::from_secs(n),
        "m" | "min" => Duration::from_secs(n.checked_mul(60)?),
        "h" => Duration::from_secs(n.checked_mul(3600)?),
        "d" => Duration::from_secs(n.checked_mul(86_400)?),
        _ => return None,
    })
}

/// `+02:00`, `-05:30`, `Z` → seconds east of UTC.
fn parse_offset(s: &str) -> Option<i32> {
    let s = s.trim();
    if s == "Z" || s == "UTC" || s == "+00:00" {
        return Some(0);
    }
    let sign = match s.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let (h, m) = s[1..].split_once(':')?;
    if h.len() != 2 || m.len() != 2 || !(h.bytes().chain(m.bytes())).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (h, m): (i32, i32) = (h.parse().ok()?, m.parse().ok()?);
    (h <= 14 && m < 60).then_some(sign * (h * 3600 + m * 60))
}

const FILE_KEYS: &[&str] = &[
    "dir",
    "prefix",
    "max_size",
    "rotation",
    "utc_offset",
    "keep_files",
    "max_age",
    "gzip",
    "queue",
    "on_full",
];
const SYSLOG_KEYS: &[&str] = &["address", "app_name", "facility", "queue_lines"];
/// Keys of every alert sink (each kind adds its own destination keys).
const ALERT_KEYS: &[&str] = &[
    "queue_lines",
    "throttle",
    "escalate_after",
    "escalate_window",
    "retry_attempts",
];

impl RouteConfig {
    /// The names of the sink-specific keys that are set.
    fn set_keys(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        let mut add = |name: &'static str, set: bool| {
            if set {
                v.push(name);
            }
        };
        add("dir", self.dir.is_some());
        add("prefix", self.prefix.is_some());
        add("max_size", self.max_size.is_some());
        add("rotation", self.rotation.is_some());
        add("utc_offset", self.utc_offset.is_some());
        add("keep_files", self.keep_files.is_some());
        add("max_age", self.max_age.is_some());
        add("gzip", self.gzip.is_some());
        add("queue", self.queue.is_some());
        add("queue_lines", self.queue_lines.is_some());
        add("on_full", self.on_full.is_some());
        add("address", self.address.is_some());
        add("app_name", self.app_name.is_some());
        add("facility", self.facility.is_some());
        add("url", self.url.is_some());
        add("routing_key", self.routing_key.is_some());
        add("headers", self.headers.is_some());
        add("smtp_url", self.smtp_url.is_some());
        add("from", self.from.is_some());
        add("to", self.to.is_some());
        add("throttle", self.throttle.is_some());
        add("escalate_after", self.escalate_after.is_some());
        add("escalate_window", self.escalate_window.is_some());
        add("retry_attempts", self.retry_attempts.is_some());
        v
    }
}

/// Keeps every background worker the configured routes started; dropping it flushes them all.
#[must_use = "dropping the guard stops the sinks' threads; hold it until the end of main"]
#[derive(Default)]
pub struct RouterGuard {
    writers: Vec<WorkerGuard>,
    /// The lines each file lost to failed writes.
    file_losses: Vec<Arc<AtomicU64>>,
    background: Vec<BackgroundGuard>,
    #[cfg(feature = "alerts")]
    alerts: Vec<crate::alert::AlertGuard>,
}

impl fmt::Debug for RouterGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RouterGuard")
            .field("writers", &self.writers.len())
            .field("background", &self.background.len())
            .finish_non_exhaustive()
    }
}

impl RouterGuard {
    /// A function returning how much the routes have lost so far, usable after the guard is
    /// gone: for strata-metrics' `strata_telemetry_dropped_total`. Lost: lines dropped because
    /// a queue was full (file writers, background sinks, alert sinks), lines a file or a
    /// background sink failed to write (a full disk, syslog down), alerts given up on.
    pub fn drop_counter(&self) -> impl Fn() -> u64 + Send + Sync + 'static {
        let mut counters: Vec<Box<dyn Fn() -> u64 + Send + Sync>> = Vec::new();
        for w in &self.writers {
            counters.push(Box::new(w.dropped_counter()));
        }
        for lost in &self.file_losses {
            let lost = Arc::clone(lost);
            counters.push(Box::new(move || lost.load(Ordering::Relaxed)));
        }
        for b in &self.background {
            counters.push(Box::new(b.dropped_counter()));
        }
        #[cfg(feature = "alerts")]
        for a in &self.alerts {
            counters.push(Box::new(a.dropped_counter()));
        }
        move || counters.iter().map(|c| c()).sum()
    }

    /// Waits until everything queued so far is written or delivered, at most `timeout` in
    /// all; `false` when time ran out (a sink is stuck or its destination down).
    pub fn flush_within(&self, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        let left = || deadline.saturating_duration_since(std::time::Instant::now());
        for w in &self.writers {
            w.flush();
        }
        let mut ok = true;
        for b in &self.background {
            ok &= b.flush(left());
        }
        #[cfg(feature = "alerts")]
        for a in &self.alerts {
            ok &= a.flush(left());
        }
        ok
    }

    /// Waits (bounded) until everything queued so far is written or delivered.
    pub fn flush(&self) {
        for w in &self.writers {
            w.flush();
        }
        for b in &self.background {
            b.flush(Duration::from_secs(5));
        }
        #[cfg(feature = "alerts")]
        for a in &self.alerts {
            a.flush(Duration::from_secs(10));
        }
    }
}

/// Checks one route; `key` is its path (`route[2]`).
struct Checker<'a> {
    key: &'a str,
}

impl Checker<'_> {
    fn invalid(&self, name: &str, value: &str, expected: &str) -> ConfigError {
        ConfigError::Invalid {
            key: format!("{}.{name}", self.key),
            value: format!("{value:?}"),
            expected: expected.to_owned(),
        }
    }

    fn missing(&self, name: &str, expected: &'static str) -> ConfigError {
        ConfigError::Missing {
            key: format!("{}.{name}", self.key),
            expected,
        }
    }

    fn level(
        &self,
        name: &str,
        v: Option<&String>,
        default: Severity,
    ) -> Result<Severity, ConfigError> {
        v.map_or(Ok(default), |s| {
            s.parse().map_err(|_| {
                self.invalid(name, s, "one of trace, debug, info, warn, error, critical")
            })
        })
    }

    /// `queue_lines`: 1 to 1 000 000.
    fn lines(&self, r: &RouteConfig) -> Result<Option<usize>, ConfigError> {
        r.queue_lines
            .map(|n| {
                usize::try_from(n)
                    .ok()
                    .filter(|n| (1..=1_000_000).contains(n))
                    .ok_or_else(|| self.invalid("queue_lines", &n.to_string(), "1 to 1000000"))
            })
            .transpose()
    }

    fn duration(&self, name: &str, v: Option<&String>) -> Result<Option<Duration>, ConfigError> {
        v.map(|s| {
            parse_duration(s)
                .filter(|d| *d <= Duration::from_secs(366 * 86_400))
                .ok_or_else(|| {
                    self.invalid(
                        name,
                        s,
                        "a duration like 500ms, 30s, 5m, 2h or 7d, at most 366d",
                    )
                })
        })
        .transpose()
    }

    fn size(&self, name: &str, v: Option<&Size>) -> Result<Option<u64>, ConfigError> {
        v.map(|s| match s {
            Size::Bytes(n) => Ok(*n),
            Size::Text(t) => parse_size(t)
                .ok_or_else(|| self.invalid(name, t, "a size like 4096, 512KB, 50MB or 1GiB")),
        })
        .transpose()
    }

    fn filter(&self, r: &RouteConfig, alert: bool) -> Result<RouteFilter, ConfigError> {
        let min_default = if alert {
            Severity::Error
        } else {
            Severity::Info
        };
        let min = self.level("min_level", r.min_level.as_ref(), min_default)?;
        let max = self.level("max_level", r.max_level.as_ref(), Severity::Critical)?;
        if min > max {
            return Err(self.invalid("max_level", max.as_str(), "a level at or above min_level"));
        }
        let mut f = RouteFilter::default().with_levels(min, max);
        for t in r.targets.iter().flatten() {
            f = f.with_target(t.clone());
        }
        for t in r.exclude_targets.iter().flatten() {
            f = f.without_target(t.clone());
        }
        if let Some(classes) = &r.classes {
            let parsed = classes
                .iter()
                .map(|c| {
                    ErrorClass::from_name(&c.to_ascii_lowercase())
                        .ok_or_else(|| self.invalid("classes", c, "business, external or system"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            f = f.with_classes(parsed);
        }
        for w in r.when.iter().flatten() {
            let p: FieldPredicate = w.parse().map_err(|e: crate::predicate::PredicateError| {
                self.invalid("when", w, &e.to_string())
            })?;
            f = f.with_field(p);
        }
        Ok(f)
    }

    fn format(&self, r: &RouteConfig, base: &JsonFormat) -> Result<Format, ConfigError> {
        let preset = match r.format.as_deref().unwrap_or("json") {
            "text" => return Ok(Format::Text),
            "json" | "default" => Preset::Default,
            "ecs" => Preset::Ecs,
            "gcp" => Preset::Gcp,
            "otel" | "opentelemetry" => Preset::OpenTelemetry,
            other => {
                return Err(self.invalid("format", other, "one of json, ecs, gcp, otel, text"));
            }
        };
        Ok(Format::Json(base.clone().with_preset(preset)))
    }

    fn policy(&self, r: &RouteConfig) -> Result<Policy, ConfigError> {
        match r.on_full.as_deref() {
            None | Some("block") => Ok(Policy::Block),
            Some("drop") => Ok(Policy::Drop),
            Some(other) => Err(self.invalid("on_full", other, "block or drop")),
        }
    }

    fn file(&self, r: &RouteConfig) -> Result<(RollingFile, NonBlockingBuilder), ConfigError> {
        let dir = r
            .dir
            .clone()
            .ok_or_else(|| self.missing("dir", "the directory the log files go in"))?;
        let prefix = r.prefix.clone().unwrap_or_else(|| "app".to_owned());
        if prefix.is_empty() || prefix.contains(['/', '\\', '\0']) {
            return Err(self.invalid("prefix", &prefix, "a file name without path separators"));
        }
        let mut file = RollingFile::new(dir, prefix);
        if let Some(bytes) = self.size("max_size", r.max_size.as_ref())? {
            if bytes == 0 {
                return Err(self.invalid("max_size", "0", "a size above zero"));
            }
            file = file.with_max_bytes(bytes);
        }
        match r.rotation.as_deref() {
            None | Some("never") => {}
            Some("hourly") => file = file.with_period(Period::Hourly),
            Some("daily") => file = file.with_period(Period::Daily),
            Some(other) => return Err(self.invalid("rotation", other, "hourly, daily or never")),
        }
        if let Some(o) = &r.utc_offset {
            let secs = parse_offset(o).ok_or_else(|| {
                self.invalid("utc_offset", o, "an offset like +02:00, -05:30 or Z")
            })?;
            file = file.with_utc_offset(secs);
        }
        if let Some(n) = r.keep_files {
            if n == 0 {
                return Err(self.invalid("keep_files", "0", "at least 1"));
            }
            file = file.with_max_files(usize::try_from(n).unwrap_or(usize::MAX));
        }
        if let Some(age) = self.duration("max_age", r.max_age.as_ref())? {
            if age.is_zero() {
                return Err(self.invalid("max_age", "0", "a duration above zero"));
            }
            file = file.with_max_age(age);
        }
        if let Some(g) = r.gzip {
            file = file.with_gzip(g);
        }
        let mut nb = NonBlockingBuilder::default()
            .with_policy(self.policy(r)?)
            .with_thread_name(format!("strata-file-{}", self.key));
        if let Some(q) = self.size("queue", r.queue.as_ref())? {
            if q == 0 {
                return Err(self.invalid("queue", "0", "a size above zero"));
            }
            nb = nb.with_capacity(usize::try_from(q).unwrap_or(usize::MAX));
        }
        Ok((file, nb))
    }

    fn syslog(&self, r: &RouteConfig) -> Result<Background<SyslogSink>, ConfigError> {
        let address = r.address.as_deref().ok_or_else(|| {
            self.missing(
                "address",
                "udp://host:port, tcp://host:port or unix:///path",
            )
        })?;
        let expected = "udp://host:port, tcp://host:port or unix:///path";
        let resolve = |hostport: &str| -> Result<SocketAddr, ConfigError> {
            hostport
                .to_socket_addrs()
                .ok()
                .and_then(|mut a| a.next())
                .ok_or_else(|| self.invalid("address", address, expected))
        };
        let transport = if let Some(rest) = address.strip_prefix("udp://") {
            Transport::Udp(resolve(rest)?)
        } else if let Some(rest) = address.strip_prefix("tcp://") {
            Transport::Tcp(resolve(rest)?)
        } else if let Some(rest) = address.strip_prefix("unix://") {
            Transport::Unix(PathBuf::from(rest))
        } else {
            return Err(self.invalid("address", address, expected));
        };
        let app = r
            .app_name
            .clone()
            .unwrap_or_else(strata_json::default_service_name);
        let mut sink = SyslogSink::new(transport, &app);
        if let Some(f) = &r.facility {
            let code = match f.as_str() {
                "kern" => 0,
                "user" => 1,
                "daemon" => 3,
                "auth" => 4,
                "local0" => 16,
                "local1" => 17,
                "local2" => 18,
                "local3" => 19,
                "local4" => 20,
                "local5" => 21,
                "local6" => 22,
                "local7" => 23,
                other => {
                    return Err(self.invalid(
                        "facility",
                        other,
                        "user, daemon, auth, kern or local0..local7",
                    ));
                }
            };
            sink = sink.with_facility(code);
        }
        let mut bg = Background::new(sink);
        if let Some(n) = self.lines(r)? {
            bg = bg.with_capacity(n);
        }
        Ok(bg)
    }

    #[cfg(feature = "alerts")]
    fn alert(&self, kind: &str, r: &RouteConfig) -> Result<crate::AlertSink, ConfigError> {
        use crate::alert::{AlertError, AlertPolicy, AlertSink, Destination, Retry};
        let hidden = |name: &str, e: AlertError| ConfigError::Invalid {
            key: format!("{}.{name}", self.key),
            value: "\"(hidden)\"".to_owned(),
            expected: e.to_string(),
        };
        let url = || {
            r.url
                .as_deref()
                .ok_or_else(|| self.missing("url", "the webhook URL"))
        };
        let mut dest = match kind {
            "slack" => Destination::slack(url()?).map_err(|e| hidden("url", e))?,
            "discord" => Destination::discord(url()?).map_err(|e| hidden("url", e))?,
            "webhook" => Destination::webhook(url()?).map_err(|e| hidden("url", e))?,
            "pagerduty" => {
                let key = r
                    .routing_key
                    .as_deref()
                    .ok_or_else(|| self.missing("routing_key", "the PagerDuty integration key"))?;
                let url = r
                    .url
                    .as_deref()
                    .unwrap_or(crate::alert::PAGERDUTY_EVENTS_URL);
                Destination::pagerduty_at(key, url).map_err(|e| match e {
                    AlertError::Invalid { .. } => hidden("routing_key", e),
                    e => hidden("url", e),
                })?
            }
            "email" => {
                let smtp = r.smtp_url.as_deref().ok_or_else(|| {
                    self.missing(
                        "smtp_url",
                        "the SMTP server, e.g. smtp://mail:587?tls=required",
                    )
                })?;
                let from = r
                    .from
                    .as_deref()
                    .ok_or_else(|| self.missing("from", "the sender address"))?;
                let to: Vec<&str> = r.to.iter().flatten().map(String::as_str).collect();
                Destination::email(smtp, from, &to).map_err(|e| match e {
                    AlertError::InvalidAddress { ref address, .. } => {
                        let key = if address == from { "from" } else { "to" };
                        self.invalid(key, address, &e.to_string())
                    }
                    AlertError::Invalid { .. } => self.missing("to", "at least one recipient"),
                    e => hidden("smtp_url", e),
                })?
            }
            _ => unreachable!("checked by the caller"),
        };
        for (name, value) in r.headers.iter().flatten() {
            dest = dest
                .with_header(name, value)
                .map_err(|e| hidden(&format!("headers.{name}"), e))?;
        }
        let mut policy = AlertPolicy::default();
        if let Some(t) = self.duration("throttle", r.throttle.as_ref())? {
            policy = policy.with_throttle(t);
        }
        if r.escalate_after.is_some() || r.escalate_window.is_some() {
            let default = AlertPolicy::default();
            let n = r.escalate_after.unwrap_or(u64::from(default.threshold));
            if n == 0 || n > 10_000 {
                return Err(self.invalid("escalate_after", &n.to_string(), "1 to 10000"));
            }
            let window = self
                .duration("escalate_window", r.escalate_window.as_ref())?
                .unwrap_or(default.window);
            if window < Duration::from_secs(1) {
                return Err(self.invalid(
                    "escalate_window",
                    r.escalate_window.as_deref().unwrap_or_default(),
                    "at least 1s",
                ));
            }
            policy = policy.with_escalation(u32::try_from(n).unwrap_or(1), window);
        }
        let mut sink = AlertSink::new(dest).with_policy(policy);
        if let Some(n) = r.retry_attempts {
            if n == 0 || n > 100 {
                return Err(self.invalid("retry_attempts", &n.to_string(), "1 to 100"));
            }
            sink = sink.with_retry(Retry::default().with_attempts(u32::try_from(n).unwrap_or(1)));
        }
        if let Some(n) = self.lines(r)? {
            sink = sink.with_queue_capacity(n);
        }
        Ok(sink)
    }
}

const SINKS: &str =
    "one of stdout, stderr, file, syslog, slack, discord, pagerduty, webhook, email";

impl RouterConfig {
    /// Parses a TOML document whose top level holds the `[[route]]` tables.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Syntax`] naming the key for TOML errors, wrong types and unknown keys.
    pub fn from_toml(text: &str) -> Result<RouterConfig, ConfigError> {
        let de = toml::Deserializer::parse(text).map_err(|e| {
            let line = e.span().map_or(1, |s| {
                text[..s.start.min(text.len())].matches('\n').count() + 1
            });
            ConfigError::Syntax {
                key: format!("(line {line})"),
                message: e.message().to_owned(),
            }
        })?;
        serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            ConfigError::Syntax {
                key: if key == "." {
                    "(document)".to_owned()
                } else {
                    key
                },
                message: e.into_inner().message().to_owned(),
            }
        })
    }

    /// Checks every route as [`RouterConfig::build_with`] would, opening nothing; `prefix` is
    /// put before every key in errors.
    ///
    /// # Errors
    ///
    /// The first invalid key, as a [`ConfigError`].
    pub fn check(&self, prefix: &str) -> Result<(), ConfigError> {
        let base = JsonFormat::new();
        for (i, r) in self.route.iter().enumerate() {
            plan(r, &format!("{prefix}route[{i}]"), &base)?;
        }
        Ok(())
    }

    /// Checks every route and opens its sink, with JSON routes rendered in strata's default
    /// format; see [`RouterConfig::build_with`].
    ///
    /// # Errors
    ///
    /// The first invalid key, as a [`ConfigError`].
    pub fn build(&self) -> Result<(RouterLayer, RouterGuard), ConfigError> {
        self.build_with(&JsonFormat::new(), "")
    }

    /// Checks every route and opens its sink. JSON routes use `base` (which carries the
    /// service, environment and version) with the route's preset; `prefix` is put before every
    /// key in errors (the facade passes `router.`). The redaction rules of `base`
    /// ([`JsonFormat::with_redaction`]) apply to every route: JSON, text and alert sinks
    /// (the router is built with [`RouterLayer::with_redaction`]).
    ///
    /// Nothing is opened when any route is invalid: all routes are checked first.
    ///
    /// # Errors
    ///
    /// The first invalid key, as a [`ConfigError`].
    pub fn build_with(
        &self,
        base: &JsonFormat,
        prefix: &str,
    ) -> Result<(RouterLayer, RouterGuard), ConfigError> {
        // Every route is checked, and its sink set up short of any I/O, before anything opens.
        let planned = self
            .route
            .iter()
            .enumerate()
            .map(|(i, r)| plan(r, &format!("{prefix}route[{i}]"), base))
            .collect::<Result<Vec<_>, _>>()?;
        let mut guard = RouterGuard::default();
        let mut layer = RouterLayer::new().with_redaction(base.redaction().cloned());
        for (key, plan) in planned {
            let open = |e: &dyn fmt::Display| ConfigError::Open {
                key: key.clone(),
                message: e.to_string(),
            };
            let route = match plan {
                Plan::Stdout(f, fmt) => Route::new(f, fmt, Stdout),
                Plan::Stderr(f, fmt) => Route::new(f, fmt, Stderr),
                Plan::File(f, fmt, file, nb) => {
                    let file = file.open().map_err(|e| open(&e))?;
                    guard.file_losses.push(file.lost_counter());
                    let (writer, g) = nb.spawn(file).map_err(|e| open(&e))?;
                    guard.writers.push(g);
                    Route::new(f, fmt, writer)
                }
                Plan::Syslog(f, fmt, bg) => {
                    let (sink, g) = bg.spawn().map_err(|e| open(&e))?;
                    guard.background.push(g);
                    Route::new(f, fmt, sink)
                }
                #[cfg(feature = "alerts")]
                Plan::Alert(f, sink) => {
                    let (sink, g) = sink.spawn().map_err(|e| open(&e))?;
                    guard.alerts.push(g);
                    Route::new(
                        f,
                        Format::Json(base.clone().with_preset(Preset::Default)),
                        sink,
                    )
                }
            };
            layer = layer.with_route(route);
        }
        Ok((layer, guard))
    }
}

/// A checked route, its sink not yet opened.
enum Plan {
    Stdout(RouteFilter, Format),
    Stderr(RouteFilter, Format),
    File(RouteFilter, Format, RollingFile, NonBlockingBuilder),
    Syslog(RouteFilter, Format, Background<SyslogSink>),
    #[cfg(feature = "alerts")]
    Alert(RouteFilter, crate::AlertSink),
}

/// Checks one route (`key` is its path) and sets up its sink short of I/O.
fn plan(r: &RouteConfig, key: &str, base: &JsonFormat) -> Result<(String, Plan), ConfigError> {
    let c = Checker { key };
    let kind = r.sink.as_deref().ok_or_else(|| c.missing("sink", SINKS))?;
    let alert = ALERT_SINKS.contains(&kind);
    if !alert && !["stdout", "stderr", "file", "syslog"].contains(&kind) {
        return Err(c.invalid("sink", kind, SINKS));
    }
    // A key that belongs to another sink is a mistake worth naming.
    let allowed: &[&str] = match kind {
        "file" => FILE_KEYS,
        "syslog" => SYSLOG_KEYS,
        "slack" | "discord" => &["url"],
        "webhook" => &["url", "headers"],
        "pagerduty" => &["url", "routing_key"],
        "email" => &["smtp_url", "from", "to"],
        _ => &[],
    };
    if let Some(k) = r
        .set_keys()
        .into_iter()
        .find(|k| !(allowed.contains(k) || (alert && ALERT_KEYS.contains(k))))
    {
        return Err(ConfigError::Invalid {
            key: format!("{key}.{k}"),
            value: "(set)".to_owned(),
            expected: format!("no `{k}` for sink {kind:?}: it is a setting of another sink"),
        });
    }
    let filter = c.filter(r, alert)?;
    if alert {
        if let Some(f) = r.format.as_ref().filter(|f| *f != "json") {
            return Err(c.invalid(
                "format",
                f,
                "no format for alert sinks: they read strata's JSON",
            ));
        }
        #[cfg(feature = "alerts")]
        return Ok((key.to_owned(), Plan::Alert(filter, c.alert(kind, r)?)));
        #[cfg(not(feature = "alerts"))]
        return Err(c.invalid(
            "sink",
            kind,
            "a sink this build has (strata-router's `alerts` feature is off)",
        ));
    }
    let format = c.format(r, base)?;
    let plan = match kind {
        "stdout" => Plan::Stdout(filter, format),
        "stderr" => Plan::Stderr(filter, format),
        "file" => {
            let (file, nb) = c.file(r)?;
            Plan::File(filter, format, file, nb)
        }
        _ => Plan::Syslog(filter, format, c.syslog(r)?),
    };
    Ok((key.to_owned(), plan))
}

const ALERT_SINKS: &[&str] = &["slack", "discord", "pagerduty", "webhook", "email"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_durations_offsets() {
        assert_eq!(parse_size("50MB"), Some(50_000_000));
        assert_eq!(parse_size("1GiB"), Some(1 << 30));
        assert_eq!(parse_size("512 kb"), Some(512_000));
        assert_eq!(parse_size("1.5MiB"), Some(1_572_864));
        assert_eq!(parse_size("12"), Some(12));
        assert_eq!(parse_size("50XB"), None);
        assert_eq!(parse_size("MB"), None);
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("7d"), Some(Duration::from_secs(604_800)));
        assert_eq!(parse_duration("5 weeks"), None);
        assert_eq!(parse_duration("99999999999999999999d"), None);
        assert_eq!(parse_offset("+02:00"), Some(7200));
        assert_eq!(parse_offset("-05:30"), Some(-19_800));
        assert_eq!(parse_offset("Z"), Some(0));
        assert_eq!(parse_offset("+25:00"), None);
        assert_eq!(parse_offset("0200"), None);
        assert_eq!(parse_offset("+-5:00"), None);
        assert_eq!(parse_offset("+05:-3"), None);
    }
}
