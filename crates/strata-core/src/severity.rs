//! Severities: tracing's five levels plus CRITICAL.

use std::fmt;
use std::str::FromStr;

use tracing_core::{Level, Metadata};

/// The name of the field that marks an ERROR-level event as CRITICAL.
///
/// [`critical!`](crate::critical) adds it; every strata layer checks for it with
/// [`Severity::of`], and output formats never print it as a field.
pub const CRITICAL_FIELD: &str = "strata.critical";

/// How bad an event is: tracing's five levels plus `CRITICAL` ("the system is not usable").
///
/// `tracing` has no sixth level, so a CRITICAL event is an ERROR event carrying the
/// [`CRITICAL_FIELD`] marker, emitted with [`critical!`](crate::critical). Ordering follows
/// urgency: `Trace < Debug < Info < Warn < Error < Critical`.
///
/// ```
/// use strata_core::Severity;
/// assert!(Severity::Critical > Severity::Error);
/// assert_eq!(Severity::Warn.otel_number(), 13);
/// assert_eq!("warning".parse::<Severity>().unwrap(), Severity::Warn);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Very detailed diagnostics.
    Trace,
    /// Internal details, variables, timings.
    Debug,
    /// High-level "this happened".
    Info,
    /// Unusual but recoverable.
    Warn,
    /// An operation failed; the application keeps running.
    Error,
    /// The system is not usable; always alerts.
    Critical,
}

impl Severity {
    /// All severities, least urgent first.
    pub const ALL: [Severity; 6] = [
        Severity::Trace,
        Severity::Debug,
        Severity::Info,
        Severity::Warn,
        Severity::Error,
        Severity::Critical,
    ];

    /// The severity of an event or span described by `metadata`.
    ///
    /// ERROR events whose field set contains [`CRITICAL_FIELD`] are [`Severity::Critical`].
    /// The check is on the callsite's static field set, so it costs a few comparisons and
    /// only for ERROR events.
    #[inline]
    pub fn of(metadata: &Metadata<'_>) -> Severity {
        let level = *metadata.level();
        if level == Level::ERROR && metadata.fields().field(CRITICAL_FIELD).is_some() {
            Severity::Critical
        } else {
            Severity::from(level)
        }
    }

    /// The upper-case name used in every strata output: `TRACE` … `CRITICAL`.
    #[inline]
    pub const fn as_str(self) -> &'static str {
        match self {
            Severity::Trace => "TRACE",
            Severity::Debug => "DEBUG",
            Severity::Info => "INFO",
            Severity::Warn => "WARN",
            Severity::Error => "ERROR",
            Severity::Critical => "CRITICAL",
        }
    }

    /// The lower-case name (Elastic Common Schema's `log.level` convention).
    #[inline]
    pub const fn as_lower_str(self) -> &'static str {
        match self {
            Severity::Trace => "trace",
            Severity::Debug => "debug",
            Severity::Info => "info",
            Severity::Warn => "warn",
            Severity::Error => "error",
            Severity::Critical => "critical",
        }
    }

    /// The OpenTelemetry `SeverityNumber` (log data model): the first number of each range,
    /// TRACE = 1, DEBUG = 5, INFO = 9, WARN = 13, ERROR = 17, CRITICAL = 21 (FATAL).
    #[inline]
    pub const fn otel_number(self) -> u8 {
        match self {
            Severity::Trace => 1,
            Severity::Debug => 5,
            Severity::Info => 9,
            Severity::Warn => 13,
            Severity::Error => 17,
            Severity::Critical => 21,
        }
    }

    /// The Google Cloud Logging `LogSeverity` name (`TRACE` has no equivalent and maps to `DEBUG`).
    #[inline]
    pub const fn gcp_name(self) -> &'static str {
        match self {
            Severity::Trace | Severity::Debug => "DEBUG",
            Severity::Info => "INFO",
            Severity::Warn => "WARNING",
            Severity::Error => "ERROR",
            Severity::Critical => "CRITICAL",
        }
    }

    /// The `tracing` level events of this severity are emitted at (CRITICAL → ERROR).
    #[inline]
    pub const fn level(self) -> Level {
        match self {
            Severity::Trace => Level::TRACE,
            Severity::Debug => Level::DEBUG,
            Severity::Info => Level::INFO,
            Severity::Warn => Level::WARN,
            Severity::Error | Severity::Critical => Level::ERROR,
        }
    }
}

