//! The harness of strata's fault tests: a service with every layer on, steady traffic from
//! another process, and the faults — a proxy that makes a collector down, slow or a black
//! hole, a webhook that fails, syslog-ng, a disk that fills up.
//!
//! ```no_run
//! use std::time::Duration;
//! use example_faults::{Load, Service, wait_until};
//!
//! let dir = tempfile::tempdir()?;
//! std::fs::write(dir.path().join("strata.toml"), "env = \"staging\"\n")?;
//! let service = Service::start("target/debug/faults-service".as_ref(), dir.path(), &[])?;
//! let load = Load::start(service.addr, 100, 10);
//! wait_until("100 answers", Duration::from_secs(30), || load.answered() >= 100);
//! let report = load.stop();
//! assert_eq!(report.unexpected().len(), 0);
//! println!("p99 {:?}", report.percentile(0.99));
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! Everything listens on 127.0.0.1 and stops when dropped.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

/// INFO lines `faults-service crash` logs before it panics.
pub const CRASH_LINES: usize = 200;

/// Events `faults-service hostile` logs.
pub const HOSTILE_EVENTS: usize = 8;

/// Waits until `ready()` holds, checking every 20 ms.
///
/// # Panics
///
/// When `timeout` passes first, naming `what`.
pub fn wait_until(what: &str, timeout: Duration, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The JSON lines of a file; a line that does not parse is a panic naming it (a torn or forged
/// line is a failure, not something to skip).
///
/// # Panics
///
/// When the file cannot be read or a line is not JSON.
pub fn json_lines(path: &Path) -> Vec<Value> {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    text.lines()
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("{}: not a JSON line ({e}): {l:?}", path.display()))
        })
        .collect()
}

/// The value of one sample of a Prometheus exposition: `name` with exactly these labels.
pub fn sample(exposition: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    exposition.lines().find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (metric, rest) = series.split_once('{').unwrap_or((series, "}"));
        if metric != name {
            return None;
        }
        let body = rest.strip_suffix('}')?;
        let found: Vec<(&str, &str)> = body
            .split(',')
            .filter(|p| !p.is_empty())
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| (k, v.trim_matches('"')))
            .collect();
        let same = found.len() == labels.len() && labels.iter().all(|l| found.contains(l));
        same.then(|| value.parse().ok()).flatten()
    })
}

/// A running `faults-service serve`, in its own working directory (where its `strata.toml`,
/// `stdout.jsonl`, `stderr.txt` and log files are).
#[derive(Debug)]
pub struct Service {
    child: Child,
    /// The working directory.
    pub dir: PathBuf,
    /// The HTTP listener.
    pub addr: SocketAddr,
    /// The `/metrics` listener, when `metrics.listen` is set.
    pub metrics: Option<SocketAddr>,
}

impl Service {
    /// Starts `bin serve` in `dir` with the caller's strata environment scrubbed and `env`
    /// added; waits (at most 60 s) until it listens.
    ///
    /// # Errors
    ///
    /// When it cannot start, or exits before listening (its stderr is in the error).
    pub fn start(bin: &Path, dir: &Path, env: &[(&str, &str)]) -> io::Result<Service> {
        Self::start_as(bin, dir, env, None)
    }

