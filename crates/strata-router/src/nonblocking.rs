//! A non-blocking, batching writer: callers copy their line into a shared buffer and return; a
//! background thread writes whole batches (many lines per `write` call).
//!
//! The thread is woken when the queue stops being empty, then lingers (2 ms by default) or
//! until 64 KiB are queued before it writes, so a busy service costs it a few hundred
//! wake-ups and `write` calls a second rather than one per line: on a loaded machine each
//! wake-up of a writer thread is a context switch taken from the application's threads.
//! A flush (the guard, the panic hook, [`Write::flush`]) ends the linger at once.

use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What a full queue does to the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Policy {
    /// Wait for room: nothing is ever lost (the default).
    #[default]
    Block,
    /// Drop the line and count it; a WARN line in the same output later says how many.
    Drop,
}

/// Makes the line reporting `n` dropped lines, in the output's format.
pub type DropReport = Box<dyn Fn(u64) -> Vec<u8> + Send + Sync>;

/// Settings for [`non_blocking`]; see each setter for its default.
pub struct NonBlockingBuilder {
    capacity: usize,
    linger: Duration,
    policy: Policy,
    thread_name: String,
    report: DropReport,
}

impl std::fmt::Debug for NonBlockingBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NonBlockingBuilder")
            .field("capacity", &self.capacity)
            .field("linger", &self.linger)
            .field("policy", &self.policy)
            .field("thread_name", &self.thread_name)
            .finish_non_exhaustive()
    }
}

impl Default for NonBlockingBuilder {
    fn default() -> Self {
        NonBlockingBuilder {
            capacity: 4 << 20,
            linger: Duration::from_millis(10),
            policy: Policy::Block,
            thread_name: "strata-writer".to_owned(),
            report: Box::new(default_drop_report),
        }
    }
}

/// The default report line: strata's default JSON schema.
fn default_drop_report(n: u64) -> Vec<u8> {
    format!(
        "{{\"timestamp\":\"{}\",\"level\":\"WARN\",\"target\":\"strata_router\",\"event\":\"log_lines_dropped\",\"message\":\"{n} log lines dropped: the writer's queue was full\",\"dropped\":{n}}}\n",
        strata_core::encode::rfc3339_now()
    )
    .into_bytes()
}

impl NonBlockingBuilder {
    /// The queue's capacity in bytes (the memory used is at most twice this). Default: 4 MiB.
    #[must_use]
    pub fn with_capacity(mut self, bytes: usize) -> Self {
        self.capacity = bytes.max(1);
        self
    }

    /// How long the writer thread waits for more lines after the first one of a batch, unless
    /// 64 KiB are queued first or a flush asks. Default: 10 ms (at 10 000 requests/s, 2 ms
    /// woke the thread 650 times a second for 1.25 µs of CPU per request; 10 ms: 180 times,
    /// 0.5 µs). A panic, the guard's drop and an explicit flush write the queue at once; a
    /// killed process loses at most the last linger's lines. Zero writes each line as soon as
    /// the thread runs (a wake-up, and a `write` call, per line on a quiet queue).
    #[must_use]
    pub fn with_linger(mut self, linger: Duration) -> Self {
        self.linger = linger;
        self
    }

    /// What a full queue does. Default: [`Policy::Block`].
    #[must_use]
    pub fn with_policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// The writer thread's name. Default: `strata-writer`.
    #[must_use]
    pub fn with_thread_name(mut self, name: impl Into<String>) -> Self {
        self.thread_name = name.into();
        self
    }

    /// How the "N lines dropped" WARN line is written (at most once a second, and at
    /// shutdown). Default: a line in strata's default JSON schema.
    #[must_use]
    pub fn with_drop_report(
        mut self,
        report: impl Fn(u64) -> Vec<u8> + Send + Sync + 'static,
    ) -> Self {
        self.report = Box::new(report);
        self
    }

