//! One outage under steady traffic: a healthy phase, the fault, the fault cleared — and what
//! the service did meanwhile (latency, memory, what it counted as lost, when delivery resumed).

use std::path::Path;
use std::time::{Duration, Instant};

use strata_testkit::{Bugsink, OtlpReceiver};

use crate::{Load, Mode, Outputs, Proxy, Report, Service, SmallDisk, Syslog, Webhook, sample};

/// The faults, each against the output it breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// The OTLP collector is not listening.
    OtlpDown,
    /// The OTLP collector answers, 200 ms late for every chunk of bytes.
    OtlpSlow,
    /// The OTLP collector accepts connections and never answers.
    OtlpBlackHole,
    /// Bugsink (the Sentry-protocol server) is not listening.
    BugsinkDown,
    /// The alert webhook answers 500 to everything.
    WebhookFailing,
    /// syslog-ng (TCP) is not listening.
    SyslogDown,
    /// The log directory's disk is full.
    DiskFull,
    /// The log directory is deleted.
    LogDirDeleted,
    /// The log directory is made read-only (the service runs as `nobody`) and the current file
    /// is moved away: neither a new file nor the next rotated one can be created.
    PermissionDenied,
}

impl Fault {
    /// Every fault.
    pub const ALL: [Fault; 9] = [
        Fault::OtlpDown,
        Fault::OtlpSlow,
        Fault::OtlpBlackHole,
        Fault::BugsinkDown,
        Fault::WebhookFailing,
        Fault::SyslogDown,
        Fault::DiskFull,
        Fault::LogDirDeleted,
        Fault::PermissionDenied,
    ];

    /// A short name (`otlp-down`).
    pub fn name(self) -> &'static str {
        match self {
            Fault::OtlpDown => "otlp-down",
            Fault::OtlpSlow => "otlp-slow",
            Fault::OtlpBlackHole => "otlp-black-hole",
            Fault::BugsinkDown => "bugsink-down",
            Fault::WebhookFailing => "webhook-failing",
            Fault::SyslogDown => "syslog-down",
            Fault::DiskFull => "disk-full",
            Fault::LogDirDeleted => "log-dir-deleted",
            Fault::PermissionDenied => "permission-denied",
        }
    }

    /// The `source` label of `strata_telemetry_dropped_total` its losses are counted under.
    pub fn loss_source(self) -> &'static str {
        match self {
            Fault::OtlpDown | Fault::OtlpSlow | Fault::OtlpBlackHole => "strata-otlp/spans",
            Fault::BugsinkDown => "strata-capture",
            _ => "strata-router",
        }
    }

    /// Whether the fault must lose something (a slow collector, a deleted directory noticed at
    /// once, need not).
    pub fn loses(self) -> bool {
        !matches!(self, Fault::OtlpSlow | Fault::LogDirDeleted)
    }
}

/// How long each phase lasts and how much traffic there is.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Requests a second.
    pub rate: u32,
    /// Every n-th request is a captured error.
    pub fail_every: u64,
    /// Traffic before anything is measured (connections, caches, the first exports).
    pub warmup: Duration,
    /// Before the fault.
    pub healthy: Duration,
    /// With the fault.
    pub fault: Duration,
    /// How long delivery may take to resume after the fault clears.
    pub resume_within: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            rate: 100,
            fail_every: 20,
            warmup: Duration::from_secs(1),
            healthy: Duration::from_secs(2),
            fault: Duration::from_secs(4),
            resume_within: Duration::from_secs(30),
        }
    }
}

/// What a run saw.
#[derive(Debug)]
pub struct Outcome {
    /// The fault.
    pub fault: Fault,
    /// Every request.
    pub report: Report,
    /// Latency quantiles (p50, p99) before the fault.
    pub healthy: (Duration, Duration),
    /// Latency quantiles (p50, p99) during the fault.
    pub during: (Duration, Duration),
    /// Resident memory just before the fault, KiB.
    pub rss_before_kib: u64,
    /// The highest resident memory seen during the fault and until delivery resumed, KiB.
    pub rss_max_kib: u64,
    /// `strata_telemetry_dropped_total{source = fault.loss_source()}` once the fault cleared.
    pub lost: f64,
    /// From clearing the fault to the first delivery of something sent after it.
    pub resumed_after: Duration,
    /// The service's standard error (where failing outputs report themselves).
    pub stderr: String,
    /// The service's JSON lines (stdout).
    pub lines: Vec<serde_json::Value>,
    /// The routed file's lines at the end, for the faults of the log directory (each parsed:
    /// a torn line fails the run).
    pub file_lines: Vec<serde_json::Value>,
    /// When the fault began (the directory was gone, the disk full…).
    pub fault_began: Instant,
}

