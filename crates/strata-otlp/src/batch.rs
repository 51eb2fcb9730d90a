//! strata's batch span processor: a finished span is pushed into a shared buffer under a short
//! lock, and a thread of its own exports whole batches — when a batch is full, on a timer, or
//! on flush. Callers wake the thread only when a batch fills (a wake-up is a system call), and a
//! full buffer drops the span and counts it — the caller never waits.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use opentelemetry::Context;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{Span, SpanData, SpanExporter, SpanProcessor};

/// Spans handed to the exporter at most per call.
const MAX_BATCH: usize = 512;

#[derive(Debug, Default)]
struct State {
    buf: Vec<SpanData>,
    /// Spans accepted so far, and spans exported (or failed) so far: for flush.
    accepted: u64,
    done: u64,
    shutdown: bool,
    /// A flush is waiting: export what there is now.
    flush: bool,
}

/// What the processor has done so far.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) exported: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) failed: AtomicU64,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    wake: Condvar,
    done: Condvar,
    capacity: usize,
    delay: Duration,
    counters: Arc<Counters>,
    reported: AtomicBool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The buffered spans that wake the export thread: a batch, or half the queue if smaller.
    fn threshold(&self) -> usize {
        MAX_BATCH.min(self.capacity.div_ceil(2))
    }
}

/// The processor handed to the SDK's tracer provider.
#[derive(Debug)]
pub(crate) struct BatchProcessor {
    shared: Arc<Shared>,
}

impl BatchProcessor {
    /// Starts the export thread. The exporter's futures run on `handle` (the gRPC exporter
    /// needs a tokio runtime) or, without one, on the thread itself (the blocking HTTP client
    /// must not run inside a runtime).
    pub(crate) fn spawn<E>(
        exporter: E,
        capacity: usize,
        delay: Duration,
        counters: Arc<Counters>,
        handle: Option<tokio::runtime::Handle>,
    ) -> std::io::Result<BatchProcessor>
    where
        E: SpanExporter + 'static,
    {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
            done: Condvar::new(),
            capacity: capacity.max(1),
            delay,
            counters,
            reported: AtomicBool::new(false),
        });
        let worker = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("strata-otlp-export".to_owned())
            .spawn(move || run(&worker, &exporter, handle.as_ref()))?;
        Ok(BatchProcessor { shared })
    }

    /// Waits until everything accepted before the call is exported, or `deadline`.
    fn wait_done(&self, deadline: Instant) -> bool {
        let mut st = self.shared.lock();
        let target = st.accepted;
        if st.done < target {
            st.flush = true;
            self.shared.wake.notify_one();
        }
        while st.done < target {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            st = self
                .shared
                .done
                .wait_timeout(st, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        true
    }
}

/// Runs a future to completion on this thread, parking it while the future waits.
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let mut f = std::pin::pin!(f);
    let waker = std::task::Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = std::task::Context::from_waker(&waker);
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}

/// Says in the logs (at most once a second) how many spans were dropped or failed since the
/// last report. Target `strata_otlp`: never sent to network sinks.
#[derive(Default)]
struct Reporter {
    last: Option<Instant>,
    dropped: u64,
    failed: u64,
}

impl Reporter {
    fn report(&mut self, counters: &Counters) {
        if self
            .last
            .is_some_and(|t| t.elapsed() < Duration::from_secs(1))
        {
            return;
        }
        let dropped = counters.dropped.load(Ordering::Relaxed);
        let failed = counters.failed.load(Ordering::Relaxed);
        let (new_dropped, new_failed) = (dropped - self.dropped, failed - self.failed);
        if new_dropped == 0 && new_failed == 0 {
            return;
        }
        self.last = Some(Instant::now());
        (self.dropped, self.failed) = (dropped, failed);
        if new_dropped > 0 {
            tracing::warn!(
                target: "strata_otlp",
                event = "spans_dropped",
                dropped = new_dropped,
                dropped_total = dropped,
                "{new_dropped} spans dropped: the export queue was full"
            );
        }
        if new_failed > 0 {
            tracing::warn!(
                target: "strata_otlp",
                event = "span_export_failed",
                failed = new_failed,
                failed_total = failed,
                "exporting {new_failed} spans failed"
            );
        }
    }
}

fn run<E: SpanExporter>(shared: &Shared, exporter: &E, handle: Option<&tokio::runtime::Handle>) {
    let mut batch: Vec<SpanData> = Vec::with_capacity(MAX_BATCH);
    let mut reporter = Reporter::default();
    loop {
        let mut st = shared.lock();
        let due = Instant::now() + shared.delay;
        // Sleep until a batch is full, the timer runs out (with something to send), a flush
        // or shutdown.
        while st.buf.len() < shared.threshold() && !st.shutdown && !st.flush {
            let left = due.saturating_duration_since(Instant::now());
            if left.is_zero() && !st.buf.is_empty() {
                break;
            }
            let wait = if left.is_zero() { shared.delay } else { left };
            st = shared
                .wake
                .wait_timeout(st, wait)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        if st.buf.is_empty() && st.shutdown {
            return;
        }
        st.flush = false;
        std::mem::swap(&mut st.buf, &mut batch);
        drop(st);
        let n = batch.len() as u64;
        while !batch.is_empty() {
            // Hand over whole vectors (no copies), at most MAX_BATCH spans each.
            let rest = batch.split_off(batch.len().min(MAX_BATCH));
            let chunk = std::mem::replace(&mut batch, rest);
            let len = chunk.len() as u64;
            let result = match handle {
                Some(h) => h.block_on(exporter.export(chunk)),
                None => block_on(exporter.export(chunk)),
            };
            match result {
                Ok(()) => _ = shared.counters.exported.fetch_add(len, Ordering::Relaxed),
                Err(e) => {
                    shared.counters.failed.fetch_add(len, Ordering::Relaxed);
                    if !shared.reported.swap(true, Ordering::Relaxed) {
                        eprintln!(
                            "strata-otlp: exporting spans failed: {e}; further failures are only counted"
                        );
                    }
                }
            }
        }
        // The vector went to the exporter: callers get one with room for a whole batch, so
        // pushing never regrows (and copies) their spans.
        batch = Vec::with_capacity(MAX_BATCH);
        let mut st = shared.lock();
        st.done += n;
        drop(st);
        shared.done.notify_all();
        reporter.report(&shared.counters);
    }
}

impl SpanProcessor for BatchProcessor {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        if !span.span_context.is_sampled() {
            return;
        }
        let mut st = self.shared.lock();
        if st.shutdown || st.buf.len() >= self.shared.capacity {
            drop(st);
            self.shared.counters.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        st.buf.push(span);
        st.accepted += 1;
        let full = st.buf.len() == self.shared.threshold();
        drop(st);
        if full {
            self.shared.wake.notify_one();
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        if self.wait_done(Instant::now() + Duration::from_secs(10)) {
            Ok(())
        } else {
            Err(OTelSdkError::Timeout(Duration::from_secs(10)))
        }
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        let deadline = Instant::now() + timeout;
        let flushed = self.wait_done(deadline);
        self.shared.lock().shutdown = true;
        self.shared.wake.notify_all();
        if flushed {
            Ok(())
        } else {
            Err(OTelSdkError::Timeout(timeout))
        }
    }

    fn set_resource(&mut self, _resource: &Resource) {}
}
