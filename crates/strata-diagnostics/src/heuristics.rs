//! The lesson's "detecting problems automatically", in-process: memory that keeps growing, a
//! CPU busy with no progress, a queue that keeps rising, an event loop running late — each
//! logged once as a WARN with its evidence, under the name of the Prometheus rule that watches
//! the same thing (`docs/alerts/strata.rules.yml`).

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

/// One reading of the figures the heuristics watch, taken every
/// [`HeuristicsConfig::interval`].
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct Sample {
    /// Resident memory, in bytes (`process_resident_memory_bytes`).
    pub rss_bytes: u64,
    /// CPU time used by the process so far, in seconds (`process_cpu_seconds_total`).
    pub cpu_seconds: f64,
    /// Requests and jobs completed so far (`http_server_requests_total` + `jobs_processed`).
    pub completed: u64,
    /// Depth of each named queue (`queue_depth{queue}`).
    pub queues: BTreeMap<String, i64>,
    /// The event loop's latest lag, in seconds (`event_loop_lag`).
    pub lag_seconds: f64,
}

impl Sample {
    /// A sample of these figures.
    pub fn new(rss_bytes: u64, cpu_seconds: f64, completed: u64, lag_seconds: f64) -> Self {
        Sample {
            rss_bytes,
            cpu_seconds,
            completed,
            queues: BTreeMap::new(),
            lag_seconds,
        }
    }

    /// With the depth of queue `name`.
    #[must_use]
    pub fn with_queue(mut self, name: impl Into<String>, depth: i64) -> Self {
        self.queues.insert(name.into(), depth);
        self
    }

    /// Reads a sample from strata-metrics' OpenMetrics exposition
    /// ([`strata_metrics::Metrics::encode`]); figures it does not hold stay 0.
    pub fn from_exposition(text: &str) -> Self {
        let mut s = Sample::default();
        for line in text.lines() {
            if line.starts_with('#') {
                continue;
            }
            let Some((series, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let Ok(v) = value.parse::<f64>() else {
                continue;
            };
            let (name, labels) = series.split_once('{').unwrap_or((series, ""));
            match name {
                "process_resident_memory_bytes" => s.rss_bytes = v as u64,
                "process_cpu_seconds_total" => s.cpu_seconds = v,
                "http_server_requests_total" | "jobs_processed_total" => s.completed += v as u64,
                "event_loop_lag_max_seconds" => s.lag_seconds = v,
                "queue_depth" => {
                    if let Some(q) = label(labels, "queue") {
                        s.queues.insert(q.to_owned(), v as i64);
                    }
                }
                _ => {}
            }
        }
        s
    }
}

/// The value of label `key` in `a="x",b="y"}` (exposition label values escape `"` and `\`;
/// queue names with those are read up to the escape).
fn label<'a>(labels: &'a str, key: &str) -> Option<&'a str> {
    labels
        .split(',')
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix("=\""))
        .and_then(|v| v.split('"').next())
}

/// Thresholds of the heuristics; the defaults follow the shipped alert rules.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct HeuristicsConfig {
    /// Time between samples. Default: 15 s.
    pub interval: Duration,
    /// `MemoryGrowing`: the window memory must rise throughout. Default: 30 min.
    pub memory_window: Duration,
    /// `MemoryGrowing`: the least growth over the window. Default: 50 MB.
    pub memory_min_growth: u64,
    /// `SustainedHighCpu`: the window of busy CPU with no progress. Default: 5 min.
    pub cpu_window: Duration,
    /// `SustainedHighCpu`: the share of one CPU counted as busy. Default: 0.9.
    pub cpu_busy: f64,
    /// `QueueBacklog`: the window a queue must rise throughout. Default: 5 min.
    pub queue_window: Duration,
    /// `QueueBacklog`: the least growth over the window. Default: 100 items.
    pub queue_min_growth: i64,
    /// `EventLoopLag`: the lag counted as late. Default: 100 ms.
    pub lag_threshold: Duration,
    /// `EventLoopLag`: samples in a row above the threshold. Default: 4 (a minute).
    pub lag_samples: usize,
}

