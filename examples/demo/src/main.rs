//! The strata demo: a simulated payment service handling a few requests, logging through the
//! facade at every level — including a business error, an external error with a `source()`
//! chain and a CRITICAL — as JSON lines on stdout.
//!
//! Run with `cargo run -p example-demo` (add `| strata pretty` once the CLI exists, or
//! `RUST_LOG=info` to hide the TRACE/DEBUG lines).

use std::fmt;
use std::time::{Duration, Instant};

use strata::{Classify, ErrorClass, critical, log_error};
use tracing::{debug, debug_span, info, info_span, trace, warn};

/// The payment service's domain errors, each declaring its class.
#[derive(Debug)]
enum PaymentError {
    /// The card was declined: an expected outcome, not our fault.
    Declined { reason: &'static str },
    /// The payment gateway did not answer.
    Gateway(GatewayError),
    /// The database is unreachable: the service cannot work.
    DatabaseUnreachable(std::io::Error),
}

impl fmt::Display for PaymentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PaymentError::Declined { reason } => write!(f, "card declined: {reason}"),
            PaymentError::Gateway(_) => f.write_str("payment gateway request failed"),
            PaymentError::DatabaseUnreachable(_) => f.write_str("database unreachable"),
        }
    }
}

impl std::error::Error for PaymentError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PaymentError::Declined { .. } => None,
            PaymentError::Gateway(e) => Some(e),
            PaymentError::DatabaseUnreachable(e) => Some(e),
        }
    }
}

impl Classify for PaymentError {
    fn class(&self) -> ErrorClass {
        match self {
            PaymentError::Declined { .. } => ErrorClass::Business,
            PaymentError::Gateway(_) => ErrorClass::External,
            PaymentError::DatabaseUnreachable(_) => ErrorClass::System,
        }
    }
}

/// A gateway error wrapping the I/O error below it.
#[derive(Debug)]
struct GatewayError {
    attempt: u32,
    source: std::io::Error,
}

impl fmt::Display for GatewayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "POST https://gateway.example/charges failed on attempt {}",
            self.attempt
        )
    }
}

impl std::error::Error for GatewayError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// One simulated request.
struct Request {
    id: &'static str,
    user_id: u64,
    method: &'static str,
    route: &'static str,
    amount_cents: u64,
    outcome: Outcome,
}

#[derive(Clone, Copy)]
enum Outcome {
    Ok,
    Slow,
    Declined,
    GatewayTimeout,
    DatabaseDown,
}

fn handle(req: &Request) -> u16 {
    let started = Instant::now();
    let span = info_span!(
        "request",
        request_id = req.id,
        method = req.method,
        route = req.route,
        user_id = tracing::field::Empty,
        status_code = tracing::field::Empty,
    );
    let _enter = span.enter();
    trace!(headers = 7, "request received");
    span.record("user_id", req.user_id);

    let db = debug_span!(
        "db.query",
        db.system = "postgresql",
        db.operation = "SELECT"
    );
    let account_loaded = db.in_scope(|| match req.outcome {
        Outcome::DatabaseDown => {
            let err = PaymentError::DatabaseUnreachable(std::io::Error::new(
                std::io::ErrorKind::ConnectionRefused,
                "connect to 10.0.0.7:5432: connection refused",
            ));
            log_error!(err, "cannot load the account");
            false
        }
        _ => {
            debug!(table = "accounts", rows = 1, "loaded account");
            true
        }
    });
    drop(db);
    let status = if account_loaded { charge(req) } else { 503 };

    span.record("status_code", status);
    let duration_ms = started.elapsed().as_secs_f64() * 1000.0
        + if matches!(req.outcome, Outcome::Slow) {
            832.0
        } else {
            0.0
        };
    if duration_ms > 500.0 {
        warn!(duration_ms, threshold_ms = 500, "Slow query");
    }
    info!(
        event = "request_completed",
        status_code = status,
        duration_ms,
        "request completed"
    );
    status
}

fn charge(req: &Request) -> u16 {
    let span = info_span!("charge", amount_cents = req.amount_cents, currency = "EUR");
    let _enter = span.enter();
    match req.outcome {
        Outcome::Ok | Outcome::Slow => {
            info!(
                event = "charge_created",
                charge_id = "ch_3Nx9",
                "Payment successful"
            );
            200
        }
        Outcome::Declined => {
            let err = PaymentError::Declined {
                reason: "insufficient funds",
            };
            log_error!(err, "payment declined");
            402
        }
        Outcome::GatewayTimeout => {
            for attempt in 1..=2 {
                warn!(
                    attempt,
                    backoff_ms = 100 * attempt,
                    "Retry attempt {attempt}"
                );
            }
            let err = PaymentError::Gateway(GatewayError {
                attempt: 3,
                source: std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "read timed out after 5s",
                ),
            });
            log_error!(err, "charging the card failed");
            502
        }
        Outcome::DatabaseDown => 503,
    }
}

fn main() {
    let _guard = strata::builder()
        .with_service("payment_api")
        .with_version(env!("CARGO_PKG_VERSION"))
        .with_default_filter("trace")
        .init();

    info!(
        event = "service_started",
        port = 8080,
        "payment_api started"
    );
    let requests = [
        Request {
            id: "0193a5c2-7f3e-7a21-9d4b-1c2d3e4f5a6b",
            user_id: 314159,
            method: "POST",
            route: "/v1/charges",
            amount_cents: 4200,
            outcome: Outcome::Ok,
        },
        Request {
            id: "0193a5c2-8a11-7b42-8e5c-2d3e4f5a6b7c",
            user_id: 271828,
            method: "POST",
            route: "/v1/charges",
            amount_cents: 1999,
            outcome: Outcome::Slow,
        },
        Request {
            id: "0193a5c2-9b22-7c53-9f6d-3e4f5a6b7c8d",
            user_id: 161803,
            method: "POST",
            route: "/v1/charges",
            amount_cents: 99900,
            outcome: Outcome::Declined,
        },
        Request {
            id: "0193a5c2-ac33-7d64-a07e-4f5a6b7c8d9e",
            user_id: 141421,
            method: "POST",
            route: "/v1/charges",
            amount_cents: 500,
            outcome: Outcome::GatewayTimeout,
        },
        Request {
            id: "0193a5c2-bd44-7e75-b18f-5a6b7c8d9eaf",
            user_id: 173205,
            method: "GET",
            route: "/v1/accounts/{id}",
            amount_cents: 0,
            outcome: Outcome::DatabaseDown,
        },
    ];
    let mut failed = 0;
    for req in &requests {
        if handle(req) >= 500 {
            failed += 1;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    if failed == requests.len() {
        critical!("every request failed: the service is not usable");
    }
    info!(
        event = "service_stopped",
        requests = requests.len(),
        failed,
        "payment_api stopped"
    );
}