    /// Starts the writer thread over `writer`.
    ///
    /// # Errors
    ///
    /// When the thread cannot be spawned.
    pub fn spawn<W: Write + Send + 'static>(
        self,
        writer: W,
    ) -> io::Result<(NonBlocking, WorkerGuard)> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                buf: Vec::with_capacity(self.capacity.min(1 << 20)),
                enqueued: 0,
                written: 0,
                dropped_unreported: 0,
                shutdown: false,
                urgent: false,
                waiting: Waiting::No,
            }),
            not_empty: Condvar::new(),
            not_full: Condvar::new(),
            written: Condvar::new(),
            capacity: self.capacity,
            batch: BATCH.min(self.capacity / 2).max(1),
            linger: self.linger,
            policy: self.policy,
            dropped: AtomicU64::new(0),
            write_errors: AtomicU64::new(0),
            failed_lines: AtomicU64::new(0),
        });
        let worker = Arc::clone(&shared);
        let report = self.report;
        let handle = std::thread::Builder::new()
            .name(self.thread_name)
            .spawn(move || {
                strata_core::background_thread();
                worker.run(writer, &report);
            })?;
        let for_flush = Arc::clone(&shared);
        let registration =
            strata_core::flush::register("strata-router non-blocking writer", move |deadline| {
                for_flush.flush_until(Some(deadline));
            });
        Ok((
            NonBlocking {
                shared: Arc::clone(&shared),
            },
            WorkerGuard {
                shared,
                handle: Some(handle),
                _registration: registration,
            },
        ))
    }
}

/// Wraps `writer` with the default settings (4 MiB queue, [`Policy::Block`]).
///
/// ```
/// use std::io::Write;
///
/// let (mut w, guard) = strata_router::non_blocking(std::io::sink()).unwrap();
/// w.write_all(b"{\"message\":\"hello\"}\n").unwrap();
/// drop(guard); // flushes and stops the thread
/// ```
///
/// # Errors
///
/// When the thread cannot be spawned.
pub fn non_blocking<W: Write + Send + 'static>(
    writer: W,
) -> io::Result<(NonBlocking, WorkerGuard)> {
    NonBlockingBuilder::default().spawn(writer)
}

/// Queued bytes that end the writer's linger: it writes at once.
const BATCH: usize = 64 << 10;

/// What the writer thread is waiting for, if anything: tells a caller whether to wake it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Waiting {
    /// Running: it will look at the queue again by itself.
    No,
    /// Asleep on an empty queue: any line wakes it.
    Line,
    /// Lingering: a full batch, a flush or shutdown wakes it.
    Batch,
}

struct State {
    buf: Vec<u8>,
    /// Writes accepted so far (a sequence number for flush).
    enqueued: u64,
    /// Writes handed to the writer so far.
    written: u64,
    dropped_unreported: u64,
    shutdown: bool,
    /// A flush is waiting: write without lingering.
    urgent: bool,
    waiting: Waiting,
}

struct Shared {
    state: Mutex<State>,
    not_empty: Condvar,
    not_full: Condvar,
    written: Condvar,
    capacity: usize,
    /// Bytes that end a linger.
    batch: usize,
    linger: Duration,
    policy: Policy,
    dropped: AtomicU64,
    write_errors: AtomicU64,
    /// Lines in the batches that failed to be written.
    failed_lines: AtomicU64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues one write (one or more whole lines). Returns whether it was accepted.
    fn push(&self, bytes: &[u8]) -> bool {
        let mut st = self.lock();
        loop {
            if st.shutdown {
                // The writer is gone (its guard was dropped): nothing would ever write this.
                self.dropped.fetch_add(1, Ordering::Relaxed);
                return false;
            }
            if st.buf.is_empty() || st.buf.len() + bytes.len() <= self.capacity {
                break;
            }
            match self.policy {
                Policy::Drop => {
                    st.dropped_unreported += 1;
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                    return false;
                }
                Policy::Block => st = self.not_full.wait(st).unwrap_or_else(|e| e.into_inner()),
            }
        }
        st.buf.extend_from_slice(bytes);
        st.enqueued += 1;
        let wake = match st.waiting {
            Waiting::No => false,
            Waiting::Line => true,
            Waiting::Batch => st.buf.len() >= self.batch,
        };
        if wake {
            st.waiting = Waiting::No;
        }
        drop(st);
        if wake {
            self.not_empty.notify_one();
        }
        true
    }

