//! The capture thread: resolves stacks, builds error events, masks secrets, runs the
//! before-send hook and hands each event to the local store and/or the Sentry client.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{Map, Value};
use strata_core::{ErrorClass, Redaction, Severity};

use crate::crumbs::{Crumbs, ThreadRings};
use crate::event::{ChainLink, ErrorEvent, RequestContext};

/// A hook that sees (and may change) every event before it is stored or sent; returning
/// `false` drops the event. It runs after strata's redaction (`Capture::with_redaction`), so it
/// sees masked events; rules of one's own go here.
pub type BeforeSend = Arc<dyn Fn(&mut ErrorEvent) -> bool + Send + Sync>;

/// The settings the layer and the thread share.
pub(crate) struct Config {
    pub(crate) breadcrumbs: usize,
    pub(crate) crumb_min: Severity,
    pub(crate) capture_min: Severity,
    pub(crate) backtraces: bool,
    pub(crate) in_app: Vec<String>,
    pub(crate) max_len: usize,
    pub(crate) tags: BTreeMap<String, String>,
    pub(crate) release: Option<String>,
    pub(crate) environment: Option<String>,
    pub(crate) before_send: Option<BeforeSend>,
    pub(crate) redaction: Option<Arc<Redaction>>,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) queued: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) business: AtomicU64,
    pub(crate) stored: AtomicU64,
    pub(crate) sent: AtomicU64,
    pub(crate) filtered: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) undelivered: AtomicU64,
}

/// What the capture has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CaptureStats {
    /// Error events taken into the queue.
    pub queued: u64,
    /// Error events dropped: the queue was full (the application was never held up).
    pub dropped: u64,
    /// Business-class errors kept as breadcrumbs only.
    pub business: u64,
    /// Events written to the local store.
    pub stored: u64,
    /// Events handed to the Sentry transport.
    pub sent: u64,
    /// Events the before-send hook dropped.
    pub filtered: u64,
    /// Events the store failed to write.
    pub failed: u64,
    /// Events the Sentry server did not take: unreachable, timed out, refused, or held back
    /// by its rate limits.
    pub undelivered: u64,
}

impl CaptureStats {
    /// Every event lost: dropped, failed to store, or undelivered.
    pub fn lost(&self) -> u64 {
        self.dropped + self.failed + self.undelivered
    }
}

/// What the layer and the guard share with the thread.
pub(crate) struct Shared {
    pub(crate) id: u64,
    pub(crate) cfg: Config,
    pub(crate) tx: SyncSender<Msg>,
    pub(crate) counters: Arc<Counters>,
    pub(crate) threads: ThreadRings,
}

impl Shared {
    pub(crate) fn stats(&self) -> CaptureStats {
        stats(&self.counters)
    }
}

pub(crate) fn stats(c: &Counters) -> CaptureStats {
    let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
    CaptureStats {
        queued: l(&c.queued),
        dropped: l(&c.dropped),
        business: l(&c.business),
        stored: l(&c.stored),
        sent: l(&c.sent),
        filtered: l(&c.filtered),
        failed: l(&c.failed),
        undelivered: l(&c.undelivered),
    }
}

/// What the caller's thread gathered.
pub(crate) struct Job {
    pub(crate) at: SystemTime,
    pub(crate) severity: Severity,
    pub(crate) target: &'static str,
    pub(crate) module: Option<&'static str>,
    pub(crate) location: Option<String>,
    pub(crate) message: String,
    pub(crate) chain: Vec<ChainLink>,
    pub(crate) class: Option<ErrorClass>,
    pub(crate) fields: Map<String, Value>,
    pub(crate) request: RequestContext,
    pub(crate) crumbs: Crumbs,
    /// Instruction pointers, innermost first; resolved here.
    pub(crate) stack: Vec<usize>,
    pub(crate) thread: Option<String>,
}

pub(crate) enum Msg {
    Capture(Box<Job>),
    /// Process everything before this, flush the outputs (bounded by the deadline), answer.
    Flush(Instant, SyncSender<()>),
    Stop,
}

/// Where finished events go.
pub(crate) trait Output: Send {
    /// Takes one event.
    fn take(&mut self, event: &ErrorEvent, counters: &Counters);
    /// Flushes, giving up at `deadline`.
    fn flush(&mut self, deadline: Instant) {
        let _ = deadline;
    }
}

fn event_id() -> String {
    format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..))
}

impl Job {
    pub(crate) fn into_event(self, cfg: &Config) -> ErrorEvent {
        let frames = crate::event::frames(&self.stack, &cfg.in_app);
        // A panic's or a report's site is where it happened, not strata's own log call.
        let panic_at = ["panic.location", "report.location"]
            .iter()
            .find_map(|k| self.fields.get(*k).and_then(Value::as_str))
            .map(str::to_owned);
        let message = if self.message.is_empty() {
            self.chain
                .first()
                .map(|l| l.message.clone())
                .unwrap_or_default()
        } else {
            self.message
        };
        let types: Vec<&str> = self.chain.iter().filter_map(|l| l.ty.as_deref()).collect();
        let fingerprint = strata_core::fingerprint::Fingerprint::new(
            &types,
            &message,
            panic_at
                .as_deref()
                .unwrap_or(self.module.unwrap_or(self.target)),
        );
        let unix_ms = self
            .at
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        ErrorEvent {
            event_id: event_id(),
            timestamp: strata_core::time::rfc3339(self.at),
            unix_ms,
            level: self.severity.as_str().to_owned(),
            message,
            target: self.target.to_owned(),
            module: self.module.map(str::to_owned),
            location: panic_at.or(self.location),
            class: self.class.map(|c| c.as_str().to_owned()),
            chain: self.chain,
            frames,
            breadcrumbs: self.crumbs.records(),
            request: self.request,
            tags: cfg.tags.clone(),
            fields: self.fields,
            fingerprint: fingerprint.to_string(),
            thread: self.thread,
            release: cfg.release.clone(),
            environment: cfg.environment.clone(),
        }
    }
}

thread_local! {
    /// Set on the capture thread: the panic hook must not wait for it to flush itself.
    static ON_CAPTURE_THREAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether this is the capture thread.
pub(crate) fn on_capture_thread() -> bool {
    ON_CAPTURE_THREAD
        .try_with(std::cell::Cell::get)
        .unwrap_or(false)
}

/// The thread's loop.
pub(crate) fn run(rx: &Receiver<Msg>, shared: &Shared, outputs: &mut [Box<dyn Output>]) {
    ON_CAPTURE_THREAD.with(|f| f.set(true));
    let c = &shared.counters;
    for msg in rx {
        match msg {
            Msg::Capture(job) => {
                // A panicking before-send hook or output loses this event, not the thread.
                let handled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    // The fingerprint is computed from the event as logged, so turning
                    // redaction on does not regroup errors.
                    let mut event = job.into_event(&shared.cfg);
                    if let Some(rules) = &shared.cfg.redaction {
                        event.redact(rules);
                    }
                    if let Some(hook) = &shared.cfg.before_send
                        && !hook(&mut event)
                    {
                        c.filtered.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                    for out in outputs.iter_mut() {
                        out.take(&event, c);
                    }
                }));
                if handled.is_err() {
                    c.failed.fetch_add(1, Ordering::Relaxed);
                }
            }
            Msg::Flush(deadline, ack) => {
                for out in outputs.iter_mut() {
                    out.flush(deadline);
                }
                let _ = ack.send(());
            }
            Msg::Stop => break,
        }
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    for out in outputs.iter_mut() {
        out.flush(deadline);
    }
}
