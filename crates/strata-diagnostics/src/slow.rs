//! Timeouts and slow-call warnings around any `.await`.

use std::future::IntoFuture;
use std::time::{Duration, Instant};

use strata_core::{Classify, ErrorClass};

/// What [`timeout`] returns when the future did not finish in time: an
/// [external](ErrorClass::External) error — a dependency was too slow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{operation} timed out after {} ms (limit {} ms)", elapsed.as_millis(), limit.as_millis())]
#[non_exhaustive]
pub struct TimedOut {
    /// What was waited for (`"operation"` when not named).
    pub operation: &'static str,
    /// The limit given.
    pub limit: Duration,
    /// How long it was waited for (the limit, give or take the timer's resolution).
    pub elapsed: Duration,
}

impl Classify for TimedOut {
    fn class(&self) -> ErrorClass {
        ErrorClass::External
    }
}

/// Awaits `future` for at most `limit`. When the limit passes first, the future is dropped
/// (cancelled), an ERROR is logged in the current span — `error.class = "external"`,
/// `operation`, `duration_ms`, `limit_ms` — and [`TimedOut`] returned.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use std::time::Duration;
/// let answer = strata_diagnostics::timeout(Duration::from_secs(5), async { 42 }).await;
/// assert_eq!(answer, Ok(42));
/// # }
/// ```
///
/// # Errors
///
/// [`TimedOut`] when `limit` passed first.
///
/// # Panics
///
/// Outside a tokio runtime with the time driver enabled.
pub async fn timeout<F: IntoFuture>(limit: Duration, future: F) -> Result<F::Output, TimedOut> {
    timeout_named("operation", limit, future).await
}

/// [`timeout`], naming what is waited for in the error and the log line
/// (`"payment gateway timed out after 5000 ms (limit 5000 ms)"`).
///
/// # Errors
///
/// [`TimedOut`] when `limit` passed first.
///
/// # Panics
///
/// Outside a tokio runtime with the time driver enabled.
pub async fn timeout_named<F: IntoFuture>(
    operation: &'static str,
    limit: Duration,
    future: F,
) -> Result<F::Output, TimedOut> {
    let start = Instant::now();
    match tokio::time::timeout(limit, future).await {
        Ok(out) => Ok(out),
        Err(_) => {
            let err = TimedOut {
                operation,
                limit,
                elapsed: start.elapsed(),
            };
            strata_core::log_error!(
                err,
                event = "timeout",
                operation,
                duration_ms = millis(err.elapsed),
                limit_ms = millis(limit),
                "{err}"
            );
            Err(err)
        }
    }
}

/// Awaits `future`; when it took `threshold` or longer, logs a WARN in the current span —
/// the lesson's `Slow operation: 832ms`, with `operation`, `duration_ms` and `threshold_ms`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use std::time::Duration;
/// let rows = strata_diagnostics::warn_if_slow(Duration::from_millis(500), async { vec![1, 2] }).await;
/// assert_eq!(rows.len(), 2);
/// # }
/// ```
pub async fn warn_if_slow<F: IntoFuture>(threshold: Duration, future: F) -> F::Output {
    warn_if_slow_named("operation", threshold, future).await
}

/// [`warn_if_slow`], naming the operation: `warn_if_slow_named("query", …)` logs
/// `Slow query: 832ms`.
pub async fn warn_if_slow_named<F: IntoFuture>(
    operation: &'static str,
    threshold: Duration,
    future: F,
) -> F::Output {
    let start = Instant::now();
    let out = future.await;
    let elapsed = start.elapsed();
    if elapsed >= threshold {
        let ms = millis(elapsed);
        tracing::warn!(
            event = "slow_operation",
            operation,
            duration_ms = ms,
            threshold_ms = millis(threshold),
            "Slow {operation}: {ms}ms"
        );
    }
    out
}

/// Whole milliseconds, saturating.
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
