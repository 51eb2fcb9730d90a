//! Runs any [`Sink`] on its own thread behind a bounded queue, so a slow or unreachable
//! destination (a syslog server over TCP, a network share) never holds up the caller.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::router::{EventInfo, Sink};

enum Msg {
    Line(EventInfo, Vec<u8>),
    Flush(SyncSender<()>),
    Stop,
}

#[derive(Debug, Default)]
struct Counters {
    dropped: AtomicU64,
    write_errors: AtomicU64,
    /// Set by the guard: the worker stops at its next message, counting what is left as dropped.
    stop: AtomicBool,
}

/// A sink that hands each line to a thread of its own, which writes it to the inner sink.
///
/// The queue holds up to `capacity` lines (default 8192); when it is full the line is dropped
/// and counted ([`Background::dropped`]): network sinks must never make a request wait. The
/// worker reports its first write error on stderr and counts the rest.
///
/// ```
/// use strata_router::{Background, SyslogSink, Transport};
///
/// let syslog = SyslogSink::new(Transport::Tcp("127.0.0.1:6514".parse().unwrap()), "shop");
/// let (sink, guard) = Background::new(syslog).spawn().unwrap();
/// // Route::new(filter, format, sink) …; `guard` flushes and stops the thread when dropped.
/// # drop((sink, guard));
/// ```
pub struct Background<S> {
    inner: Option<S>,
    capacity: usize,
    tx: Option<SyncSender<Msg>>,
    counters: Arc<Counters>,
    network: bool,
}

impl<S> std::fmt::Debug for Background<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Background")
            .field("capacity", &self.capacity)
            .field("dropped", &self.counters.dropped.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl<S: Sink> Background<S> {
    /// Wraps `sink`; call [`Background::spawn`] to start the thread.
    pub fn new(sink: S) -> Self {
        Background {
            network: sink.is_network(),
            inner: Some(sink),
            capacity: 8192,
            tx: None,
            counters: Arc::default(),
        }
    }

    /// The queue's capacity in lines. Default: 8192.
    #[must_use]
    pub fn with_capacity(mut self, lines: usize) -> Self {
        self.capacity = lines.max(1);
        self
    }

    /// Starts the thread. The returned sink goes into a [`crate::Route`]; the guard flushes
    /// the queue and stops the thread when dropped.
    ///
    /// # Errors
    ///
    /// When the thread cannot be spawned.
    pub fn spawn(mut self) -> io::Result<(Background<S>, BackgroundGuard)> {
        let (tx, rx) = mpsc::sync_channel(self.capacity);
        let inner = self.inner.take().expect("spawn is called once");
        let counters = Arc::clone(&self.counters);
        let handle = std::thread::Builder::new()
            .name("strata-sink".to_owned())
            .spawn(move || run(&inner, &rx, &counters))?;
        self.tx = Some(tx.clone());
        let for_flush = tx.clone();
        let registration =
            strata_core::flush::register("strata-router background sink", move |deadline| {
                flush_queue(
                    &for_flush,
                    deadline.saturating_duration_since(std::time::Instant::now()),
                );
            });
        let guard = BackgroundGuard {
            tx: Mutex::new(Some(tx)),
            counters: Arc::clone(&self.counters),
            handle: Some(handle),
            _registration: registration,
        };
        Ok((self, guard))
    }

    /// Lines dropped because the queue was full or the thread had stopped.
    pub fn dropped(&self) -> u64 {
        self.counters.dropped.load(Ordering::Relaxed)
    }

    /// Lines the inner sink failed to write.
    pub fn write_errors(&self) -> u64 {
        self.counters.write_errors.load(Ordering::Relaxed)
    }
}

fn run<S: Sink>(sink: &S, rx: &Receiver<Msg>, counters: &Counters) {
    let mut reported = false;
    for msg in rx {
        if counters.stop.load(Ordering::Acquire) || matches!(msg, Msg::Stop) {
            let left = std::iter::once(msg)
                .chain(rx.try_iter())
                .filter(|m| matches!(m, Msg::Line(..)))
                .count();
            counters.dropped.fetch_add(left as u64, Ordering::Relaxed);
            break;
        }
        match msg {
            Msg::Line(info, line) => {
                if let Err(e) = sink.write_event(&info, &line) {
                    counters.write_errors.fetch_add(1, Ordering::Relaxed);
                    if !reported {
                        reported = true;
                        eprintln!(
                            "strata-router: a background sink failed to write: {e}; further failures are only counted"
                        );
                    }
                }
            }
            Msg::Flush(done) => {
                let _ = sink.flush();
                let _ = done.send(());
            }
            Msg::Stop => unreachable!("handled above"),
        }
    }
    let _ = sink.flush();
}

impl<S: Sink> Sink for Background<S> {
    fn write_line(&self, line: &[u8]) -> io::Result<()> {
        let info = EventInfo::new(strata_core::Severity::Info, crate::router::line_metadata());
        self.write_event(&info, line)
    }

    fn write_event(&self, event: &EventInfo, line: &[u8]) -> io::Result<()> {
        let Some(tx) = &self.tx else {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            return Err(io::Error::other("Background::spawn was not called"));
        };
        match tx.try_send(Msg::Line(*event, line.to_vec())) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
        }
    }

    /// Waits (at most 5 s) until the lines queued before the call are written.
    fn flush(&self) -> io::Result<()> {
        match &self.tx {
            Some(tx) if !flush_queue(tx, Duration::from_secs(5)) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "background sink: flush timed out",
            )),
            _ => Ok(()),
        }
    }

    fn is_network(&self) -> bool {
        self.network
    }
}