impl From<Level> for Severity {
    #[inline]
    fn from(level: Level) -> Self {
        match level {
            Level::TRACE => Severity::Trace,
            Level::DEBUG => Severity::Debug,
            Level::INFO => Severity::Info,
            Level::WARN => Severity::Warn,
            _ => Severity::Error,
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// The error returned when a string names no [`Severity`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ParseSeverityError {
    /// The string that was offered (truncated to 64 bytes).
    pub given: String,
}

impl fmt::Display for ParseSeverityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown severity {:?}: expected one of trace, debug, info, warn (warning), error, critical (crit, fatal)",
            self.given
        )
    }
}

impl std::error::Error for ParseSeverityError {}

impl FromStr for Severity {
    type Err = ParseSeverityError;

    /// Parses a severity name case-insensitively; `warning`, `fatal` and `crit` are accepted aliases.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        Ok(match () {
            _ if t.eq_ignore_ascii_case("trace") => Severity::Trace,
            _ if t.eq_ignore_ascii_case("debug") => Severity::Debug,
            _ if t.eq_ignore_ascii_case("info") => Severity::Info,
            _ if t.eq_ignore_ascii_case("warn") || t.eq_ignore_ascii_case("warning") => {
                Severity::Warn
            }
            _ if t.eq_ignore_ascii_case("error") => Severity::Error,
            _ if t.eq_ignore_ascii_case("critical")
                || t.eq_ignore_ascii_case("crit")
                || t.eq_ignore_ascii_case("fatal") =>
            {
                Severity::Critical
            }
            _ => {
                return Err(ParseSeverityError {
                    given: crate::encode::clip(s, 64).to_owned(),
                });
            }
        })
    }
}

/// Emits a CRITICAL event: an ERROR-level `tracing` event carrying the
/// [`CRITICAL_FIELD`] marker, which every strata layer reports as `CRITICAL`.
///
/// Takes the same arguments as [`tracing::error!`] (fields, then a message).
///
/// ```
/// # use strata_core::critical;
/// critical!(db.host = "10.0.0.7", "database unreachable");
/// critical!("config file missing");
/// ```
#[macro_export]
macro_rules! critical {
    (target: $target:expr, $($arg:tt)+) => {
        $crate::__private::tracing::event!(target: $target, $crate::__private::tracing::Level::ERROR, strata.critical = true, $($arg)+)
    };
    ($($arg:tt)+) => {
        $crate::__private::tracing::error!(strata.critical = true, $($arg)+)
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_accepts_aliases_and_rejects_with_the_value() {
        for (s, want) in [
            ("TRACE", Severity::Trace),
            ("Debug", Severity::Debug),
            (" info ", Severity::Info),
            ("WARNING", Severity::Warn),
            ("error", Severity::Error),
            ("fatal", Severity::Critical),
        ] {
            assert_eq!(s.parse::<Severity>().unwrap(), want, "{s}");
        }
        let err = "loud".parse::<Severity>().unwrap_err();
        assert_eq!(err.given, "loud");
        assert!(err.to_string().contains("\"loud\""));
        let long = "é".repeat(100);
        assert!(long.parse::<Severity>().unwrap_err().given.len() <= 64);
    }

    #[test]
    fn otel_numbers_are_increasing_and_in_spec_ranges() {
        let nums: Vec<u8> = Severity::ALL.iter().map(|s| s.otel_number()).collect();
        assert_eq!(nums, [1, 5, 9, 13, 17, 21]);
        for s in Severity::ALL {
            assert_eq!(Severity::from(s.level()).max(s), s);
        }
    }
}