/// The output a fault breaks, with whatever stands between the service and it.
enum Target {
    Otlp(OtlpReceiver, Proxy),
    Bugsink(Bugsink, Proxy),
    Webhook(Webhook),
    Syslog(Syslog, Proxy),
    Disk(Option<SmallDisk>),
}

/// Runs `fault` against `bin` (`faults-service`); `None` when a backend it needs is not
/// installed here (and not required).
///
/// # Panics
///
/// When a step fails: the service does not start, a backend does not answer, delivery does not
/// resume in time.
pub fn run(bin: &Path, fault: Fault, settings: Settings) -> Option<Outcome> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let d = dir.path();
    let mut outputs = Outputs::default();
    let mut uid = None;
    let target = match fault {
        Fault::OtlpDown | Fault::OtlpSlow | Fault::OtlpBlackHole => {
            let receiver = OtlpReceiver::start().expect("an OTLP receiver");
            let proxy = Proxy::start(receiver.grpc_addr()).expect("a proxy");
            outputs.otlp = Some(format!("http://{}", proxy.addr()));
            Target::Otlp(receiver, proxy)
        }
        Fault::BugsinkDown => {
            let bugsink = Bugsink::start()?;
            let upstream = bugsink_addr(bugsink.dsn());
            let proxy = Proxy::start(upstream).expect("a proxy");
            outputs.dsn = Some(
                bugsink
                    .dsn()
                    .replace(&upstream.to_string(), &proxy.addr().to_string()),
            );
            Target::Bugsink(bugsink, proxy)
        }
        Fault::WebhookFailing => {
            let webhook = Webhook::start().expect("a webhook receiver");
            outputs.webhook = Some(webhook.url());
            Target::Webhook(webhook)
        }
        Fault::SyslogDown => {
            let syslog = Syslog::start()?;
            let proxy = Proxy::start(syslog.addr()).expect("a proxy");
            outputs.syslog = Some(proxy.addr());
            Target::Syslog(syslog, proxy)
        }
        Fault::DiskFull => {
            std::fs::create_dir(d.join("logs")).expect("mkdir logs");
            let disk = SmallDisk::mount(&d.join("logs"), 4 << 20)?;
            Target::Disk(Some(disk))
        }
        Fault::LogDirDeleted => Target::Disk(None),
        Fault::PermissionDenied => {
            // SAFETY: geteuid has no preconditions.
            if unsafe { libc::geteuid() } == 0 {
                // Root ignores permissions: the service runs as nobody, in a directory it may
                // write to.
                uid = Some(65534);
                set_mode(d, 0o777);
            }
            outputs.rotate_at = Some("32KB".to_owned());
            Target::Disk(None)
        }
    };
    outputs.write(d);
    let service = Service::start_as(bin, d, &[], uid).expect("the service starts");
    let load = Load::start(service.addr, settings.rate, settings.fail_every);

    std::thread::sleep(settings.warmup);
    let t_start = Instant::now();
    std::thread::sleep(settings.healthy);
    let rss_before_kib = service.rss_kib();
    let t_fault = Instant::now();
    match &target {
        Target::Otlp(_, proxy) => proxy.set(match fault {
            Fault::OtlpDown => Mode::Down,
            Fault::OtlpSlow => Mode::Slow(Duration::from_millis(200)),
            _ => Mode::BlackHole,
        }),
        Target::Bugsink(_, proxy) | Target::Syslog(_, proxy) => proxy.set(Mode::Down),
        Target::Webhook(w) => {
            w.set_failing(true);
            // Alerts are per error group (the load's own group alerted while healthy): a new
            // one, whose alert cannot be delivered.
            let _ = crate::http_get(service.addr, "/fail?kind=during-the-outage");
        }
        Target::Disk(Some(disk)) => disk.fill(),
        Target::Disk(None) if fault == Fault::LogDirDeleted => {
            std::fs::remove_dir_all(d.join("logs")).expect("remove logs/");
        }
        Target::Disk(None) => {
            // What logrotate does, into a directory that lost its write permission: the
            // current file goes, and a new one cannot be created.
            set_mode(&d.join("logs"), 0o555);
            std::fs::remove_file(d.join("logs/app.log")).expect("remove logs/app.log");
        }
    }
    let fault_began = Instant::now();
    let mut rss_max_kib = rss_before_kib;
    let fault_end = t_fault + settings.fault;
    while Instant::now() < fault_end {
        rss_max_kib = rss_max_kib.max(service.rss_kib());
        std::thread::sleep(Duration::from_millis(50));
    }
    let t_clear = Instant::now();
    let lost_now = |service: &Service| {
        sample(
            &service.metrics_text(),
            "strata_telemetry_dropped_total",
            &[("source", fault.loss_source())],
        )
        .unwrap_or(0.0)
    };
    // Black holes and down receivers are found out by timeouts: wait for the count.
    if fault.loses() {
        let deadline = Instant::now() + Duration::from_secs(30);
        while lost_now(&service) == 0.0 {
            assert!(
                Instant::now() < deadline,
                "{}: no loss counted within 30 s\n{}\n{}",
                fault.name(),
                service.stderr(),
                service.metrics_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let lost = lost_now(&service);
    match &target {
        Target::Otlp(_, proxy) | Target::Bugsink(_, proxy) | Target::Syslog(_, proxy) => {
            proxy.set(Mode::Pass);
        }
        Target::Webhook(w) => w.set_failing(false),
        Target::Disk(Some(disk)) => disk.clear(),
        Target::Disk(None) if fault == Fault::LogDirDeleted => {}
        Target::Disk(None) => set_mode(&d.join("logs"), 0o755),
    }
    let first_after = load.sent() + 1;
    let t_cleared = Instant::now();
    let after = |id: &str| {
        id.strip_prefix("load-")
            .and_then(|n| n.parse::<u64>().ok())
            .is_some_and(|n| n >= first_after)
    };
    if fault == Fault::WebhookFailing {
        // Alerts are per error group: a new one, after the webhook recovered.
        let _ = crate::http_get(service.addr, "/fail?kind=recovered");
    }
    let deadline = Instant::now() + settings.resume_within;
    loop {
        rss_max_kib = rss_max_kib.max(service.rss_kib());
        let resumed = match &target {
            Target::Otlp(receiver, _) => receiver
                .spans()
                .iter()
                .filter_map(|s| s.attributes.get("request_id"))
                .any(|id| after(id)),
            Target::Bugsink(bugsink, _) => bugsink
                .issues()
                .iter()
                .filter_map(|i| i["id"].as_str())
                .flat_map(|id| bugsink.events(id))
                .any(|e| e["tags"]["request_id"].as_str().is_some_and(after)),
            Target::Webhook(w) => w
                .received()
                .iter()
                .any(|v| v.to_string().contains("recovered")),
            Target::Syslog(syslog, _) => syslog.messages().iter().any(|m| {
                serde_json::from_str::<serde_json::Value>(m)
                    .ok()
                    .and_then(|v| v["request_id"].as_str().map(after))
                    .unwrap_or(false)
            }),
            Target::Disk(_) => std::fs::read_to_string(d.join("logs/app.log"))
                .unwrap_or_default()
                .lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .any(|v| v["request_id"].as_str().is_some_and(after)),
        };
        if resumed {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{}: delivery did not resume within {:?} of the fault clearing\n{}",
            fault.name(),
            settings.resume_within,
            service.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let resumed_after = t_cleared.elapsed();
    let report = load.stop();
    let stderr = service.stderr();
    let lines = service.stdout_lines();
    let status = service.terminate();
    assert!(
        status.success(),
        "{}: exit after SIGTERM: {status}",
        fault.name()
    );
    // Whatever the fault cost, no line in the file is torn (json_lines panics on one).
    let file_lines = match target {
        Target::Disk(_) => crate::json_lines(&d.join("logs/app.log")),
        _ => Vec::new(),
    };
    drop(target);
    Some(Outcome {
        fault,
        healthy: (
            report.percentile_between(0.5, t_start, t_fault),
            report.percentile_between(0.99, t_start, t_fault),
        ),
        during: (
            report.percentile_between(0.5, t_fault, t_clear),
            report.percentile_between(0.99, t_fault, t_clear),
        ),
        report,
        rss_before_kib,
        rss_max_kib,
        lost,
        resumed_after,
        stderr,
        lines,
        file_lines,
        fault_began,
    })
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {mode:o} {}: {e}", path.display()));
}

/// The host:port of a DSN (`http://key@127.0.0.1:PORT/1`).
fn bugsink_addr(dsn: &str) -> std::net::SocketAddr {
    dsn.split_once('@')
        .and_then(|(_, rest)| rest.split('/').next())
        .and_then(|hp| hp.parse().ok())
        .unwrap_or_else(|| panic!("no 127.0.0.1:PORT in the DSN"))
}