/// Queues a flush marker and waits for the worker to reach it; `false` on timeout.
fn flush_queue(tx: &SyncSender<Msg>, timeout: Duration) -> bool {
    let (done_tx, done_rx) = mpsc::sync_channel(1);
    let deadline = std::time::Instant::now() + timeout;
    let mut msg = Msg::Flush(done_tx);
    loop {
        match tx.try_send(msg) {
            Ok(()) => break,
            Err(TrySendError::Disconnected(_)) => return true,
            Err(TrySendError::Full(m)) => {
                if std::time::Instant::now() >= deadline {
                    return false;
                }
                msg = m;
                // The queue is full: wait for the worker to make room (it is writing).
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
    done_rx
        .recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
        .is_ok()
}

/// Flushes a [`Background`] sink's queue (waiting at most 5 s) and stops its thread when
/// dropped; lines still queued after that, or written later, are counted as dropped.
#[must_use = "dropping the guard stops the sink's thread; hold it until the end of main"]
pub struct BackgroundGuard {
    tx: Mutex<Option<SyncSender<Msg>>>,
    counters: Arc<Counters>,
    handle: Option<JoinHandle<()>>,
    _registration: strata_core::flush::Registration,
}

impl std::fmt::Debug for BackgroundGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackgroundGuard").finish_non_exhaustive()
    }
}

impl BackgroundGuard {
    /// Reads the lines lost — dropped (the queue was full) or failed to be written — also
    /// after the guard is gone.
    pub(crate) fn dropped_counter(&self) -> impl Fn() -> u64 + Send + Sync + 'static {
        let counters = Arc::clone(&self.counters);
        move || {
            counters.dropped.load(Ordering::Relaxed) + counters.write_errors.load(Ordering::Relaxed)
        }
    }

    /// Lines dropped so far (the same as [`Background::dropped`]).
    pub fn dropped(&self) -> u64 {
        self.counters.dropped.load(Ordering::Relaxed)
    }

    /// Waits (at most `timeout`) until everything queued so far has been written; `false`
    /// when the time ran out.
    pub fn flush(&self, timeout: Duration) -> bool {
        let tx = self.tx.lock().unwrap_or_else(|e| e.into_inner()).clone();
        tx.is_none_or(|tx| flush_queue(&tx, timeout))
    }
}

impl Drop for BackgroundGuard {
    fn drop(&mut self) {
        let flushed = self.flush(Duration::from_secs(5));
        self.counters.stop.store(true, Ordering::Release);
        if let Some(tx) = self.tx.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = tx.try_send(Msg::Stop);
        }
        // After a clean flush the worker is idle and stops at once; after a timeout it is stuck
        // in a write and is left to finish on its own rather than hang the shutdown.
        if let Some(h) = self.handle.take()
            && flushed
        {
            let _ = h.join();
        }
    }
}