impl Default for HeuristicsConfig {
    fn default() -> Self {
        HeuristicsConfig {
            interval: Duration::from_secs(15),
            memory_window: Duration::from_secs(30 * 60),
            memory_min_growth: 50_000_000,
            cpu_window: Duration::from_secs(5 * 60),
            cpu_busy: 0.9,
            queue_window: Duration::from_secs(5 * 60),
            queue_min_growth: 100,
            lag_threshold: Duration::from_millis(100),
            lag_samples: 4,
        }
    }
}

/// Which heuristic fired: the names of the Prometheus rules watching the same figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Problem {
    /// Resident memory rose throughout the window, by more than the minimum: a leak.
    MemoryGrowing,
    /// The CPU busy throughout the window while nothing completed: a hot loop or a blocking
    /// call.
    SustainedHighCpu,
    /// A queue rose throughout the window: a bottleneck downstream.
    QueueBacklog,
    /// The event loop late for several samples in a row: something blocks the runtime.
    EventLoopLag,
}

impl Problem {
    /// The rule's name: `MemoryGrowing`, `SustainedHighCpu`, `QueueBacklog`, `EventLoopLag`.
    pub const fn name(self) -> &'static str {
        match self {
            Problem::MemoryGrowing => "MemoryGrowing",
            Problem::SustainedHighCpu => "SustainedHighCpu",
            Problem::QueueBacklog => "QueueBacklog",
            Problem::EventLoopLag => "EventLoopLag",
        }
    }
}

/// A heuristic that fired, with its evidence.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Finding {
    /// What it is.
    pub problem: Problem,
    /// The queue, for [`Problem::QueueBacklog`].
    pub subject: Option<String>,
    /// The evidence, one sentence with the figures.
    pub evidence: String,
}

/// Evaluates samples as they come; each problem is reported once when it appears, and again
/// only after it has cleared.
#[derive(Debug, Clone)]
pub struct Heuristics {
    config: HeuristicsConfig,
    samples: VecDeque<Sample>,
    /// Problems (with their subject) reported and not yet cleared.
    active: Vec<(Problem, Option<String>)>,
}

impl Heuristics {
    /// No samples yet.
    pub fn new(config: HeuristicsConfig) -> Self {
        Heuristics {
            config,
            samples: VecDeque::new(),
            active: Vec::new(),
        }
    }

    /// How many samples a window of `d` spans (at least 2).
    fn span(&self, d: Duration) -> usize {
        let per = self.config.interval.as_secs_f64().max(1e-3);
        ((d.as_secs_f64() / per).round() as usize + 1).max(2)
    }

    /// The last `n` samples, oldest first, if there are that many.
    fn last(&self, n: usize) -> Option<impl Iterator<Item = &Sample> + Clone> {
        (self.samples.len() >= n).then(|| self.samples.iter().skip(self.samples.len() - n))
    }

    /// Adds a sample and returns the problems that appeared with it (each logged as a WARN
    /// with target `strata_diagnostics`, `event = "problem_detected"`, `problem`, and the
    /// evidence as the message).
    pub fn observe(&mut self, sample: Sample) -> Vec<Finding> {
        self.samples.push_back(sample);
        let keep = [
            self.config.memory_window,
            self.config.cpu_window,
            self.config.queue_window,
        ]
        .into_iter()
        .map(|d| self.span(d))
        .chain([self.config.lag_samples])
        .max()
        .unwrap_or(2);
        while self.samples.len() > keep {
            self.samples.pop_front();
        }
        let current = self.evaluate();
        let mut new = Vec::new();
        for f in &current {
            let key = (f.problem, f.subject.clone());
            if !self.active.contains(&key) {
                tracing::warn!(
                    target: "strata_diagnostics",
                    event = "problem_detected",
                    problem = f.problem.name(),
                    subject = f.subject.as_deref(),
                    "{}: {}",
                    f.problem.name(),
                    f.evidence
                );
                new.push(f.clone());
            }
        }
        self.active = current
            .into_iter()
            .map(|f| (f.problem, f.subject))
            .collect();
        new
    }

