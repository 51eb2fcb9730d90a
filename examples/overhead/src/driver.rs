//! The driver: every mode, interleaved over several rounds, each run a fresh server process
//! pinned to one CPU and a load-generator process pinned to the other; medians and the
//! overhead ratios printed as markdown.

use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::Mode;
use crate::load::LoadResult;
use crate::service::Report;

/// How the benchmark runs.
#[derive(Debug, Clone)]
pub struct DriverOptions {
    /// Rounds; each runs every mode once, in an order rotated by one per round.
    pub rounds: usize,
    /// Load before each measurement.
    pub warmup: Duration,
    /// Each measurement's length.
    pub duration: Duration,
    /// Concurrent keep-alive connections of the load generator.
    pub connections: usize,
    /// Requests per second in all; 0: as fast as each server answers (a closed loop).
    pub rate: u32,
    /// The modes to run.
    pub modes: Vec<Mode>,
    /// The CPU the server runs on (`taskset -c`).
    pub server_cpu: usize,
    /// The CPU the load generator runs on; the OTLP receiver's threads go there too.
    pub load_cpu: usize,
    /// Pin with `taskset` (when it is installed).
    pub pin: bool,
    /// Also write every run as JSON lines to this file.
    pub json: Option<PathBuf>,
}

impl Default for DriverOptions {
    fn default() -> Self {
        DriverOptions {
            rounds: 3,
            warmup: Duration::from_secs(2),
            duration: Duration::from_secs(10),
            connections: 32,
            rate: 10_000,
            modes: Mode::ALL.to_vec(),
            server_cpu: 0,
            load_cpu: 1,
            pin: true,
            json: None,
        }
    }
}

/// How one figure is read off a run.
type Measure = fn(&Run) -> f64;

/// One mode's run in one round.
#[derive(Debug, Clone)]
pub struct Run {
    /// The mode.
    pub mode: Mode,
    /// The round (0-based).
    pub round: usize,
    /// What the load generator measured.
    pub load: LoadResult,
    /// What the server said reached its outputs.
    pub report: Report,
}

impl Run {
    /// The service's CPU time per request (receiver excluded), in microseconds.
    pub fn cpu_us(&self) -> f64 {
        per_request(self.load.cpu.map(|c| c.service()), self.load.requests)
    }

    /// The whole process's CPU time per request (receiver included), in microseconds.
    pub fn cpu_total_us(&self) -> f64 {
        per_request(self.load.cpu.map(|c| c.process), self.load.requests)
    }

    /// How busy the service's threads kept their CPU over the measurement (1.0: all the time).
    pub fn busy(&self) -> f64 {
        match self.load.cpu {
            Some(c) if self.load.seconds > 0.0 => c.service() / self.load.seconds,
            _ => 0.0,
        }
    }
}

fn per_request(seconds: Option<f64>, requests: u64) -> f64 {
    match seconds {
        Some(s) if requests > 0 => s * 1e6 / requests as f64,
        _ => 0.0,
    }
}

/// The median (the mean of the middle two for an even count); 0 for none.
pub fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// `(x − bare) / (peers − bare)`: how much of the peer stack's overhead `x` costs.
pub fn overhead_ratio(x: f64, bare: f64, peers: f64) -> f64 {
    (x - bare) / (peers - bare)
}