    fn run<W: Write>(&self, mut writer: W, report: &DropReport) {
        let mut batch: Vec<u8> = Vec::with_capacity(self.capacity.min(1 << 20));
        let mut last_report: Option<Instant> = None;
        let mut reported_error = false;
        loop {
            let mut st = self.lock();
            while st.buf.is_empty() && !st.shutdown {
                st.waiting = Waiting::Line;
                st = self.not_empty.wait(st).unwrap_or_else(|e| e.into_inner());
            }
            // Linger for more lines: one wake-up and one `write` for many lines.
            let until = Instant::now() + self.linger;
            while !st.shutdown && !st.urgent && st.buf.len() < self.batch {
                let left = until.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                st.waiting = Waiting::Batch;
                st = self
                    .not_empty
                    .wait_timeout(st, left)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
            st.waiting = Waiting::No;
            st.urgent = false;
            let finishing = st.shutdown && st.buf.is_empty();
            std::mem::swap(&mut st.buf, &mut batch);
            let upto = st.enqueued;
            let due = last_report.is_none_or(|t| t.elapsed() >= Duration::from_secs(1));
            let dropped = if st.dropped_unreported > 0 && (due || finishing) {
                std::mem::take(&mut st.dropped_unreported)
            } else {
                0
            };
            drop(st);
            self.not_full.notify_all();
            if dropped > 0 {
                last_report = Some(Instant::now());
                batch.extend_from_slice(&report(dropped));
            }
            if !batch.is_empty() {
                if let Err(e) = writer.write_all(&batch) {
                    self.write_errors.fetch_add(1, Ordering::Relaxed);
                    let lines = batch.iter().filter(|&&b| b == b'\n').count() as u64;
                    self.failed_lines.fetch_add(lines, Ordering::Relaxed);
                    if !reported_error {
                        reported_error = true;
                        eprintln!(
                            "strata-router: writing log lines failed: {e}; further failures are only counted"
                        );
                    }
                }
                batch.clear();
            }
            let mut st = self.lock();
            st.written = upto;
            drop(st);
            self.written.notify_all();
            if finishing {
                let _ = writer.flush();
                return;
            }
        }
    }

    /// Waits until everything queued before the call has been handed to the writer.
    fn flush(&self) {
        self.flush_until(None);
    }

    /// As [`Shared::flush`], giving up at `deadline`.
    fn flush_until(&self, deadline: Option<Instant>) {
        let mut st = self.lock();
        let target = st.enqueued;
        if st.written < target {
            st.urgent = true;
            if st.waiting == Waiting::Batch {
                st.waiting = Waiting::No;
                self.not_empty.notify_one();
            }
        }
        while st.written < target && !st.shutdown {
            st = match deadline {
                None => self.written.wait(st).unwrap_or_else(|e| e.into_inner()),
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return;
                    }
                    self.written
                        .wait_timeout(st, left)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
            };
        }
    }
}

/// The writing end: cheap to clone, one per thread or layer. Each `write` call is queued as is,
/// so give it whole lines (strata-json does: one `write_all` per line).
#[derive(Clone)]
pub struct NonBlocking {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for NonBlocking {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NonBlocking")
            .field("policy", &self.shared.policy)
            .field("dropped", &self.dropped_lines())
            .finish_non_exhaustive()
    }
}

impl NonBlocking {
    /// Queues one write (whole lines) without needing `&mut`.
    pub(crate) fn push(&self, bytes: &[u8]) {
        self.shared.push(bytes);
    }

    /// Lines dropped so far because the queue was full (always 0 with [`Policy::Block`]).
    pub fn dropped_lines(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Batches the inner writer failed to write.
    pub fn write_errors(&self) -> u64 {
        self.shared.write_errors.load(Ordering::Relaxed)
    }
}

impl Write for NonBlocking {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.shared.push(buf);
        Ok(buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.shared.push(buf);
        Ok(())
    }

    /// Waits until every line written before has been handed to the inner writer.
    fn flush(&mut self) -> io::Result<()> {
        self.shared.flush();
        Ok(())
    }
}

/// Stops the writer thread when dropped, after it has written everything queued.
#[must_use = "dropping the guard stops the writer thread; hold it until the end of main"]
pub struct WorkerGuard {
    shared: Arc<Shared>,
    handle: Option<JoinHandle<()>>,
    /// Lets the panic hook flush this writer before the process dies.
    _registration: strata_core::flush::Registration,
}

impl WorkerGuard {
    /// Reads the lines the writer lost — dropped (the queue was full) or in a batch the inner
    /// writer failed to write — also after the guard is gone.
    pub(crate) fn dropped_counter(&self) -> impl Fn() -> u64 + Send + Sync + 'static {
        let shared = Arc::clone(&self.shared);
        move || shared.dropped.load(Ordering::Relaxed) + shared.failed_lines.load(Ordering::Relaxed)
    }
}

impl std::fmt::Debug for WorkerGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerGuard").finish_non_exhaustive()
    }
}

impl WorkerGuard {
    /// Waits until everything queued so far has been written.
    pub fn flush(&self) {
        self.shared.flush();
    }
}

impl Drop for WorkerGuard {
    fn drop(&mut self) {
        self.shared.lock().shutdown = true;
        self.shared.not_empty.notify_all();
        self.shared.not_full.notify_all();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