    /// Every problem present in the samples now.
    fn evaluate(&self) -> Vec<Finding> {
        let c = &self.config;
        let mut out = Vec::new();
        let mib = |b: f64| b / (1024.0 * 1024.0);
        // MemoryGrowing: every step of the window up (or flat), the whole of it by the minimum.
        if let Some(w) = self.last(self.span(c.memory_window)) {
            let rss: Vec<u64> = w.map(|s| s.rss_bytes).collect();
            let (first, last) = (rss[0], rss[rss.len() - 1]);
            if rising(&rss) && last.saturating_sub(first) >= c.memory_min_growth {
                out.push(Finding {
                    problem: Problem::MemoryGrowing,
                    subject: None,
                    evidence: format!(
                        "resident memory rose from {:.1} MiB to {:.1} MiB over {}, never falling",
                        mib(first as f64),
                        mib(last as f64),
                        span_text(c.memory_window)
                    ),
                });
            }
        }
        // SustainedHighCpu: CPU busy over the window, nothing completed.
        if let Some(w) = self.last(self.span(c.cpu_window)) {
            let (first, last) = (w.clone().next(), w.last());
            if let (Some(a), Some(b)) = (first, last) {
                let wall = c.cpu_window.as_secs_f64();
                let busy = (b.cpu_seconds - a.cpu_seconds) / wall;
                if busy >= c.cpu_busy && b.completed == a.completed {
                    out.push(Finding {
                        problem: Problem::SustainedHighCpu,
                        subject: None,
                        evidence: format!(
                            "{:.0} % of a CPU for {} while no request or job completed: a hot loop or a blocking call",
                            busy * 100.0,
                            span_text(c.cpu_window)
                        ),
                    });
                }
            }
        }
        // QueueBacklog: a queue rising throughout the window.
        if let Some(w) = self.last(self.span(c.queue_window)) {
            let w: Vec<&Sample> = w.collect();
            for name in w[w.len() - 1].queues.keys() {
                let depths: Option<Vec<i64>> =
                    w.iter().map(|s| s.queues.get(name).copied()).collect();
                let Some(depths) = depths else { continue };
                let (first, last) = (depths[0], depths[depths.len() - 1]);
                if rising(&depths) && last - first >= c.queue_min_growth {
                    out.push(Finding {
                        problem: Problem::QueueBacklog,
                        subject: Some(name.clone()),
                        evidence: format!(
                            "queue {name:?} rose from {first} to {last} over {}, never draining",
                            span_text(c.queue_window)
                        ),
                    });
                }
            }
        }
        // EventLoopLag: late in each of the last samples.
        if let Some(w) = self.last(c.lag_samples.max(1)) {
            let lags: Vec<f64> = w.map(|s| s.lag_seconds).collect();
            let limit = c.lag_threshold.as_secs_f64();
            if lags.iter().all(|&l| l > limit) {
                let max = lags.iter().copied().fold(0.0, f64::max);
                out.push(Finding {
                    problem: Problem::EventLoopLag,
                    subject: None,
                    evidence: format!(
                        "the event loop was late by more than {} ms in {} samples in a row (up to {:.0} ms): something blocks the runtime",
                        c.lag_threshold.as_millis(),
                        lags.len(),
                        max * 1e3
                    ),
                });
            }
        }
        out
    }
}

impl Heuristics {
    /// Samples `metrics` every [`HeuristicsConfig::interval`] on a thread of its own (named
    /// `strata-heuristics`) and evaluates each sample, until the guard is dropped.
    ///
    /// # Errors
    ///
    /// When the thread cannot be spawned.
    pub fn spawn(self, metrics: strata_metrics::Metrics) -> std::io::Result<HeuristicsGuard> {
        let every = self.config.interval;
        let mut this = self;
        crate::periodic::Periodic::spawn("strata-heuristics", every, move || {
            this.observe(Sample::from_exposition(&metrics.encode()));
        })
        .map(|p| HeuristicsGuard { _thread: p })
    }
}

/// Stops the thread of [`Heuristics::spawn`] when dropped.
#[derive(Debug)]
#[must_use = "dropping the guard stops the heuristics"]
pub struct HeuristicsGuard {
    _thread: crate::periodic::Periodic,
}

/// A window for people: `30 s`, `200 ms`.
fn span_text(d: Duration) -> String {
    if d.subsec_millis() == 0 && d.as_secs() > 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{} ms", d.as_millis())
    }
}

/// Never falling between samples, and up in at least four steps of five: a steady rise, not
/// a one-off step or a sawtooth.
fn rising<T: PartialOrd>(v: &[T]) -> bool {
    let steps = v.len().saturating_sub(1);
    let up = v.windows(2).filter(|p| p[1] > p[0]).count();
    steps > 0 && v.windows(2).all(|p| p[1] >= p[0]) && up * 5 >= steps * 4
}
