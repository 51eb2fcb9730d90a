//! strata's batch processor, for spans and log records: a finished item is pushed into a shared
//! buffer under a short lock, and a thread of its own exports whole batches — when a batch is
//! full, on a timer, or on flush. Callers wake the thread only when a batch fills (a wake-up is a
//! system call), and a full buffer drops the item and counts it — the caller never waits.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use opentelemetry::{Context, InstrumentationScope};
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::logs::{LogBatch, LogExporter, SdkLogRecord};
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use strata_core::Redaction;

use crate::recorder::Finished;

/// Items handed to the exporter at most per call.
const MAX_BATCH: usize = 512;

#[derive(Debug)]
struct State<T> {
    buf: Vec<T>,
    /// Items accepted so far, and items exported (or failed) so far: for flush.
    accepted: u64,
    done: u64,
    shutdown: bool,
    /// A flush is waiting: export what there is now.
    flush: bool,
}

/// What a processor has done so far.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Sent, and accepted by the collector as a request (some may have been rejected).
    pub(crate) exported: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) failed: AtomicU64,
    /// Of those exported, how many the collector said it rejected (an OTLP partial success),
    /// and the last reason it gave.
    pub(crate) rejected: AtomicU64,
    pub(crate) rejected_reason: Mutex<Option<String>>,
}

#[derive(Debug)]
struct Shared<T> {
    state: Mutex<State<T>>,
    wake: Condvar,
    done: Condvar,
    capacity: usize,
    delay: Duration,
    counters: Arc<Counters>,
    /// What is exported, for messages: "spans", "log records".
    what: &'static str,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The buffered items that wake the export thread: a batch, or half the queue if smaller.
    fn threshold(&self) -> usize {
        MAX_BATCH.min(self.capacity.div_ceil(2))
    }
}

/// Where the exporter's futures run: on a tokio runtime (the gRPC exporter needs one) or, with
/// none, on the export thread itself (the blocking HTTP client must not run inside a runtime).
#[derive(Debug, Clone)]
pub(crate) struct Executor(pub(crate) Option<tokio::runtime::Handle>);

impl Executor {
    fn run<F: std::future::Future>(&self, f: F) -> F::Output {
        match &self.0 {
            Some(h) => h.block_on(f),
            None => block_on(f),
        }
    }
}

/// A batch processor of `T`s: the recorder's span records, or the log bridge's log records.
#[derive(Debug)]
pub(crate) struct Batch<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Clone for Batch<T> {
    fn clone(&self) -> Self {
        Batch {
            shared: Arc::clone(&self.shared),
        }
    }
}

/// Waits until a deadline for a batch processor to export what it holds; `false` on timeout.
pub(crate) type Waiter = Arc<dyn Fn(Instant) -> bool + Send + Sync>;

/// The settings every batch processor shares.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) capacity: usize,
    pub(crate) delay: Duration,
    pub(crate) counters: Arc<Counters>,
    /// Secrets masked on the export thread before export.
    pub(crate) redaction: Option<Arc<Redaction>>,
}

