//! Diagnosing a silent failure — something is wrong and no error line says so: a module's logs
//! were turned off, an error was swallowed, a background task failed with no one waiting for
//! it, retries hide a failing dependency. What still speaks: error capture and metrics (the log
//! filter never decides what they see), the panic hook, the retry counter.
//!
//! Run with `cargo run -p example-guide --bin diagnose_silent_failure`.

use std::collections::HashMap;
use std::fmt;

use strata::{Classify, ErrorClass, log_error};

#[derive(Debug)]
struct Refused(&'static str);
impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} refused the connection", self.0)
    }
}
impl std::error::Error for Refused {}
impl Classify for Refused {
    fn class(&self) -> ErrorClass {
        ErrorClass::External
    }
}

mod billing {
    /// A noisy module someone silenced in the log filter; its failures are still errors.
    pub(crate) fn invoice(order: u64) {
        let e = super::Refused("tax service");
        strata::log_error!(e, order, "invoice not issued: {e}");
    }
}

fn send_receipt(order: u64) -> Result<(), Refused> {
    let _ = order;
    Err(Refused("smtp.internal"))
}

#[tokio::main]
async fn main() {
    example_guide::workdir("diagnose_silent_failure");
    let mut builder = strata::builder()
        .with_service("shop")
        .with_version("1.0.0")
        // Silenced: "billing is too chatty".
        .with_filter("info,diagnose_silent_failure::billing=off");
    if std::env::var_os("STRATA_ENV").is_none() {
        builder = builder.with_profile(strata::Profile::Staging);
    }
    let guard = builder.init();
    let metrics = guard.metrics().expect("metrics are on");

    // 1. Logs suppressed: no line, but captured and counted.
    for order in 1..=3 {
        billing::invoice(order);
    }
    // 2. An error swallowed: `let _ =` (or `.ok()`) and nothing, anywhere, says it failed …
    let _ = send_receipt(1);
    // … where the boundary should log it (a bare `send_receipt(1);` does not even compile
    // here: Result is #[must_use] and this workspace denies unused_must_use).
    if let Err(e) = send_receipt(2) {
        log_error!(e, order = 2_u64, "receipt not sent: {e}");
    }
    // 3. Fire-and-forget tasks fail: one's Err goes nowhere, the other's panic is CRITICAL.
    let lost = tokio::spawn(async { send_receipt(3) });
    let crashed = strata::request_id::spawn(async {
        let hooks: HashMap<u64, &str> = HashMap::new();
        hooks.get(&4).expect("webhook URL missing for order 4");
    });
    // (Awaited only to keep this program's output in order; nothing looks at the results.)
    let _ = (lost.await, crashed.await);
    // 4. Retries hide a failing dependency: every delivery succeeds, at the third attempt.
    let webhooks = metrics.worker("webhooks");
    for delivery in 1..=2_u64 {
        for attempt in 1..=3_u32 {
            if attempt == 3 {
                webhooks.processed();
                break;
            }
            webhooks.retried();
            tracing::warn!(delivery, attempt, "webhook delivery failed; retrying");
        }
    }

    guard.flush();
    let exposition = metrics.encode();
    std::fs::write("metrics.txt", &exposition).expect("writable");
    for (name, labels) in [
        ("captured_errors_total", ("class", "external")),
        ("log_events_total", ("level", "error")),
        ("jobs_retried_total", ("queue", "webhooks")),
        ("jobs_processed_total", ("queue", "webhooks")),
        (
            "strata_telemetry_dropped_total",
            ("source", "strata-capture"),
        ),
    ] {
        let v = example_guide::sample(&exposition, name, &[labels]);
        eprintln!("[guide] {name}{{{}=\"{}\"}} = {v:?}", labels.0, labels.1);
    }
    eprintln!("[guide] capture: {:?}", guard.capture_stats());
    eprintln!(
        "[guide] look at: no billing line on standard output, yet 3 \"invoice not issued\" \
         events in .strata/errors.db and in captured_errors_total; receipt 1 failed with no \
         trace at all, receipt 2 is an ERROR; order 3's Err vanished, order 4's panic is a \
         CRITICAL line; 4 retries for 2 successful deliveries — the dependency is failing"
    );
}
