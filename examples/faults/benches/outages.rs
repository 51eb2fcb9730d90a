//! The service's latency with each output failing, against the same service healthy a moment
//! before: p50 and p99 of steady traffic (200 requests a second, every 20th a captured error)
//! in each phase, memory, what was counted as lost, and how soon delivery resumed.
//!
//! ```text
//! cargo bench -p example-faults --bench outages            # every fault, 10 s each
//! OUTAGE_SECONDS=30 cargo bench -p example-faults --bench outages -- disk-full otlp-down
//! ```
//!
//! Servers and faults run on this machine; the load comes from this process, the service is
//! `faults-service` in a process of its own. Prints a Markdown table.

use std::time::Duration;

use example_faults::outage::{Fault, Settings, run};

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    // `cargo test --all-targets` runs bench targets too, without `--bench`: the outage tests
    // (tests/outages.rs) cover every fault there; the measurement is for `cargo bench`.
    if !std::env::args().any(|a| a == "--bench") {
        println!(
            "outages: a benchmark; run it with `cargo bench -p example-faults --bench outages`"
        );
        return;
    }
    let seconds: u64 = std::env::var("OUTAGE_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let wanted: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let settings = Settings {
        rate: 200,
        warmup: Duration::from_secs(3),
        healthy: Duration::from_secs(seconds),
        fault: Duration::from_secs(seconds),
        ..Settings::default()
    };
    println!(
        "| fault | p50 healthy → during (ms) | p99 healthy → during (ms) | p99 ratio | RSS growth (KiB) | lost | resumed after |"
    );
    println!("|---|---|---|---:|---:|---:|---:|");
    for fault in Fault::ALL {
        if !wanted.is_empty() && !wanted.iter().any(|w| w == fault.name()) {
            continue;
        }
        let Some(o) = run(
            env!("CARGO_BIN_EXE_faults-service").as_ref(),
            fault,
            settings,
        ) else {
            println!("| {} | (backend not installed) | | | | | |", fault.name());
            continue;
        };
        println!(
            "| {} | {:.2} → {:.2} | {:.2} → {:.2} | {:.2} | {} | {} | {:.2} s |",
            fault.name(),
            ms(o.healthy.0),
            ms(o.during.0),
            ms(o.healthy.1),
            ms(o.during.1),
            ms(o.during.1) / ms(o.healthy.1),
            o.rss_max_kib.saturating_sub(o.rss_before_kib),
            o.lost,
            o.resumed_after.as_secs_f64(),
        );
    }
}
