//! The guard: keeps every output alive, flushes them all when dropped, with one deadline; and
//! [`shutdown`] for programs that leave through `std::process::exit`.

use std::fmt;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use crate::config::Config;

/// The outputs one `try_init` started.
pub(crate) struct Parts {
    timeout: Duration,
    #[cfg(feature = "json")]
    pub(crate) json: Option<strata_json::JsonHandle>,
    #[cfg(feature = "router")]
    pub(crate) router: Option<strata_router::RouterGuard>,
    #[cfg(feature = "capture")]
    pub(crate) capture: Option<strata_capture::CaptureGuard>,
    #[cfg(feature = "capture")]
    pub(crate) capture_stats: Option<strata_capture::CaptureLayer>,
    #[cfg(feature = "otlp")]
    otlp: Option<(
        Arc<strata_otlp::OtlpGuard>,
        strata_core::flush::Registration,
    )>,
    #[cfg(feature = "metrics")]
    pub(crate) metrics: Option<strata_metrics::Metrics>,
    #[cfg(feature = "metrics")]
    server: Option<MetricsThread>,
    #[cfg(feature = "metrics")]
    pub(crate) lag_probe: Option<strata_metrics::LagProbe>,
    #[cfg(feature = "diagnostics")]
    pub(crate) diagnostics: Option<DiagnosticsParts>,
}

/// What `[diagnostics]` runs: the registry, its stuck-work watch, the heuristics over the
/// metrics, and a thread of its own for the SIGUSR1 dump and the endpoint.
#[cfg(feature = "diagnostics")]
pub(crate) struct DiagnosticsParts {
    pub(crate) inflight: strata_diagnostics::Inflight,
    _watch: strata_diagnostics::WatchGuard,
    _heuristics: Option<strata_diagnostics::HeuristicsGuard>,
    thread: DiagnosticsThread,
}

#[cfg(feature = "diagnostics")]
impl DiagnosticsParts {
    /// Starts the watch (every second), the heuristics (when there are metrics), and the
    /// thread: SIGUSR1 dumps what is in flight; with `listen`, the endpoint.
    pub(crate) fn start(
        inflight: strata_diagnostics::Inflight,
        cfg: &crate::config::DiagnosticsConfig,
    ) -> std::io::Result<Self> {
        let watch = inflight.spawn_watch(Duration::from_secs(1))?;
        let mut endpoint = strata_diagnostics::Diagnostics::new(inflight.clone());
        if let Some(t) = &cfg.token {
            endpoint = endpoint.with_token(t.clone());
        }
        let thread = start_diagnostics_thread(inflight.clone(), endpoint, cfg.listen)?;
        Ok(DiagnosticsParts {
            inflight,
            _watch: watch,
            _heuristics: None,
            thread,
        })
    }

    /// Runs the heuristics over `metrics` with `thresholds`.
    #[cfg(feature = "metrics")]
    pub(crate) fn watch_metrics(
        &mut self,
        metrics: &strata_metrics::Metrics,
        thresholds: strata_diagnostics::HeuristicsConfig,
    ) -> std::io::Result<()> {
        self._heuristics =
            Some(strata_diagnostics::Heuristics::new(thresholds).spawn(metrics.clone())?);
        Ok(())
    }
}

/// The SIGUSR1 dump and the endpoint (with `listen`) on a thread of its own; its value is
/// the endpoint's bound address.
#[cfg(feature = "diagnostics")]
type DiagnosticsThread = RuntimeThread<Option<std::net::SocketAddr>>;

#[cfg(feature = "diagnostics")]
fn start_diagnostics_thread(
    inflight: strata_diagnostics::Inflight,
    endpoint: strata_diagnostics::Diagnostics,
    listen: Option<std::net::SocketAddr>,
) -> std::io::Result<DiagnosticsThread> {
    RuntimeThread::start("strata-diagnostics", move || async move {
        let dump = inflight.dump_on_sigusr1()?;
        let server = match listen {
            None => None,
            Some(addr) => Some(endpoint.serve(addr).await.map_err(std::io::Error::other)?),
        };
        Ok((server.as_ref().map(|s| s.addr()), (dump, server)))
    })
}

