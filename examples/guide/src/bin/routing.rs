//! Tiered error routing: a business error is logged at WARN and never alerts; an external
//! error is logged at ERROR, retried, and alerts only when it keeps happening; a system error
//! is CRITICAL and alerts at once. Routes send each line where it belongs — here, errors to
//! their own file and alerts to a webhook (a local stand-in for Slack or PagerDuty).
//!
//! Run with `cargo run -p example-guide --bin routing`.

use std::fmt;

use strata::router::RouterConfig;
use strata::{Classify, ErrorClass, log_error};

#[derive(Debug)]
enum CheckoutError {
    CardDeclined,
    GatewayTimeout,
    DatabaseUnreachable,
}

impl fmt::Display for CheckoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CheckoutError::CardDeclined => "card declined",
            CheckoutError::GatewayTimeout => "payment gateway timed out",
            CheckoutError::DatabaseUnreachable => "database unreachable",
        })
    }
}

impl std::error::Error for CheckoutError {}

impl Classify for CheckoutError {
    fn class(&self) -> ErrorClass {
        match self {
            CheckoutError::CardDeclined => ErrorClass::Business,
            CheckoutError::GatewayTimeout => ErrorClass::External,
            CheckoutError::DatabaseUnreachable => ErrorClass::System,
        }
    }
}

fn main() {
    example_guide::workdir("routing");
    let (hook, received) = example_guide::webhook().expect("a local webhook");
    let routes = RouterConfig::from_toml(&format!(
        r#"
        # ERROR and CRITICAL lines to a file of their own.
        [[route]]
        sink = "file"
        dir = "logs"
        prefix = "errors"
        min_level = "error"

        # Alerts (from ERROR): business never, system at once, external after 3 in a minute;
        # repeats within 5 minutes folded into one digest. `sink = "slack"`, "pagerduty",
        # "discord" or "email" take the same policy keys.
        [[route]]
        sink = "webhook"
        url = "http://{hook}/alerts"
        escalate_after = 3
        escalate_window = "1m"
        throttle = "5m"
        "#
    ))
    .expect("valid routes");
    let mut builder = strata::builder()
        .with_service("checkout")
        .with_router(routes);
    if std::env::var_os("STRATA_ENV").is_none() {
        builder = builder.with_profile(strata::Profile::Staging);
    }
    let guard = builder.init();

    // The message is part of the alert's fingerprint: say which failure it is.
    for order in 1..=5_u64 {
        let e = CheckoutError::CardDeclined;
        log_error!(e, order, "checkout failed: {e}");
    }
    for attempt in 1..=4_u32 {
        let e = CheckoutError::GatewayTimeout;
        log_error!(e, attempt, "checkout failed: {e}");
    }
    let e = CheckoutError::DatabaseUnreachable;
    log_error!(e, "checkout failed: {e}");

    guard.flush(); // every route, alerts delivered included
    let alerts = received.lock().unwrap_or_else(|e| e.into_inner()).clone();
    eprintln!("[guide] alerts the webhook received: {}", alerts.len());
    for a in &alerts {
        eprintln!(
            "[guide]   {:<9} {:<9} class {:<9} occurrences {:<3} {}",
            a["kind"].as_str().unwrap_or(""),
            a["severity"].as_str().unwrap_or(""),
            a["class"].as_str().unwrap_or("-"),
            a["occurrences"],
            a["title"].as_str().unwrap_or("")
        );
    }
    eprintln!(
        "[guide] look at: 5 card declines (WARN) sent no alert; the gateway timeouts alerted \
         once, as \"repeated\", at the 3rd; the database alerted at once; logs/errors.log holds \
         the ERROR and CRITICAL lines only"
    );
}