    /// [`Service::start`] as another user (`uid`), so file permissions apply to it even when
    /// the tests run as root.
    ///
    /// # Errors
    ///
    /// As [`Service::start`].
    pub fn start_as(
        bin: &Path,
        dir: &Path,
        env: &[(&str, &str)],
        uid: Option<u32>,
    ) -> io::Result<Service> {
        let mut cmd = Command::new(bin);
        strata_testkit::scrub_env(&mut cmd);
        cmd.arg("serve")
            .current_dir(dir)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.join("stdout.jsonl"))?)
            .stderr(std::fs::File::create(dir.join("stderr.txt"))?);
        if let Some(uid) = uid {
            use std::os::unix::process::CommandExt;
            cmd.uid(uid).gid(uid);
        }
        let mut child = cmd.spawn()?;
        let ready = dir.join("ready.json");
        let deadline = Instant::now() + Duration::from_secs(60);
        let text = loop {
            if let Ok(text) = std::fs::read_to_string(&ready) {
                break text;
            }
            if let Some(status) = child.try_wait()? {
                let stderr = std::fs::read_to_string(dir.join("stderr.txt")).unwrap_or_default();
                return Err(io::Error::other(format!(
                    "faults-service exited with {status} before listening: {stderr}"
                )));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return Err(io::Error::other(
                    "faults-service did not listen within 60 s",
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let ready: Value = serde_json::from_str(&text).map_err(io::Error::other)?;
        let addr = |v: &Value| v.as_str().and_then(|s| s.parse().ok());
        Ok(Service {
            child,
            dir: dir.to_owned(),
            addr: addr(&ready["addr"]).ok_or_else(|| io::Error::other("no addr"))?,
            metrics: addr(&ready["metrics"]),
        })
    }

    /// The process ID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory now, in KiB (`VmRSS`).
    pub fn rss_kib(&self) -> u64 {
        proc_status_kib(self.pid(), "VmRSS:")
    }

    /// `GET /metrics` (empty when metrics are not served).
    pub fn metrics_text(&self) -> String {
        self.metrics
            .and_then(|addr| http_get(addr, "/metrics").ok())
            .unwrap_or_default()
    }

    /// The JSON lines the service wrote to standard output so far.
    pub fn stdout_lines(&self) -> Vec<Value> {
        json_lines(&self.dir.join("stdout.jsonl"))
    }

    /// What the service wrote to standard error so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.join("stderr.txt")).unwrap_or_default()
    }

    /// Sends SIGTERM and waits for the exit (at most 30 s, then kills it).
    ///
    /// # Panics
    ///
    /// When the service does not exit within 30 s of the signal.
    pub fn terminate(mut self) -> ExitStatus {
        // SAFETY: kill(2) with a child's PID and a valid signal number.
        unsafe { libc::kill(self.pid() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("waitpid") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("the service did not exit within 30 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A `/proc/<pid>/status` line in KiB (`VmRSS:`, `VmHWM:`); 0 when the process is gone.
pub fn proc_status_kib(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// A plain HTTP/1.1 GET with a 5 s timeout; the body.
///
/// # Errors
///
/// When the connection or the read fails.
pub fn http_get(addr: SocketAddr, path: &str) -> io::Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    s.read_to_string(&mut response)?;
    Ok(response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default())
}

/// One request of a [`Load`].
#[derive(Debug, Clone)]
pub struct Sample {
    /// `/work` or `/fail`.
    pub path: &'static str,
    /// The `x-request-id` sent (`load-N`).
    pub request_id: String,
    /// The status, `None` when no response came (connection refused or reset, timeout).
    pub status: Option<u16>,
    /// From sending to the whole response.
    pub latency: Duration,
    /// When it was sent.
    pub sent_at: Instant,
    /// Its number in the load (the N of `load-N`).
    pub n: u64,
}

impl Sample {
    /// Whether the service answered as `/work` and `/fail` always do (200 and 500).
    pub fn expected(&self) -> bool {
        self.status == Some(if self.path == "/fail" { 500 } else { 200 })
    }
}

/// Steady traffic from a thread of its own: `rate` requests a second on a fixed schedule
/// (open loop: a slow response does not slow the sending), every `fail_every`-th one to
/// `/fail` (0: never), each with its own `x-request-id`.
#[derive(Debug)]
pub struct Load {
    stop: Arc<AtomicBool>,
    answered: Arc<AtomicU64>,
    sent: Arc<AtomicU64>,
    thread: std::thread::JoinHandle<Vec<Sample>>,
}

impl Load {
    /// Starts sending to `addr`.
    ///
    /// # Panics
    ///
    /// When the thread or its runtime cannot start.
    pub fn start(addr: SocketAddr, rate: u32, fail_every: u64) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let answered = Arc::new(AtomicU64::new(0));
        let sent = Arc::new(AtomicU64::new(0));
        let (s, a, n) = (stop.clone(), answered.clone(), sent.clone());
        let thread = std::thread::Builder::new()
            .name("load".to_owned())
            .spawn(move || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a runtime")
                    .block_on(drive(addr, rate, fail_every, s, a, n))
            })
            .expect("the load thread");
        Load {
            stop,
            answered,
            sent,
            thread,
        }
    }

    /// Requests sent so far: the next one is `load-{sent + 1}`.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Responses received so far (any status).
    pub fn answered(&self) -> u64 {
        self.answered.load(Ordering::Relaxed)
    }

    /// Stops sending, waits for the requests in flight (each has a 10 s timeout) and returns
    /// every sample.
    ///
    /// # Panics
    ///
    /// When the load thread panicked.
    pub fn stop(self) -> Report {
        self.stop.store(true, Ordering::Relaxed);
        Report {
            samples: self.thread.join().expect("the load thread"),
        }
    }
}

async fn drive(
    addr: SocketAddr,
    rate: u32,
    fail_every: u64,
    stop: Arc<AtomicBool>,
    answered: Arc<AtomicU64>,
    sent: Arc<AtomicU64>,
) -> Vec<Sample> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(64)
        .build()
        .expect("a client");
    let samples = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = tokio::task::JoinSet::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1) / rate.max(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut n: u64 = 0;
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        n += 1;
        sent.store(n, Ordering::Relaxed);
        let path = if fail_every > 0 && n.is_multiple_of(fail_every) {
            "/fail"
        } else {
            "/work"
        };
        let request_id = format!("load-{n}");
        let url = format!("http://{addr}{path}");
        let request = client.get(url).header("x-request-id", &request_id);
        let (samples, answered) = (samples.clone(), answered.clone());
        tasks.spawn(async move {
            let sent_at = Instant::now();
            let status = match request.send().await {
                Ok(r) => {
                    let status = r.status().as_u16();
                    r.bytes().await.ok().map(|_| status)
                }
                Err(_) => None,
            };
            if status.is_some() {
                answered.fetch_add(1, Ordering::Relaxed);
            }
            samples.lock().unwrap().push(Sample {
                path,
                request_id,
                status,
                latency: sent_at.elapsed(),
                sent_at,
                n,
            });
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    std::mem::take(&mut *samples.lock().unwrap())
}

/// What a [`Load`] saw.
#[derive(Debug, Clone)]
pub struct Report {
    /// Every request, in the order they finished.
    pub samples: Vec<Sample>,
}

impl Report {
    /// Requests answered with something other than their route's usual status, or not at all.
    pub fn unexpected(&self) -> Vec<&Sample> {
        self.samples.iter().filter(|s| !s.expected()).collect()
    }

    /// The request IDs answered on `path`.
    pub fn answered_ids(&self, path: &str) -> Vec<&str> {
        self.samples
            .iter()
            .filter(|s| s.path == path && s.status.is_some())
            .map(|s| s.request_id.as_str())
            .collect()
    }

    /// The `q` quantile (0.5, 0.99) of the latencies of the answered requests.
    pub fn percentile(&self, q: f64) -> Duration {
        self.percentile_of(q, |_| true)
    }

    /// The `q` quantile of the latencies of the answered requests sent in `from..to`.
    pub fn percentile_between(&self, q: f64, from: Instant, to: Instant) -> Duration {
        self.percentile_of(q, |s| s.sent_at >= from && s.sent_at < to)
    }

    fn percentile_of(&self, q: f64, keep: impl Fn(&Sample) -> bool) -> Duration {
        let mut l: Vec<Duration> = self
            .samples
            .iter()
            .filter(|s| s.status.is_some() && keep(s))
            .map(|s| s.latency)
            .collect();
        if l.is_empty() {
            return Duration::ZERO;
        }
        l.sort_unstable();
        let i = ((l.len() as f64 * q).ceil() as usize).clamp(1, l.len()) - 1;
        l[i]
    }
}

/// What a [`Proxy`] does with the bytes between a client and its upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Mode {
    /// Forwards everything.
    Pass,
    /// Forwards everything, each chunk this much later (a slow link or server).
    Slow(Duration),
    /// Accepts connections and reads, but never forwards or answers.
    BlackHole,
    /// Not listening: connections are refused, open ones are closed.
    Down,
}

/// A TCP proxy on 127.0.0.1 in front of a real server, whose [`Mode`] changes at run time: the
/// collector, Bugsink or syslog-ng goes down, slow or black, and comes back on the same port.
#[derive(Debug)]
pub struct Proxy {
    addr: SocketAddr,
    mode: watch::Sender<Mode>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Proxy {
    /// Starts forwarding a free port of 127.0.0.1 to `upstream`.
    ///
    /// # Errors
    ///
    /// When the port cannot be bound.
    pub fn start(upstream: SocketAddr) -> io::Result<Proxy> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("proxy")
            .enable_all()
            .build()?;
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
        let addr = listener.local_addr()?;
        let (mode, rx) = watch::channel(Mode::Pass);
        runtime.spawn(accept(listener, addr, upstream, rx));
        Ok(Proxy {
            addr,
            mode,
            runtime: Some(runtime),
        })
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Changes what the proxy does, for open connections too.
    pub fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

async fn accept(
    mut listener: tokio::net::TcpListener,
    addr: SocketAddr,
    upstream: SocketAddr,
    mut mode: watch::Receiver<Mode>,
) {
    loop {
        if *mode.borrow_and_update() == Mode::Down {
            drop(listener);
            while *mode.borrow_and_update() == Mode::Down {
                if mode.changed().await.is_err() {
                    return;
                }
            }
            listener = loop {
                // The port was just released; std and tokio bind with SO_REUSEADDR.
                match tokio::net::TcpListener::bind(addr).await {
                    Ok(l) => break l,
                    Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                }
            };
        }
        tokio::select! {
            conn = listener.accept() => {
                if let Ok((client, _)) = conn {
                    tokio::spawn(relay(client, upstream, mode.clone()));
                }
            }
            changed = mode.changed() => if changed.is_err() { return },
        }
    }
}

/// Relays one connection. A change to or from [`Mode::BlackHole`] or [`Mode::Down`] closes it
/// (its byte stream is no longer whole); between Pass and Slow it goes on.
async fn relay(
    mut client: tokio::net::TcpStream,
    upstream: SocketAddr,
    mut mode: watch::Receiver<Mode>,
) {
    let start = *mode.borrow_and_update();
    let whole = |m: Mode| matches!(m, Mode::Pass | Mode::Slow(_));
    if start == Mode::Down {
        return;
    }
    if start == Mode::BlackHole {
        let mut buf = vec![0; 16 * 1024];
        loop {
            tokio::select! {
                n = client.read(&mut buf) => if !matches!(n, Ok(1..)) { return },
                _ = mode.changed() => return,
            }
        }
    }
    let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await else {
        return;
    };
    let (mut cr, mut cw) = client.split();
    let (mut sr, mut sw) = server.split();
    let (mut up, mut down) = (vec![0; 16 * 1024], vec![0; 16 * 1024]);
    loop {
        let current = *mode.borrow();
        let delay = match current {
            Mode::Slow(d) => d,
            _ => Duration::ZERO,
        };
        tokio::select! {
            n = cr.read(&mut up) => {
                let Ok(n @ 1..) = n else { return };
                tokio::time::sleep(delay).await;
                if sw.write_all(&up[..n]).await.is_err() { return }
            }
            n = sr.read(&mut down) => {
                let Ok(n @ 1..) = n else { return };
                tokio::time::sleep(delay).await;
                if cw.write_all(&down[..n]).await.is_err() { return }
            }
            changed = mode.changed() => {
                if changed.is_err() || !whole(*mode.borrow_and_update()) { return }
            }
        }
    }
}

/// A webhook receiver (a local stand-in for an alerting endpoint) that can be made to fail:
/// answers 500 while failing, else 200 and keeps the JSON bodies.
#[derive(Debug)]
pub struct Webhook {
    addr: SocketAddr,
    failing: Arc<AtomicBool>,
    received: Arc<Mutex<Vec<Value>>>,
    refused: Arc<AtomicU64>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Webhook {
    /// Starts on a free port of 127.0.0.1.
    ///
    /// # Errors
    ///
    /// When the port cannot be bound.
    pub fn start() -> io::Result<Webhook> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("webhook")
            .enable_all()
            .build()?;
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
        let addr = listener.local_addr()?;
        let failing = Arc::new(AtomicBool::new(false));
        let received = Arc::new(Mutex::new(Vec::new()));
        let refused = Arc::new(AtomicU64::new(0));
        let (f, r, x) = (failing.clone(), received.clone(), refused.clone());
        let app = axum::Router::new().fallback(move |body: axum::body::Bytes| {
            let (f, r, x) = (f.clone(), r.clone(), x.clone());
            async move {
                if f.load(Ordering::Relaxed) {
                    x.fetch_add(1, Ordering::Relaxed);
                    return axum::http::StatusCode::INTERNAL_SERVER_ERROR;
                }
                let v = serde_json::from_slice(&body).unwrap_or(Value::Null);
                r.lock().unwrap().push(v);
                axum::http::StatusCode::OK
            }
        });
        runtime.spawn(async move { axum::serve(listener, app).await });
        Ok(Webhook {
            addr,
            failing,
            received,
            refused,
            runtime: Some(runtime),
        })
    }

    /// The URL to configure.
    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// Makes every request fail (500) or succeed again.
    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::Relaxed);
    }

    /// The bodies accepted so far.
    pub fn received(&self) -> Vec<Value> {
        self.received.lock().unwrap().clone()
    }

    /// Requests answered 500 so far.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// A real syslog-ng receiving RFC 5424 over TCP on 127.0.0.1, writing each message's fields
/// as a JSON line.
#[derive(Debug)]
pub struct Syslog {
    child: Child,
    port: u16,
    out: PathBuf,
    _dir: tempfile::TempDir,
}

impl Syslog {
    /// Starts syslog-ng; `None` when it is not installed (a failure instead when
    /// `STRATA_REQUIRE_BACKENDS` is set).
    ///
    /// # Panics
    ///
    /// When it is required and missing, or does not listen within 15 s.
    pub fn start() -> Option<Syslog> {
        let Some(bin) = which("syslog-ng") else {
            assert!(
                std::env::var_os("STRATA_REQUIRE_BACKENDS").is_none(),
                "syslog-ng is not installed (scripts/test.sh installs syslog-ng-core)"
            );
            eprintln!("skipped: syslog-ng not installed; run scripts/test.sh");
            return None;
        };
        let dir = tempfile::tempdir().expect("a temporary directory");
        let port = free_port();
        let out = dir.path().join("received.jsonl");
        let conf = dir.path().join("syslog-ng.conf");
        std::fs::write(
            &conf,
            format!(
                r#"@version: 3.38
source s_net {{ syslog(ip("127.0.0.1") port({port}) transport("tcp")); }};
destination d_file {{ file("{out}" template("$(format-json --scope rfc5424)\n")); }};
log {{ source(s_net); destination(d_file); flags(flow-control); }};
"#,
                out = out.display()
            ),
        )
        .expect("write syslog-ng.conf");
        let child = Command::new(bin)
            .arg("-F")
            .arg("-f")
            .arg(&conf)
            .arg("-R")
            .arg(dir.path().join("persist"))
            .arg("-p")
            .arg(dir.path().join("pid"))
            .arg("-c")
            .arg(dir.path().join("ctl"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("syslog-ng starts");
        let syslog = Syslog {
            child,
            port,
            out,
            _dir: dir,
        };
        wait_until("syslog-ng to listen", Duration::from_secs(15), || {
            TcpStream::connect(syslog.addr()).is_ok()
        });
        Some(syslog)
    }

    /// The TCP listener.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The messages received so far (their `MESSAGE` fields).
    pub fn messages(&self) -> Vec<String> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter_map(|v| v["MESSAGE"].as_str().map(str::to_owned))
            .collect()
    }
}

impl Drop for Syslog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A small tmpfs mounted for a test, to fill up: the disk-full fault. Needs root (`None`
/// otherwise, or a failure when `STRATA_REQUIRE_BACKENDS` is set); unmounted when dropped.
#[derive(Debug)]
pub struct SmallDisk {
    path: PathBuf,
}

impl SmallDisk {
    /// Mounts a tmpfs of `size` bytes at `path` (which must exist).
    ///
    /// # Panics
    ///
    /// When mounting fails although running as root.
    pub fn mount(path: &Path, size: u64) -> Option<SmallDisk> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            assert!(
                std::env::var_os("STRATA_REQUIRE_BACKENDS").is_none(),
                "the disk-full test mounts a tmpfs: run it as root"
            );
            eprintln!("skipped: mounting a tmpfs needs root");
            return None;
        }
        let status = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0777"),
                "tmpfs",
            ])
            .arg(path)
            .status()
            .expect("mount runs");
        assert!(status.success(), "mount -t tmpfs {}", path.display());
        Some(SmallDisk {
            path: path.to_owned(),
        })
    }

    /// Fills what is left with a file (`filler`): every later write fails with ENOSPC.
    pub fn fill(&self) {
        let mut f = std::fs::File::create(self.path.join("filler")).expect("create filler");
        let block = vec![0_u8; 64 * 1024];
        while f.write_all(&block).is_ok() {}
        let _ = f.write_all(&[0]);
    }

    /// Removes the filler: the disk has room again.
    pub fn clear(&self) {
        std::fs::remove_file(self.path.join("filler")).expect("remove filler");
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// A free TCP port on 127.0.0.1 (released, so a server can bind it next).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A program on `PATH` (or in /usr/sbin, /sbin).
pub fn which(name: &str) -> Option<PathBuf> {
    std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .chain(["/usr/sbin", "/sbin"])
        .map(|dir| Path::new(dir).join(name))
        .find(|p| p.is_file())
}

/// Counts, per request ID, the access lines (`target` `strata_request_id::server`) among
/// `lines`.
pub fn access_lines_by_request(lines: &[Value]) -> HashMap<String, usize> {
    let mut by_id = HashMap::new();
    for l in lines {
        if l["target"] == "strata_request_id::server"
            && let Some(id) = l["request_id"].as_str()
        {
            *by_id.entry(id.to_owned()).or_insert(0) += 1;
        }
    }
    by_id
}

/// Where a service's telemetry goes: written as its `strata.toml` by [`Outputs::write`].
/// Always: JSON lines on stdout, a routed JSON file in `logs/`, metrics on a free port.
#[derive(Debug, Clone, Default)]
pub struct Outputs {
    /// The OTLP/gRPC endpoint (`http://127.0.0.1:PORT`); `None`: the local file.
    pub otlp: Option<String>,
    /// A Sentry DSN; `None`: the local error store.
    pub dsn: Option<String>,
    /// A webhook URL for ERROR and up.
    pub webhook: Option<String>,
    /// A syslog-ng TCP address for WARN and up.
    pub syslog: Option<SocketAddr>,
    /// The size at which the routed file rotates (`max_size`), e.g. `"64KB"`.
    pub rotate_at: Option<String>,
}

impl Outputs {
    /// Writes `dir/strata.toml` (staging profile, service `faults`) for these outputs.
    ///
    /// # Panics
    ///
    /// When the file cannot be written.
    pub fn write(&self, dir: &Path) {
        let mut toml = String::from(
            "env = \"staging\"\nservice = \"faults\"\nshutdown_timeout = \"5s\"\n\n[metrics]\nlisten = \"127.0.0.1:0\"\n\n",
        );
        toml.push_str("[otlp]\n");
        match &self.otlp {
            Some(endpoint) => toml.push_str(&format!("endpoint = \"{endpoint}\"\n\n")),
            None => toml.push_str("file = \"telemetry.jsonl\"\n\n"),
        }
        toml.push_str("[capture]\n");
        match &self.dsn {
            Some(dsn) => toml.push_str(&format!("dsn = \"{dsn}\"\n\n")),
            None => toml.push_str("store = \"errors.db\"\n\n"),
        }
        toml.push_str("[[router.route]]\nsink = \"file\"\ndir = \"logs\"\nprefix = \"app\"\n");
        if let Some(size) = &self.rotate_at {
            toml.push_str(&format!("max_size = \"{size}\"\n"));
        }
        if let Some(url) = &self.webhook {
            toml.push_str(&format!(
                "\n[[router.route]]\nsink = \"webhook\"\nurl = \"{url}\"\nmin_level = \"error\"\nretry_attempts = 2\n"
            ));
        }
        if let Some(addr) = &self.syslog {
            toml.push_str(&format!(
                "\n[[router.route]]\nsink = \"syslog\"\naddress = \"tcp://{addr}\"\nmin_level = \"info\"\napp_name = \"faults\"\n"
            ));
        }
        std::fs::write(dir.join("strata.toml"), toml).expect("write strata.toml");
    }
}
pub mod outage;
