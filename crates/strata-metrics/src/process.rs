//! The process collector: CPU time, resident memory, open file descriptors, threads and start
//! time, read from `/proc` at each scrape, under the names Prometheus client libraries use.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Unit;

/// What `/proc` says about this process now.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub(crate) struct Sample {
    pub(crate) cpu_seconds: f64,
    pub(crate) resident_bytes: i64,
    pub(crate) open_fds: i64,
    pub(crate) threads: i64,
    pub(crate) start_time_seconds: f64,
}

/// Reads a [`Sample`]; `None` where `/proc` is missing or unreadable (not Linux).
pub(crate) fn sample() -> Option<Sample> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may hold spaces and parentheses: fields start after the last ')'.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Field n of stat(5) is fields[n - 3] here.
    let field = |n: usize| -> Option<f64> { fields.get(n - 3)?.parse().ok() };
    // SAFETY: sysconf only reads configuration values.
    let (ticks, page) = unsafe {
        (
            libc::sysconf(libc::_SC_CLK_TCK) as f64,
            libc::sysconf(libc::_SC_PAGESIZE) as f64,
        )
    };
    // The boot time does not change: read once.
    static BOOT: std::sync::OnceLock<Option<f64>> = std::sync::OnceLock::new();
    let boot = (*BOOT.get_or_init(|| {
        std::fs::read_to_string("/proc/stat")
            .ok()?
            .lines()
            .find_map(|l| l.strip_prefix("btime ")?.trim().parse::<f64>().ok())
    }))?;
    Some(Sample {
        cpu_seconds: (field(14)? + field(15)?) / ticks,
        resident_bytes: (field(24)? * page) as i64,
        open_fds: std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as i64),
        threads: field(20)? as i64,
        start_time_seconds: boot + field(22)? / ticks,
    })
}

#[derive(Debug)]
pub(crate) struct ProcessCollector;

impl ProcessCollector {
    pub(crate) fn new() -> Self {
        ProcessCollector
    }
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let Some(s) = sample() else { return Ok(()) };
        let cpu = ConstCounter::new(s.cpu_seconds);
        cpu.encode(encoder.encode_descriptor(
            "process_cpu",
            "User and system CPU time spent",
            Some(&Unit::Seconds),
            cpu.metric_type(),
        )?)?;
        let gauges: [(&str, &str, Option<&Unit>, ConstGauge<f64>); 4] = [
            (
                "process_resident_memory",
                "Resident memory size",
                Some(&Unit::Bytes),
                ConstGauge::new(s.resident_bytes as f64),
            ),
            (
                "process_open_fds",
                "Open file descriptors",
                None,
                ConstGauge::new(s.open_fds as f64),
            ),
            (
                "process_threads",
                "OS threads",
                None,
                ConstGauge::new(s.threads as f64),
            ),
            (
                "process_start_time",
                "Start time of the process since the Unix epoch",
                Some(&Unit::Seconds),
                ConstGauge::new(s.start_time_seconds),
            ),
        ];
        for (name, help, unit, gauge) in gauges {
            gauge.encode(encoder.encode_descriptor(name, help, unit, gauge.metric_type())?)?;
        }
        Ok(())
    }
}
