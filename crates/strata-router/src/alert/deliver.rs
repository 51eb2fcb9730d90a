//! Delivery: one attempt over HTTP or SMTP, classified as sent, retryable (with the server's
//! requested delay, if any) or failed for good; and the retry schedule.

use std::time::{Duration, SystemTime};

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};

/// How failed deliveries are retried: exponential backoff with jitter, honouring a server's
/// `Retry-After` (capped).
///
/// ```
/// use std::time::Duration;
/// use strata_router::Retry;
///
/// let retry = Retry::default().with_attempts(8).with_backoff(Duration::from_secs(1), Duration::from_secs(60));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    pub(crate) attempts: u32,
    pub(crate) base: Duration,
    pub(crate) max: Duration,
    pub(crate) max_retry_after: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            attempts: 5,
            base: Duration::from_millis(500),
            max: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(300),
        }
    }
}

impl Retry {
    /// Attempts per alert, the first included. Default: 5.
    #[must_use]
    pub fn with_attempts(mut self, attempts: u32) -> Self {
        self.attempts = attempts.max(1);
        self
    }

    /// The first retry waits about `base`, each next one twice as long, at most `max` (each
    /// delay is randomised between half and all of that). Default: 500 ms, 30 s.
    #[must_use]
    pub fn with_backoff(mut self, base: Duration, max: Duration) -> Self {
        self.base = base;
        self.max = max.max(base);
        self
    }

    /// The longest `Retry-After` honoured; a longer one (or a hostile huge one) is cut to
    /// this. Default: 5 minutes.
    #[must_use]
    pub fn with_max_retry_after(mut self, max: Duration) -> Self {
        self.max_retry_after = max;
        self
    }

    /// The delay before retry number `n` (1 = the first retry).
    pub(crate) fn backoff(&self, n: u32) -> Duration {
        let exp = self
            .base
            .saturating_mul(1u32 << n.saturating_sub(1).min(20))
            .min(self.max);
        let half = exp / 2;
        half + exp.saturating_sub(half).mul_f64(fastrand::f64())
    }
}

/// The outcome of one attempt.
#[derive(Debug)]
pub(crate) enum Attempt {
    Sent,
    /// Worth retrying; `after` is what the server asked for.
    Retry {
        reason: String,
        after: Option<Duration>,
    },
    /// Retrying would not help (bad URL or payload, revoked webhook).
    Fail(String),
}

/// Parses `Retry-After`: delay-seconds or an HTTP date.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(1e9)));
    }
    let when = httpdate_parse(v)?;
    Some(
        when.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the form RFC 9110 requires senders to use.
fn httpdate_parse(s: &str) -> Option<SystemTime> {
    let parts: Vec<&str> = s.split_whitespace().collect();
    let [_, day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    let day: u64 = day.parse().ok().filter(|d| (1..=31).contains(d))?;
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| m == month)? as u64
        + 1;
    let year: u64 = year.parse().ok().filter(|y| (1970..=9999).contains(y))?;
    let t: Vec<u64> = time.split(':').filter_map(|p| p.parse().ok()).collect();
    let &[h, mi, se] = t.as_slice() else {
        return None;
    };
    if h > 23 || mi > 59 || se > 60 {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm); every value is range-checked above,
    // so nothing here can overflow.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = (era * 146_097 + doe).checked_sub(719_468)?;
    let secs = days * 86_400 + h * 3600 + mi * 60 + se;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
}

/// Classifies an HTTP response. Discord also says `retry_after` (seconds) in a 429 body.
pub(crate) fn classify(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Attempt {
    if status.is_success() {
        return Attempt::Sent;
    }
    let snippet: String = String::from_utf8_lossy(&body[..body.len().min(200)])
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let reason = format!("HTTP {}: {}", status.as_u16(), snippet.trim());
    if status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
        || status.is_server_error()
    {
        let from_body = || {
            serde_json::from_slice::<serde_json::Value>(body)
                .ok()?
                .get("retry_after")?
                .as_f64()
                .filter(|s| s.is_finite() && *s >= 0.0)
                .map(|s| Duration::from_secs_f64(s.min(1e9)))
        };
        return Attempt::Retry {
            reason,
            after: retry_after(headers).or_else(from_body),
        };
    }
    Attempt::Fail(reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_is_capped() {
        let r = Retry::default().with_backoff(Duration::from_millis(100), Duration::from_secs(1));
        for _ in 0..100 {
            let d1 = r.backoff(1);
            assert!(d1 >= Duration::from_millis(50) && d1 <= Duration::from_millis(100));
            let d3 = r.backoff(3);
            assert!(d3 >= Duration::from_millis(200) && d3 <= Duration::from_millis(400));
            let d10 = r.backoff(10);
            assert!(d10 >= Duration::from_millis(500) && d10 <= Duration::from_secs(1));
        }
        assert!(
            (0..50)
                .map(|_| r.backoff(3))
                .collect::<std::collections::HashSet<_>>()
                .len()
                > 1
        );
    }

    #[test]
    fn retry_after_forms() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert("retry-after", "7".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert("retry-after", "0.5".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_millis(500)));
        h.insert("retry-after", "-3".parse().unwrap());
        assert_eq!(retry_after(&h), None);
        h.insert(
            "retry-after",
            "Sun, 06 Nov 1994 08:49:37 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h), Some(Duration::ZERO), "a date in the past");
        assert_eq!(
            httpdate_parse("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777))
        );
        h.insert("retry-after", "soon".parse().unwrap());
        assert_eq!(retry_after(&h), None);
        // Hostile dates: out of range, never a panic.
        for bad in [
            "Mon, 00 Mar 2026 00:00:00 GMT",
            "Mon, 01 Jan 300000000000 00:00:00 GMT",
            "Mon, 01 Jan 2026 99:00:00 GMT",
            "Mon, 01 Jan 1969 00:00:00 GMT",
            "Mon, 01 Jan 2026 00:00 GMT",
        ] {
            assert_eq!(httpdate_parse(bad), None, "{bad}");
        }
        assert!(httpdate_parse("Fri, 31 Dec 9999 23:59:59 GMT").is_some());
    }

    #[test]
    fn classifies_statuses() {
        let h = HeaderMap::new();
        assert!(matches!(classify(StatusCode::OK, &h, b"ok"), Attempt::Sent));
        assert!(matches!(
            classify(StatusCode::NO_CONTENT, &h, b""),
            Attempt::Sent
        ));
        assert!(matches!(
            classify(StatusCode::INTERNAL_SERVER_ERROR, &h, b""),
            Attempt::Retry { after: None, .. }
        ));
        let Attempt::Retry { after, .. } = classify(
            StatusCode::TOO_MANY_REQUESTS,
            &h,
            br#"{"message":"You are being rate limited.","retry_after":1.5,"global":false}"#,
        ) else {
            panic!("429 retries")
        };
        assert_eq!(after, Some(Duration::from_millis(1500)));
        let Attempt::Fail(reason) = classify(StatusCode::NOT_FOUND, &h, b"no_service\n\x1b[31m")
        else {
            panic!("404 fails")
        };
        assert!(reason.starts_with("HTTP 404: no_service"), "{reason}");
        assert!(
            !reason.contains(['\n', '\x1b']),
            "control characters neutralised: {reason:?}"
        );
    }
}
