//! Error tracking (Sentry, Rollbar, Bugsink): every ERROR and CRITICAL becomes an error event
//! with its chain, stack, the request's breadcrumbs (the lines before it), the user, tags
//! (service, environment, release, host), grouped by fingerprint with a count. With
//! `SENTRY_DSN` set they go to any Sentry-protocol server; without, to a local SQLite store.
//!
//! Run with `cargo run -p example-guide --bin error_tracking`.

use std::fmt;

use strata::request_id::RequestId;
use strata::{Classify, ErrorClass, log_error};
use tracing::info;

#[derive(Debug)]
enum PaymentError {
    Declined,
    Gateway(std::io::Error),
}

impl fmt::Display for PaymentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PaymentError::Declined => "card declined",
            PaymentError::Gateway(_) => "payment gateway timed out",
        })
    }
}

impl std::error::Error for PaymentError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PaymentError::Gateway(e) => Some(e),
            PaymentError::Declined => None,
        }
    }
}

impl Classify for PaymentError {
    fn class(&self) -> ErrorClass {
        match self {
            PaymentError::Declined => ErrorClass::Business, // a breadcrumb, not an issue
            PaymentError::Gateway(_) => ErrorClass::External,
        }
    }
}

/// One checkout request; requests 2, 4 and 5 hit the same gateway timeout.
fn checkout(n: u64) {
    let span = strata::request_id::request_span(&RequestId::generate());
    let _enter = span.enter();
    strata::request_id::record_user(500 + n);
    info!(items = n, "cart loaded");
    info!(amount_cents = 1999 * n, "charging the card");
    let outcome = match n {
        3 => Err(PaymentError::Declined),
        2 | 4 | 5 => Err(PaymentError::Gateway(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("no answer within 3s (attempt {n})"),
        ))),
        _ => Ok(()),
    };
    match outcome {
        // Python: logger.exception(…) + sentry_sdk.capture_exception(e) — one call here.
        Err(e) => log_error!(e, "checkout failed: {e}"),
        Ok(()) => info!("paid"),
    }
}

fn main() {
    example_guide::workdir("error_tracking");
    let mut builder = strata::builder().with_service("shop").with_version("3.1.0");
    if std::env::var_os("STRATA_ENV").is_none() {
        builder = builder.with_profile(strata::Profile::Staging);
    }
    let guard = builder.init();

    for n in 1..=5 {
        checkout(n);
    }
    strata::critical!(path = "/etc/shop/prices.toml", "price list missing");

    guard.flush();
    let cfg = guard.config();
    eprintln!("[guide] capture: {:?}", guard.capture_stats());
    if cfg.capture.dsn.is_some() {
        eprintln!("[guide] events sent to the Sentry-protocol server of SENTRY_DSN");
        return;
    }
    let version = cfg.version.clone().unwrap_or_default();
    let store =
        strata::capture::LocalStore::open(&cfg.capture.store, &version).expect("the local store");
    for g in store.groups().expect("the groups") {
        eprintln!(
            "[guide] group {} ×{} {:<8} new in {}: {}  {}",
            g.id, g.count, g.level, g.first_release, g.new_in_release, g.title
        );
        if let Ok(Some((_, events))) = store.group(&g.id) {
            let latest = &events[0];
            let crumbs: Vec<&str> = latest
                .breadcrumbs
                .iter()
                .map(|b| b.message.as_str())
                .collect();
            eprintln!(
                "[guide]     latest: request {:?} user {:?} tags {:?}",
                latest.request.request_id, latest.request.user_id, latest.tags
            );
            eprintln!("[guide]     breadcrumbs: {crumbs:?}");
        }
    }
    eprintln!(
        "[guide] look at: {} — the gateway timeout is one group of 3 (same type, message \
         and module; the cause's text differs), each with its request's breadcrumbs and user; the declined card is no \
         issue; the missing price list is CRITICAL",
        cfg.capture.store.display()
    );
}