impl<T: Send + 'static> Batch<T> {
    /// Starts the export thread; `export` sends one batch of at most [`MAX_BATCH`] items and
    /// says how many it sent (it may leave some out). It may take the items out of the vector;
    /// what it leaves is dropped, and the vector is used again.
    fn spawn(
        settings: Settings,
        what: &'static str,
        mut export: impl FnMut(&mut Vec<T>) -> (u64, OTelSdkResult) + Send + 'static,
    ) -> std::io::Result<Batch<T>> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                buf: Vec::with_capacity(MAX_BATCH),
                accepted: 0,
                done: 0,
                shutdown: false,
                flush: false,
            }),
            wake: Condvar::new(),
            done: Condvar::new(),
            capacity: settings.capacity.max(1),
            // A zero delay would spin the export thread.
            delay: settings.delay.max(Duration::from_millis(1)),
            counters: settings.counters,
            what,
        });
        let worker = Arc::clone(&shared);
        std::thread::Builder::new()
            .name(format!("strata-otlp-{}", what.replace(' ', "-")))
            .spawn(move || {
                strata_core::background_thread();
                run(&worker, &mut export);
            })?;
        Ok(Batch { shared })
    }

    /// Queues `item`, or drops and counts it when the queue is full or shut down.
    #[inline]
    pub(crate) fn push(&self, item: T) {
        let mut st = self.shared.lock();
        if st.shutdown || st.buf.len() >= self.shared.capacity {
            drop(st);
            self.shared.counters.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        st.buf.push(item);
        st.accepted += 1;
        let full = st.buf.len() == self.shared.threshold();
        drop(st);
        if full {
            self.shared.wake.notify_one();
        }
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

    /// Waits, until a deadline, for everything accepted before the call to be exported.
    pub(crate) fn waiter(&self) -> Waiter {
        let batch = self.clone();
        Arc::new(move |deadline| batch.wait_done(deadline))
    }

    /// Exports what is queued, waiting at most 10 s.
    pub(crate) fn flush(&self) -> OTelSdkResult {
        let timeout = Duration::from_secs(10);
        if self.wait_done(Instant::now() + timeout) {
            Ok(())
        } else {
            Err(OTelSdkError::Timeout(timeout))
        }
    }

    /// Exports what is queued and stops the export thread, waiting at most `timeout`.
    pub(crate) fn shutdown(&self, timeout: Duration) -> OTelSdkResult {
        let flushed = self.wait_done(Instant::now() + timeout);
        self.shared.lock().shutdown = true;
        self.shared.wake.notify_all();
        if flushed {
            Ok(())
        } else {
            Err(OTelSdkError::Timeout(timeout))
        }
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

/// Says in the logs (at most once a second) how many items were dropped or failed since the
/// last report. Target `strata_otlp`: never sent to network sinks nor to the logs bridge.
#[derive(Default)]
struct Reporter {
    last: Option<Instant>,
    dropped: u64,
    failed: u64,
    rejected: u64,
    /// The last export error.
    error: Option<String>,
}

impl Reporter {
    fn report(&mut self, counters: &Counters, what: &'static str) {
        if self
            .last
            .is_some_and(|t| t.elapsed() < Duration::from_secs(1))
        {
            return;
        }
        let dropped = counters.dropped.load(Ordering::Relaxed);
        let failed = counters.failed.load(Ordering::Relaxed);
        let rejected = counters.rejected.load(Ordering::Relaxed);
        let (new_dropped, new_failed, new_rejected) = (
            dropped - self.dropped,
            failed - self.failed,
            rejected - self.rejected,
        );
        if new_dropped == 0 && new_failed == 0 && new_rejected == 0 {
            return;
        }
        self.last = Some(Instant::now());
        (self.dropped, self.failed, self.rejected) = (dropped, failed, rejected);
        if new_rejected > 0 {
            let reason = counters
                .rejected_reason
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take()
                .unwrap_or_default();
            tracing::warn!(
                target: "strata_otlp",
                event = "telemetry_rejected",
                signal = what,
                rejected = new_rejected,
                rejected_total = rejected,
                reason,
                "the collector rejected {new_rejected} {what}"
            );
        }
        if new_dropped > 0 {
            tracing::warn!(
                target: "strata_otlp",
                event = "telemetry_dropped",
                signal = what,
                dropped = new_dropped,
                dropped_total = dropped,
                "{new_dropped} {what} dropped: the export queue was full"
            );
        }
        if new_failed > 0 {
            let error = self.error.take().unwrap_or_default();
            tracing::warn!(
                target: "strata_otlp",
                event = "telemetry_export_failed",
                signal = what,
                failed = new_failed,
                failed_total = failed,
                error,
                "exporting {new_failed} {what} failed"
            );
        }
    }
}

fn run<T>(shared: &Shared<T>, export: &mut impl FnMut(&mut Vec<T>) -> (u64, OTelSdkResult)) {
    // What exporting makes (an HTTP client's spans and logs) is not exported in turn.
    let _quiet = Context::enter_telemetry_suppressed_scope();
    let mut batch: Vec<T> = Vec::with_capacity(MAX_BATCH);
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
        let mut pending = std::mem::take(&mut batch);
        let n = pending.len() as u64;
        while !pending.is_empty() {
            // At most MAX_BATCH items per export.
            let rest = if pending.len() > MAX_BATCH {
                pending.split_off(MAX_BATCH)
            } else {
                Vec::new()
            };
            let (len, result) = export(&mut pending);
            match result {
                Ok(()) => _ = shared.counters.exported.fetch_add(len, Ordering::Relaxed),
                Err(e) => {
                    shared.counters.failed.fetch_add(len, Ordering::Relaxed);
                    reporter.error = Some(e.to_string());
                }
            }
            pending.clear();
            // The emptied vector with the most room goes back to the callers at the next swap:
            // its memory is mapped and warm (a new one per batch cost the threads filling it
            // a page fault every few items), and pushing never regrows it.
            if pending.capacity() > batch.capacity() {
                batch = std::mem::replace(&mut pending, rest);
            } else {
                pending = rest;
            }
        }
        batch.reserve(MAX_BATCH);
        let mut st = shared.lock();
        st.done += n;
        drop(st);
        shared.done.notify_all();
        reporter.report(&shared.counters, shared.what);
    }
}

/// Spans, made from the recorder's records on the export thread, then rewritten there before
/// export: semantic conventions, then redaction (which so also sees the names and statuses
/// the conventions derive).
pub(crate) fn spans<E: SpanExporter + 'static>(
    exporter: E,
    settings: Settings,
    executor: Executor,
) -> std::io::Result<Batch<Finished>> {
    let mut redaction = settings.redaction.clone().map(crate::redact::Rules::new);
    let scope = InstrumentationScope::builder("strata").build();
    Batch::spawn(settings, "spans", move |records: &mut Vec<Finished>| {
        // Spans of the network stack and telemetry crates (made where suppression does not
        // reach, such as an HTTP client's own threads) are not exported: each export would
        // make more. Their children are theirs too, so nothing is left orphaned.
        let mut batch: Vec<SpanData> = Vec::with_capacity(records.len());
        for record in records.drain(..) {
            let mut s = record.into_data(&scope);
            let class = crate::semconv::classify(&s);
            if class != crate::semconv::Class::Telemetry {
                crate::semconv::apply(&mut s, class);
                batch.push(s);
            }
        }
        if batch.is_empty() {
            return (0, Ok(()));
        }
        if let Some(r) = &mut redaction {
            batch.iter_mut().for_each(|s| crate::redact::span(r, s));
        }
        (batch.len() as u64, executor.run(exporter.export(batch)))
    })
}

/// Log records, masked on the export thread before export when there are redaction rules.
pub(crate) fn logs<E: LogExporter + 'static>(
    exporter: E,
    settings: Settings,
    executor: Executor,
) -> std::io::Result<Batch<SdkLogRecord>> {
    let mut redactor = settings
        .redaction
        .clone()
        .map(crate::redact::LogRedactor::new);
    // The log bridge's scope, as opentelemetry-appender-tracing's: an empty name (the encoder
    // groups records by target).
    let scope = InstrumentationScope::builder("").build();
    Batch::spawn(
        settings,
        "log records",
        move |batch: &mut Vec<SdkLogRecord>| {
            if let Some(r) = &mut redactor {
                for record in batch.iter_mut() {
                    if let Some(masked) = r.redact(record) {
                        *record = masked;
                    }
                }
            }
            let refs: Vec<(&SdkLogRecord, &InstrumentationScope)> =
                batch.iter().map(|r| (r, &scope)).collect();
            (
                refs.len() as u64,
                executor.run(exporter.export(LogBatch::new(&refs))),
            )
        },
    )
}

/// A record with nothing set, to clone (the SDK makes them only through a logger).
pub(crate) fn blank_record() -> &'static SdkLogRecord {
    static BLANK: std::sync::OnceLock<SdkLogRecord> = std::sync::OnceLock::new();
    BLANK.get_or_init(|| {
        use opentelemetry::logs::{Logger as _, LoggerProvider as _};
        let provider = opentelemetry_sdk::logs::SdkLoggerProvider::builder().build();
        let record = provider.logger("strata").create_log_record();
        let _ = provider.shutdown();
        record
    })
}