fn taskset_available() -> bool {
    Command::new("taskset")
        .args(["-c", "0", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `exe args…`, under `taskset -c cpu` when pinning.
fn command(exe: &Path, cpu: Option<usize>, args: &[String]) -> Command {
    let mut cmd = match cpu {
        Some(cpu) => {
            let mut c = Command::new("taskset");
            c.arg("-c").arg(cpu.to_string()).arg(exe);
            c
        }
        None => Command::new(exe),
    };
    cmd.args(args);
    crate::clean_env(&mut cmd);
    cmd
}

/// Reads lines of a child's standard output on a thread of its own, so a hung child cannot
/// hang the driver.
fn line_reader(stdout: ChildStdout) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn stop(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// A started server: its process, its address, and the lines it prints.
struct Server {
    child: Child,
    addr: String,
    lines: mpsc::Receiver<String>,
}

/// Starts `exe server MODE` and waits for its address.
fn start_server(exe: &Path, mode: Mode, opts: &DriverOptions, pin: bool) -> io::Result<Server> {
    let mut args = vec!["server".to_owned(), mode.name().to_owned()];
    if pin {
        args.extend(["--receiver-cpu".to_owned(), opts.load_cpu.to_string()]);
    }
    let mut child = command(exe, pin.then_some(opts.server_cpu), &args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let lines = line_reader(child.stdout.take().expect("piped stdout"));
    match lines.recv_timeout(Duration::from_secs(30)) {
        Ok(addr) => Ok(Server { child, addr, lines }),
        Err(_) => {
            stop(&mut child);
            Err(io::Error::other(format!("the {mode} server did not start")))
        }
    }
}

/// One run: a fresh server, the load, then the server's report.
fn run_one(
    exe: &Path,
    mode: Mode,
    round: usize,
    opts: &DriverOptions,
    pin: bool,
) -> io::Result<Run> {
    let mut server = start_server(exe, mode, opts, pin)?;
    let args = vec![
        "load".to_owned(),
        "--addr".to_owned(),
        server.addr.clone(),
        "--pid".to_owned(),
        server.child.id().to_string(),
        "--connections".to_owned(),
        opts.connections.to_string(),
        "--rate".to_owned(),
        opts.rate.to_string(),
        "--warmup".to_owned(),
        opts.warmup.as_secs_f64().to_string(),
        "--duration".to_owned(),
        opts.duration.as_secs_f64().to_string(),
    ];
    let out = command(exe, pin.then_some(opts.load_cpu), &args)
        .stderr(Stdio::inherit())
        .output();
    let load = match out {
        Ok(o) if o.status.success() => {
            let text = String::from_utf8_lossy(&o.stdout);
            let line = text.lines().last().unwrap_or_default();
            serde_json::from_str(line)
                .map(|v| LoadResult::from_json(&v))
                .map_err(|e| io::Error::other(format!("load output {line:?}: {e}")))
        }
        Ok(o) => Err(io::Error::other(format!(
            "the load generator failed: {}",
            o.status
        ))),
        Err(e) => Err(e),
    };
    let load = match load {
        Ok(l) => l,
        Err(e) => {
            stop(&mut server.child);
            return Err(e);
        }
    };
    // Closing its standard input stops the server: it flushes and reports.
    drop(server.child.stdin.take());
    let report = match server.lines.recv_timeout(Duration::from_secs(60)) {
        Ok(line) => serde_json::from_str(&line)
            .map(|v| Report::from_json(&v))
            .unwrap_or_default(),
        Err(_) => Report::default(),
    };
    match server.child.wait_timeout_or_kill(Duration::from_secs(10)) {
        Ok(()) => {}
        Err(e) => eprintln!("overhead: {mode} server: {e}"),
    }
    Ok(Run {
        mode,
        round,
        load,
        report,
    })
}

/// Waiting for a child with a bound.
trait WaitTimeout {
    /// Waits at most `timeout` for the child to exit, then kills it.
    fn wait_timeout_or_kill(&mut self, timeout: Duration) -> io::Result<()>;
}

impl WaitTimeout for Child {
    fn wait_timeout_or_kill(&mut self, timeout: Duration) -> io::Result<()> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if self.try_wait()?.is_some() {
                return Ok(());
            }
            if std::time::Instant::now() >= deadline {
                stop(self);
                return Err(io::Error::other("did not exit in time; killed"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Runs every round and returns every run, printing progress on standard error.
///
/// # Errors
///
/// When a server or the load generator cannot be started or fails.
pub fn run_all(exe: &Path, opts: &DriverOptions) -> io::Result<Vec<Run>> {
    let pin = opts.pin && taskset_available();
    if opts.pin && !pin {
        eprintln!("overhead: taskset not found: server and load generator are NOT pinned");
    }
    let mut runs = Vec::new();
    for round in 0..opts.rounds {
        let n = opts.modes.len();
        for i in 0..n {
            let mode = opts.modes[(i + round) % n];
            let run = run_one(exe, mode, round, opts, pin)?;
            eprintln!(
                "round {}/{} {:<18} {:>8.0} req/s  p50 {:>6.0} µs  p99 {:>6.0} µs  cpu {:>6.2} µs/req (busy {:>3.0} %)  lines {} spans {} errors {}",
                round + 1,
                opts.rounds,
                mode.name(),
                run.load.rps(),
                run.load.p50_us,
                run.load.p99_us,
                run.cpu_us(),
                run.busy() * 100.0,
                run.report.json_lines,
                run.report.spans,
                run.load.errors,
            );
            runs.push(run);
        }
    }
    if let Some(path) = &opts.json {
        let mut f = io::BufWriter::new(std::fs::File::create(path)?);
        for r in &runs {
            let line = serde_json::json!({
                "mode": r.mode.name(),
                "round": r.round,
                "load": r.load.to_json(),
                "report": r.report.to_json(),
            });
            writeln!(f, "{line}")?;
        }
        f.flush()?;
    }
    Ok(runs)
}

fn med(runs: &[Run], mode: Mode, f: impl Fn(&Run) -> f64) -> f64 {
    let v: Vec<f64> = runs.iter().filter(|r| r.mode == mode).map(f).collect();
    median(&v)
}

/// Per-round overhead ratios of `mode` against the peers (same round's bare and peers).
fn round_ratios(runs: &[Run], mode: Mode, f: impl Fn(&Run) -> f64) -> Vec<f64> {
    let rounds = runs.iter().map(|r| r.round).max().map_or(0, |m| m + 1);
    (0..rounds)
        .filter_map(|round| {
            let get = |m: Mode| {
                runs.iter()
                    .find(|r| r.round == round && r.mode == m)
                    .map(&f)
            };
            Some(overhead_ratio(
                get(mode)?,
                get(Mode::Bare)?,
                get(Mode::Peers)?,
            ))
        })
        .collect()
}

/// The results as markdown: the table of medians, the overhead ratios, and every run.
pub fn render(runs: &[Run], opts: &DriverOptions) -> String {
    let mut s = String::new();
    let modes: Vec<Mode> = Mode::ALL
        .into_iter()
        .filter(|m| runs.iter().any(|r| r.mode == *m))
        .collect();
    let load = if opts.rate > 0 {
        format!(
            "{} requests/s over {} connections",
            opts.rate, opts.connections
        )
    } else {
        format!(
            "{} connections as fast as the server answers",
            opts.connections
        )
    };
    s.push_str(&format!(
        "Medians of {} rounds; each run: {load}, {} s warm-up, {} s measured.\n\n",
        opts.rounds,
        opts.warmup.as_secs_f64(),
        opts.duration.as_secs_f64()
    ));
    s.push_str("| mode | requests/s | p50 | p99 | CPU / request | CPU / request incl. receiver | service CPU busy | JSON lines / req | spans / req | OTLP log records / req |\n");
    s.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for &m in &modes {
        let per_req = |r: &Run, n: u64| {
            if r.report.served > 0 {
                n as f64 / r.report.served as f64
            } else {
                0.0
            }
        };
        s.push_str(&format!(
            "| {} | {:.0} | {:.0} µs | {:.0} µs | {:.2} µs | {:.2} µs | {:.0} % | {:.2} | {:.2} | {:.2} |\n",
            m.name(),
            med(runs, m, |r| r.load.rps()),
            med(runs, m, |r| r.load.p50_us),
            med(runs, m, |r| r.load.p99_us),
            med(runs, m, Run::cpu_us),
            med(runs, m, Run::cpu_total_us),
            med(runs, m, |r| r.busy() * 100.0),
            med(runs, m, |r| per_req(r, r.report.json_lines)),
            med(runs, m, |r| per_req(r, r.report.spans)),
            med(runs, m, |r| per_req(r, r.report.logs)),
        ));
    }
    let has = |m: Mode| modes.contains(&m);
    if has(Mode::Bare) && has(Mode::Peers) {
        s.push_str("\nOverhead over bare, as a share of the peer stack's overhead over bare (target for strata: ≤ 0.5). ");
        s.push_str("Median of the per-round ratios (each round's own bare and peers), and the ratio of the medians.\n\n");
        let mut metrics: Vec<(&str, Measure)> = vec![
            ("CPU / request", Run::cpu_us),
            ("p50 latency", |r| r.load.p50_us),
            ("p99 latency", |r| r.load.p99_us),
        ];
        // At a fixed rate every mode has the same throughput: no ratio to take.
        if opts.rate == 0 {
            metrics.push(("time per request (1 / throughput)", |r| {
                if r.load.rps() > 0.0 {
                    1e6 / r.load.rps()
                } else {
                    0.0
                }
            }));
        }
        let names: Vec<&str> = metrics.iter().map(|(n, _)| *n).collect();
        s.push_str(&format!(
            "| mode | {} |\n|---|{}\n",
            names.join(" | "),
            "---:|".repeat(names.len())
        ));
        for m in [Mode::Strata, Mode::StrataProduction] {
            if !has(m) {
                continue;
            }
            let cells: Vec<String> = metrics
                .iter()
                .map(|(_, f)| {
                    let per_round = median(&round_ratios(runs, m, f));
                    let of_medians = overhead_ratio(
                        med(runs, m, f),
                        med(runs, Mode::Bare, f),
                        med(runs, Mode::Peers, f),
                    );
                    format!("{per_round:.2} ({of_medians:.2})")
                })
                .collect();
            s.push_str(&format!("| {} | {} |\n", m.name(), cells.join(" | ")));
        }
        let bare = med(runs, Mode::Bare, Run::cpu_us);
        s.push_str("\nCPU per request over bare (medians):");
        for &m in &modes {
            if m != Mode::Bare {
                s.push_str(&format!(
                    " {} +{:.2} µs;",
                    m.name(),
                    med(runs, m, Run::cpu_us) - bare
                ));
            }
        }
        s.pop();
        s.push_str(".\n");
    }
    s.push_str("\nEvery run:\n\n| round | mode | requests/s | p50 | p99 | CPU / request | incl. receiver | busy | served | JSON lines | spans | log records | errors |\n");
    s.push_str("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for r in runs {
        s.push_str(&format!(
            "| {} | {} | {:.0} | {:.0} µs | {:.0} µs | {:.2} µs | {:.2} µs | {:.0} % | {} | {} | {} | {} | {} |\n",
            r.round + 1,
            r.mode.name(),
            r.load.rps(),
            r.load.p50_us,
            r.load.p99_us,
            r.cpu_us(),
            r.cpu_total_us(),
            r.busy() * 100.0,
            r.report.served,
            r.report.json_lines,
            r.report.spans,
            r.report.logs,
            r.load.errors,
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_ratios() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&[]), 0.0);
        assert_eq!(overhead_ratio(15.0, 10.0, 20.0), 0.5);
    }
}
