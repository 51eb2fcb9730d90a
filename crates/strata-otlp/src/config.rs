//! The standard `OTEL_*` environment variables, read once at start: code beats the environment,
//! which beats the defaults. Every bad value is an [`OtlpError::Invalid`] naming the variable.

use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry_sdk::trace::Sampler;

use crate::OtlpError;

/// A telemetry signal: each has its own `OTEL_EXPORTER_OTLP_<SIGNAL>_*` variables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Signal {
    Traces,
    Logs,
    Metrics,
}

impl Signal {
    fn upper(self) -> &'static str {
        match self {
            Signal::Traces => "TRACES",
            Signal::Logs => "LOGS",
            Signal::Metrics => "METRICS",
        }
    }

    /// The OTLP/HTTP path of this signal.
    pub(crate) fn path(self) -> &'static str {
        match self {
            Signal::Traces => "/v1/traces",
            Signal::Logs => "/v1/logs",
            Signal::Metrics => "/v1/metrics",
        }
    }
}

/// An environment variable, if set to something other than blanks.
pub(crate) fn env(key: &str) -> Option<String> {
    std::env::var(key).ok().filter(|v| !v.trim().is_empty())
}

/// `OTEL_EXPORTER_OTLP_<SIGNAL>_<what>`, then `OTEL_EXPORTER_OTLP_<what>`, with the name of the
/// variable that was set (for error messages).
pub(crate) fn signal_env(signal: Signal, what: &str) -> Option<(String, String)> {
    let specific = format!("OTEL_EXPORTER_OTLP_{}_{what}", signal.upper());
    if let Some(v) = env(&specific) {
        return Some((specific, v));
    }
    let generic = format!("OTEL_EXPORTER_OTLP_{what}");
    env(&generic).map(|v| (generic, v))
}

fn invalid(setting: &str, value: impl Into<String>, expected: &'static str) -> OtlpError {
    OtlpError::Invalid {
        setting: setting.to_owned(),
        value: value.into(),
        expected,
    }
}

/// Parses a boolean variable (`true`/`false`, any case); unset is `false`.
pub(crate) fn env_bool(key: &str) -> Result<bool, OtlpError> {
    match env(key) {
        None => Ok(false),
        Some(v) if v.trim().eq_ignore_ascii_case("true") => Ok(true),
        Some(v) if v.trim().eq_ignore_ascii_case("false") => Ok(false),
        Some(v) => Err(invalid(key, v, "true or false")),
    }
}

/// Parses a variable holding milliseconds.
pub(crate) fn env_millis(key: &str) -> Result<Option<Duration>, OtlpError> {
    env(key)
        .map(|v| {
            v.trim()
                .parse::<u64>()
                .map(Duration::from_millis)
                .map_err(|_| invalid(key, v, "a whole number of milliseconds"))
        })
        .transpose()
}

/// Parses a variable holding a positive count.
pub(crate) fn env_count(key: &str) -> Result<Option<usize>, OtlpError> {
    env(key)
        .map(|v| {
            v.trim()
                .parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| invalid(key, v, "a positive whole number"))
        })
        .transpose()
}

/// The timeout of one export: code, then `OTEL_EXPORTER_OTLP_[SIGNAL_]TIMEOUT`, then 10 s.
pub(crate) fn timeout(code: Option<Duration>, signal: Signal) -> Result<Duration, OtlpError> {
    if let Some(t) = code {
        return Ok(t);
    }
    match signal_env(signal, "TIMEOUT") {
        None => Ok(Duration::from_secs(10)),
        Some((key, v)) => v
            .trim()
            .parse::<u64>()
            .map(Duration::from_millis)
            .map_err(|_| invalid(&key, v, "a whole number of milliseconds")),
    }
}

/// Whether bodies are gzip-compressed: code, then `OTEL_EXPORTER_OTLP_[SIGNAL_]COMPRESSION`
/// (`gzip` or `none`), then none.
pub(crate) fn gzip(code: Option<bool>, signal: Signal) -> Result<bool, OtlpError> {
    if let Some(g) = code {
        return Ok(g);
    }
    match signal_env(signal, "COMPRESSION") {
        None => Ok(false),
        Some((_, v)) if v.trim().eq_ignore_ascii_case("gzip") => Ok(true),
        Some((_, v)) if v.trim().eq_ignore_ascii_case("none") => Ok(false),
        Some((key, v)) => Err(invalid(&key, v, "gzip or none")),
    }
}