impl Parts {
    pub(crate) fn new(timeout: Duration) -> Self {
        Parts {
            timeout,
            #[cfg(feature = "json")]
            json: None,
            #[cfg(feature = "router")]
            router: None,
            #[cfg(feature = "capture")]
            capture: None,
            #[cfg(feature = "capture")]
            capture_stats: None,
            #[cfg(feature = "otlp")]
            otlp: None,
            #[cfg(feature = "metrics")]
            metrics: None,
            #[cfg(feature = "metrics")]
            server: None,
            #[cfg(feature = "metrics")]
            lag_probe: None,
            #[cfg(feature = "diagnostics")]
            diagnostics: None,
        }
    }

    /// Keeps the exporter, and has the panic hook flush it too.
    #[cfg(feature = "otlp")]
    pub(crate) fn set_otlp(&mut self, guard: Arc<strata_otlp::OtlpGuard>) {
        let g = Arc::clone(&guard);
        let registration = strata_core::flush::register("strata-otlp", move |deadline| {
            g.flush(deadline.saturating_duration_since(Instant::now()));
        });
        self.otlp = Some((guard, registration));
    }

    /// The losses of every strata output as `strata_telemetry_dropped_total{source}`, and the
    /// instruments over OTLP too when it exports.
    #[cfg(feature = "metrics")]
    pub(crate) fn wire_metrics(
        &mut self,
        #[allow(
            unused_variables,
            reason = "read by the optional outputs that lose data"
        )]
        m: &strata_metrics::Metrics,
    ) -> Result<(), crate::InitError> {
        #[cfg(feature = "otlp")]
        if let Some((g, _)) = &self.otlp {
            let counts = g.drop_counts();
            let logs = counts.clone();
            m.register_dropped("strata-otlp/spans", move || counts.spans());
            m.register_dropped("strata-otlp/logs", move || logs.logs());
            let _ = m.clone().with_meter_provider(g.meter_provider());
        }
        #[cfg(feature = "capture")]
        if let Some(layer) = self.capture_stats.clone() {
            m.register_dropped("strata-capture", move || layer.stats().lost());
        }
        #[cfg(feature = "router")]
        if let Some(router) = &self.router {
            m.register_dropped("strata-router", router.drop_counter());
        }
        Ok(())
    }

    /// Serves `GET /metrics` on `addr` from a thread (and runtime) of its own.
    #[cfg(feature = "metrics")]
    pub(crate) fn serve_metrics(
        &mut self,
        m: &strata_metrics::Metrics,
        addr: std::net::SocketAddr,
    ) -> std::io::Result<()> {
        self.server = Some(start_metrics_thread(m.clone(), addr)?);
        Ok(())
    }

    /// Flushes every output, all bounded by `deadline`; returns which did not finish in time.
    fn flush(&self, deadline: Instant) -> Late {
        let left = || deadline.saturating_duration_since(Instant::now());
        #[allow(unused_mut)]
        let mut late = Late::default();
        #[cfg(feature = "json")]
        if let Some(j) = &self.json {
            let _ = j.flush();
        }
        #[cfg(feature = "router")]
        if let Some(r) = &self.router {
            late.router = !r.flush_within(left());
        }
        #[cfg(feature = "capture")]
        if let Some(c) = &self.capture {
            late.capture = !c.flush(left());
        }
        #[cfg(feature = "otlp")]
        if let Some((o, _)) = &self.otlp {
            late.otlp = !o.flush(left());
        }
        let _ = left;
        late
    }

    /// Flushes, then stops every background worker (in the order data flows: logs and
    /// errors first, the exporters, then the metrics listener), within the shutdown timeout:
    /// an output that could not flush in time (its destination down) is abandoned, not waited
    /// for again, and said so on standard error.
    fn shutdown(self) {
        let deadline = Instant::now() + self.timeout;
        #[allow(
            unused_variables,
            reason = "read by the optional outputs that stop here"
        )]
        let late = self.flush(deadline);
        let Parts {
            #[cfg(feature = "router")]
            router,
            #[cfg(feature = "capture")]
            capture,
            #[cfg(feature = "otlp")]
            otlp,
            #[cfg(feature = "metrics")]
            server,
            #[cfg(feature = "metrics")]
            lag_probe,
            ..
        } = self;
        #[cfg(feature = "router")]
        stop(router, late.router, "routes (files, syslog, alerts)");
        #[cfg(feature = "capture")]
        stop(capture, late.capture, "error capture");
        #[cfg(feature = "otlp")]
        stop(otlp, late.otlp, "OTLP export");
        #[cfg(feature = "metrics")]
        {
            drop(lag_probe);
            drop(server);
        }
    }
}

