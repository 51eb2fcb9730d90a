//! Outages while the service serves steady traffic (100 requests a second, every 20th a
//! captured error): each output in turn goes down, slow, black, full or away. No request may
//! fail or hang because of it, memory stays bounded, what is lost is counted in
//! `strata_telemetry_dropped_total` and said in the logs or on stderr, and delivery resumes
//! once the fault clears.
//!
//! Latency is printed, not asserted (a test is no benchmark): `cargo bench -p example-faults
//! --bench outages` measures p99 with and without each fault.

use example_faults::access_lines_by_request;
use example_faults::outage::{Fault, Outcome, Settings, run};

/// Memory a fault may add: every strata queue is bounded far below this.
const MAX_GROWTH_KIB: u64 = 64 * 1024;

fn check(fault: Fault) -> Option<Outcome> {
    let Some(o) = run(
        env!("CARGO_BIN_EXE_faults-service").as_ref(),
        fault,
        Settings::default(),
    ) else {
        return None; // a backend is not installed here, and not required
    };
    print(&o);
    let failed = o.report.unexpected();
    assert!(
        failed.is_empty(),
        "{}: {} requests failed or hung: {:?}",
        fault.name(),
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    assert!(
        o.rss_max_kib <= o.rss_before_kib + MAX_GROWTH_KIB,
        "{}: memory grew from {} to {} KiB",
        fault.name(),
        o.rss_before_kib,
        o.rss_max_kib
    );
    if fault.loses() {
        assert!(o.lost > 0.0, "{}: losses counted", fault.name());
        let logged = o.lines.iter().any(|l| {
            l["event"]
                .as_str()
                .is_some_and(|e| e.starts_with("telemetry_"))
        });
        assert!(
            logged || o.stderr.contains("strata-"),
            "{}: the loss is reported\n{}",
            fault.name(),
            o.stderr
        );
    }
    Some(o)
}

fn print(o: &Outcome) {
    eprintln!(
        "{:<18} p50 {:>7.2?} -> {:>7.2?}  p99 {:>7.2?} -> {:>7.2?}  rss {} -> {} KiB  lost {}  resumed after {:.2?}",
        o.fault.name(),
        o.healthy.0,
        o.during.0,
        o.healthy.1,
        o.during.1,
        o.rss_before_kib,
        o.rss_max_kib,
        o.lost,
        o.resumed_after
    );
}

#[test]
fn otlp_collector_down() {
    check(Fault::OtlpDown);
}

#[test]
fn otlp_collector_slow() {
    check(Fault::OtlpSlow);
}

#[test]
fn otlp_collector_black_holed() {
    check(Fault::OtlpBlackHole);
}

#[test]
fn bugsink_down() {
    check(Fault::BugsinkDown);
}

#[test]
fn webhook_failing() {
    check(Fault::WebhookFailing);
}

#[test]
fn syslog_unreachable() {
    check(Fault::SyslogDown);
}

#[test]
fn disk_full() {
    check(Fault::DiskFull);
}

#[test]
fn log_directory_deleted() {
    let Some(o) = check(Fault::LogDirDeleted) else {
        return;
    };
    // Noticed before the next write, not a second later: nothing sent after the directory
    // went is missing from the new file.
    let in_file = access_lines_by_request(&o.file_lines);
    let missing: Vec<&str> = o
        .report
        .samples
        .iter()
        .filter(|s| s.sent_at > o.fault_began && s.status.is_some())
        .map(|s| s.request_id.as_str())
        .filter(|id| !in_file.contains_key(*id))
        .collect();
    assert!(missing.is_empty(), "lines lost unseen: {missing:?}");
}

#[test]
fn permission_denied() {
    check(Fault::PermissionDenied);
}