/// The headers sent with every export: `OTEL_EXPORTER_OTLP_HEADERS`, overridden key by key by
/// `OTEL_EXPORTER_OTLP_<SIGNAL>_HEADERS`, overridden by code. Values are URL-decoded (the
/// variables' W3C Baggage-like format `key=value,key2=value2`); names and values that are not
/// valid in HTTP (a CR or LF smuggling another header, say) are errors, and error messages never
/// repeat a value: headers carry API keys.
pub(crate) fn headers(code: &[(String, String)], signal: Signal) -> Result<HeaderMap, OtlpError> {
    let mut out = HeaderMap::new();
    let specific = format!("OTEL_EXPORTER_OTLP_{}_HEADERS", signal.upper());
    for key in ["OTEL_EXPORTER_OTLP_HEADERS", specific.as_str()] {
        let Some(list) = env(key) else { continue };
        for pair in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((name, value)) = pair.split_once('=') else {
                // Not even part of the pair is repeated: it may be a credential.
                return Err(invalid(
                    key,
                    "<value hidden>",
                    "comma-separated name=value pairs",
                ));
            };
            let value = percent_encoding::percent_decode_str(value.trim())
                .decode_utf8()
                .map_err(|_| invalid(key, name.trim(), "a URL-encoded UTF-8 value"))?;
            insert(&mut out, key, name.trim(), &value)?;
        }
    }
    for (name, value) in code {
        insert(&mut out, "with_header", name, value)?;
    }
    Ok(out)
}

fn insert(map: &mut HeaderMap, setting: &str, name: &str, value: &str) -> Result<(), OtlpError> {
    let header = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| invalid(setting, name, "a valid HTTP header name"))?;
    let mut value = HeaderValue::from_str(value).map_err(|_| {
        invalid(
            setting,
            format!("{name}=<value hidden>"),
            "a header value without control characters (CR, LF, NUL)",
        )
    })?;
    value.set_sensitive(true);
    map.insert(header, value);
    Ok(())
}

/// The sampler: code, then `OTEL_TRACES_SAMPLER` with `OTEL_TRACES_SAMPLER_ARG`, then
/// `parentbased_always_on`.
pub(crate) fn sampler(code: Option<Sampler>) -> Result<Sampler, OtlpError> {
    if let Some(s) = code {
        return Ok(s);
    }
    let ratio = || -> Result<f64, OtlpError> {
        match env("OTEL_TRACES_SAMPLER_ARG") {
            None => Ok(1.0),
            Some(v) => v
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|r| (0.0..=1.0).contains(r))
                .ok_or_else(|| invalid("OTEL_TRACES_SAMPLER_ARG", v, "a ratio from 0.0 to 1.0")),
        }
    };
    let Some(name) = env("OTEL_TRACES_SAMPLER") else {
        return Ok(Sampler::ParentBased(Box::new(Sampler::AlwaysOn)));
    };
    Ok(match name.trim() {
        "always_on" => Sampler::AlwaysOn,
        "always_off" => Sampler::AlwaysOff,
        "traceidratio" => Sampler::TraceIdRatioBased(ratio()?),
        "parentbased_always_on" => Sampler::ParentBased(Box::new(Sampler::AlwaysOn)),
        "parentbased_always_off" => Sampler::ParentBased(Box::new(Sampler::AlwaysOff)),
        "parentbased_traceidratio" => {
            Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(ratio()?)))
        }
        _ => {
            return Err(invalid(
                "OTEL_TRACES_SAMPLER",
                name,
                "always_on, always_off, traceidratio, parentbased_always_on, \
                 parentbased_always_off or parentbased_traceidratio",
            ));
        }
    })
}

/// Whether a signal's exporter is on: `OTEL_<SIGNAL>_EXPORTER` is `otlp` (the default) or
/// `none`.
pub(crate) fn exporter_on(signal: Signal) -> Result<bool, OtlpError> {
    let key = format!("OTEL_{}_EXPORTER", signal.upper());
    match env(&key) {
        None => Ok(true),
        Some(v) if v.trim() == "otlp" => Ok(true),
        Some(v) if v.trim() == "none" => Ok(false),
        Some(v) => Err(invalid(&key, v, "otlp or none")),
    }
}

/// The URL a signal is sent to, and the setting it came from. A per-signal variable is used as
/// it is; otherwise the base (code, then `OTEL_EXPORTER_OTLP_ENDPOINT`) gets the signal's path
/// over HTTP (replacing another signal's path it may end with), and is used as it is over gRPC.
pub(crate) fn signal_endpoint(
    code: Option<&str>,
    signal: Signal,
    http: bool,
) -> Option<(String, String)> {
    let specific = format!("OTEL_EXPORTER_OTLP_{}_ENDPOINT", signal.upper());
    if code.is_none()
        && let Some(v) = env(&specific)
    {
        return Some((specific, v.trim().to_owned()));
    }
    let (setting, base) = match code {
        Some(c) => ("with_endpoint".to_owned(), c.to_owned()),
        None => (
            "OTEL_EXPORTER_OTLP_ENDPOINT".to_owned(),
            env("OTEL_EXPORTER_OTLP_ENDPOINT")?,
        ),
    };
    let base = base.trim();
    if !http {
        return Some((setting, base.to_owned()));
    }
    let mut base = base.trim_end_matches('/');
    for s in [Signal::Traces, Signal::Logs, Signal::Metrics] {
        base = base.strip_suffix(s.path()).unwrap_or(base);
    }
    Some((setting, format!("{base}{}", signal.path())))
}

/// `url` without a `user:password@` part, for messages.
pub(crate) fn without_userinfo(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) if scheme.is_empty() => rest[at + 1..].to_owned(),
        Some(at) => format!("{scheme}://{}", &rest[at + 1..]),
        None => url.to_owned(),
    }
}