/// The outputs that did not flush before the deadline.
#[derive(Default)]
struct Late {
    #[cfg(feature = "router")]
    router: bool,
    #[cfg(feature = "capture")]
    capture: bool,
    #[cfg(feature = "otlp")]
    otlp: bool,
}

/// Drops `part` (its worker stops after a last, quick flush) — or, when it could not flush in
/// time, leaves its worker to finish on its own rather than wait for it a second time.
#[allow(dead_code)]
fn stop<T>(part: Option<T>, late: bool, what: &str) {
    match part {
        Some(p) if late => {
            eprintln!(
                "strata: {what} did not flush within the shutdown timeout; what was still queued may be lost"
            );
            std::mem::forget(p);
        }
        other => drop(other),
    }
}

/// A thread with a current-thread runtime of its own (so what it serves works whether or not
/// the application runs tokio): it runs `setup`, reports its value, keeps what `setup` made
/// alive until dropped, then stops.
#[cfg(any(feature = "metrics", feature = "diagnostics"))]
struct RuntimeThread<T> {
    value: T,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

#[cfg(any(feature = "metrics", feature = "diagnostics"))]
impl<T: Send + 'static> RuntimeThread<T> {
    fn start<F, Fut, K>(name: &str, setup: F) -> std::io::Result<Self>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = std::io::Result<(T, K)>>,
    {
        let (value_tx, value_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = value_tx.send(Err(e));
                        return;
                    }
                };
                rt.block_on(async move {
                    match setup().await {
                        Ok((value, _keep)) => {
                            let _ = value_tx.send(Ok(value));
                            let _ = stopped.await;
                        }
                        Err(e) => {
                            let _ = value_tx.send(Err(e));
                        }
                    }
                });
            })?;
        let value = value_rx
            .recv()
            .map_err(|_| std::io::Error::other(format!("the {name} thread ended")))??;
        Ok(RuntimeThread {
            value,
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

#[cfg(any(feature = "metrics", feature = "diagnostics"))]
impl<T> Drop for RuntimeThread<T> {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `GET /metrics` on a thread of its own; its value is the bound address.
#[cfg(feature = "metrics")]
type MetricsThread = RuntimeThread<std::net::SocketAddr>;

#[cfg(feature = "metrics")]
fn start_metrics_thread(
    m: strata_metrics::Metrics,
    addr: std::net::SocketAddr,
) -> std::io::Result<MetricsThread> {
    RuntimeThread::start("strata-metrics", move || async move {
        let server = m.serve(addr).await?;
        Ok((server.addr(), server))
    })
}

type Shared = Arc<Mutex<Option<Parts>>>;

/// The outputs of the installed guard, for [`shutdown`].
static ACTIVE: Mutex<Option<Weak<Mutex<Option<Parts>>>>> = Mutex::new(None);

/// Keeps strata's outputs alive; flushes and stops them all when dropped, waiting at most the
/// shutdown timeout (`shutdown_timeout`, 5 s by default).
///
/// Hold it until the end of `main` (`let _guard = strata::init();` — not `let _ = …`, which
/// drops it at once). A program that leaves through `std::process::exit` (which runs no
/// destructor) calls [`shutdown`] first.
#[must_use = "dropping the guard flushes and stops every strata output; hold it until the end of main"]
pub struct Guard {
    config: Arc<Config>,
    parts: Shared,
}

impl fmt::Debug for Guard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guard")
            .field("profile", &self.config.profile)
            .field("service", &self.config.service)
            .finish_non_exhaustive()
    }
}

impl Guard {
    pub(crate) fn new(config: Config, parts: Parts) -> Guard {
        let parts: Shared = Arc::new(Mutex::new(Some(parts)));
        *ACTIVE.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::downgrade(&parts));
        Guard {
            config: Arc::new(config),
            parts,
        }
    }

    /// The configuration strata was set up with (print it to see every value and its origin,
    /// secrets masked).
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Flushes every output now, waiting at most the shutdown timeout.
    pub fn flush(&self) {
        let parts = self.parts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = &*parts {
            let _ = p.flush(Instant::now() + p.timeout);
        }
    }

    /// The metrics strata derives from spans (serve them with `metrics.service()` or
    /// `metrics.serve(addr)`, or read them with `metrics.encode()`), when metrics are on.
    #[cfg(feature = "metrics")]
    pub fn metrics(&self) -> Option<strata_metrics::Metrics> {
        let parts = self.parts.lock().unwrap_or_else(|e| e.into_inner());
        parts.as_ref().and_then(|p| p.metrics.clone())
    }

    /// Where `GET /metrics` is served, when `metrics.listen` is set.
    #[cfg(feature = "metrics")]
    pub fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
        let parts = self.parts.lock().unwrap_or_else(|e| e.into_inner());
        parts
            .as_ref()
            .and_then(|p| p.server.as_ref().map(|s| s.value))
    }

    /// The registry of requests and jobs in flight, when diagnostics are on.
    #[cfg(feature = "diagnostics")]
    pub fn inflight(&self) -> Option<strata_diagnostics::Inflight> {
        let parts = self.parts.lock().unwrap_or_else(|e| e.into_inner());
        parts
            .as_ref()
            .and_then(|p| p.diagnostics.as_ref().map(|d| d.inflight.clone()))
    }

    /// Where the diagnostics endpoint listens, when `diagnostics.listen` is set.
    #[cfg(feature = "diagnostics")]
    pub fn diagnostics_addr(&self) -> Option<std::net::SocketAddr> {
        let parts = self.parts.lock().unwrap_or_else(|e| e.into_inner());
        parts
            .as_ref()
            .and_then(|p| p.diagnostics.as_ref().and_then(|d| d.thread.value))
    }

    /// What error capture has done so far, when it is on.
    #[cfg(feature = "capture")]
    pub fn capture_stats(&self) -> Option<strata_capture::CaptureStats> {
        let parts = self.parts.lock().unwrap_or_else(|e| e.into_inner());
        parts
            .as_ref()
            .and_then(|p| p.capture.as_ref().map(strata_capture::CaptureGuard::stats))
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let parts = self.parts.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(p) = parts {
            p.shutdown();
        }
    }
}

/// Flushes and stops every output of the installed guard now, bounded by its shutdown timeout;
/// for programs that end with `std::process::exit`, which runs no destructor. The guard's drop
/// then does nothing. Returns `false` when there was nothing to shut down.
///
/// ```no_run
/// let guard = strata::init();
/// tracing::error!("cannot continue");
/// strata::shutdown();
/// std::process::exit(2);
/// # drop(guard);
/// ```
pub fn shutdown() -> bool {
    let active = ACTIVE.lock().unwrap_or_else(|e| e.into_inner()).take();
    let parts = active
        .and_then(|w| w.upgrade())
        .and_then(|shared| shared.lock().unwrap_or_else(|e| e.into_inner()).take());
    match parts {
        Some(p) => {
            p.shutdown();
            true
        }
        None => false,
    }
}
