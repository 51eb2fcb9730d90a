//! Error handling with classes and chains: a domain error says what kind of failure it is
//! (business, external, system), keeps the low-level error that caused it (`source()`, the
//! `raise … from e` of Rust), travels up with `?`, and is logged once, at the boundary, at the
//! level its class calls for.
//!
//! Run with `cargo run -p example-guide --bin errors`.

use std::error::Error;
use std::fmt;
use std::io;

use strata::{Classify, ErrorClass, log_error};

/// The payment domain's errors.
#[derive(Debug)]
enum PaymentError {
    /// The bank said no: the customer's problem, not ours.
    Declined { reason: &'static str },
    /// The gateway did not answer: a dependency failed.
    Gateway(io::Error),
    /// The ledger cannot be written: we are broken.
    Ledger(LedgerError),
}

/// A lower layer's error, with its own cause: the chain is three links deep.
#[derive(Debug)]
struct LedgerError(io::Error);

impl fmt::Display for PaymentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PaymentError::Declined { reason } => write!(f, "card declined: {reason}"),
            PaymentError::Gateway(_) => f.write_str("Temporary payment failure"),
            PaymentError::Ledger(_) => f.write_str("payment not recorded"),
        }
    }
}

impl Error for PaymentError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            PaymentError::Declined { .. } => None,
            PaymentError::Gateway(e) => Some(e),
            PaymentError::Ledger(e) => Some(e),
        }
    }
}

impl fmt::Display for LedgerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ledger write failed")
    }
}

impl Error for LedgerError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&self.0)
    }
}

impl Classify for PaymentError {
    fn class(&self) -> ErrorClass {
        match self {
            PaymentError::Declined { .. } => ErrorClass::Business, // WARN, never alerts
            PaymentError::Gateway(_) => ErrorClass::External, // ERROR, retried, alerts when repeated
            PaymentError::Ledger(_) => ErrorClass::System,    // CRITICAL, alerts at once
        }
    }
}

/// The low-level call: an I/O error of its own kind.
fn gateway_charge(amount_cents: u64) -> io::Result<()> {
    match amount_cents {
        1..=50_000 => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "POST https://gateway.example/v1/charges: no answer within 3s",
        )),
        _ => Ok(()),
    }
}

/// The domain call: wraps the low-level error (`raise PaymentError(...) from e`) and returns it.
fn charge_card(user_id: u64, amount_cents: u64) -> Result<(), PaymentError> {
    if user_id == 7 {
        return Err(PaymentError::Declined {
            reason: "insufficient funds",
        });
    }
    if user_id == 13 {
        let disk = io::Error::new(io::ErrorKind::StorageFull, "no space left on device");
        return Err(PaymentError::Ledger(LedgerError(disk)));
    }
    gateway_charge(amount_cents).map_err(PaymentError::Gateway)
}

/// The boundary (an HTTP handler, a job runner): the one place the error is logged.
fn handle_checkout(user_id: u64, amount_cents: u64) {
    if let Err(e) = charge_card(user_id, amount_cents) {
        log_error!(e, user_id, amount_cents, "charging the card failed");
    }
}

fn main() {
    example_guide::workdir("errors");
    let mut builder = strata::builder().with_service("payments");
    if std::env::var_os("STRATA_ENV").is_none() {
        builder = builder.with_profile(strata::Profile::Staging);
    }
    let _guard = builder.init();

    // What not to do: the cause, its type and the caller's context are gone.
    if charge_card(42, 1999).is_err() {
        tracing::error!("Something went wrong");
    }

    handle_checkout(7, 1999); // business → WARN
    handle_checkout(42, 1999); // external → ERROR, with the io::Error underneath
    handle_checkout(13, 1999); // system → CRITICAL, three links

    // An error that has no class (a library's): recorded as a field, its chain still kept.
    if let Err(e) = std::fs::read_to_string("/etc/shop/missing.toml") {
        tracing::error!(error = &e as &dyn Error, "Config file unreadable");
    }

    eprintln!(
        "[guide] look at: \"Something went wrong\" has no `error`; the others have \
         error.type, error.message and error.chain (each cause, innermost last) and error.class, \
         at WARN, ERROR and CRITICAL by class"
    );
}
