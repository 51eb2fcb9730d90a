//! The requests and jobs in flight: every open `request` and `job` span of strata-request-id,
//! registered when it opens and removed when it closes, readable at any moment — to find the
//! stuck one by its request ID.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use serde_json::{Map, Value, json};
use strata_core::SpanFields;
use tracing_core::dispatcher::WeakDispatch;
use tracing_core::span::{Attributes, Id};
use tracing_core::{Dispatch, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

/// Stripes of the registry: spans opening and closing on different threads rarely meet on a
/// lock.
const STRIPES: usize = 16;

/// Slots of the counting filter that lets a closing span skip the registry when no tracked
/// span shares its slot.
const SLOTS: usize = 1024;

/// The counting filter's slot of a span ID (Fibonacci hashing: IDs are consecutive).
#[inline]
fn slot(id: u64) -> usize {
    (id.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 54) as usize
}

/// Milliseconds on a monotonic clock that costs a few nanoseconds to read (the kernel's coarse
/// clock, a few ms of resolution — enough for ages compared with seconds).
#[inline]
fn now_ms() -> u64 {
    #[cfg(target_os = "linux")]
    {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC_COARSE always exists on
        // Linux, so the call cannot fail.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
        (ts.tv_sec as u64) * 1000 + (ts.tv_nsec as u64) / 1_000_000
    }
    #[cfg(not(target_os = "linux"))]
    {
        static START: OnceLock<std::time::Instant> = OnceLock::new();
        u64::try_from(
            START
                .get_or_init(std::time::Instant::now)
                .elapsed()
                .as_millis(),
        )
        .unwrap_or(u64::MAX)
    }
}

/// Span IDs are already well spread (slab indices): the hash is the ID.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type Stripe = HashMap<u64, Entry, BuildHasherDefault<IdHasher>>;

/// What kind of work a registered span is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Kind {
    /// An HTTP request (`request` span of `RequestIdLayer`, or `request_span`).
    Request,
    /// A background job (`JobContext::span`).
    Job,
}

impl Kind {
    /// `request` or `job`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Kind::Request => "request",
            Kind::Job => "job",
        }
    }
}

#[derive(Clone, Copy)]
struct Entry {
    kind: Kind,
    /// [`now_ms`] when the span opened.
    started_ms: u64,
    /// The "still running" WARN was logged.
    reported: bool,
}

struct Shared {
    stripes: [Mutex<Stripe>; STRIPES],
    /// Tracked spans open per [`slot`].
    counts: [AtomicU32; SLOTS],
    /// Per [`slot`] of a tracked span: the span last entered inside it (`leaves`) and which
    /// tracked span that was for (`owners`; slots are shared, so a reader checks both and
    /// then walks the leaf's parents up to the tracked span).
    leaves: [AtomicU64; SLOTS],
    owners: [AtomicU64; SLOTS],
    /// Age after which a request is reported as stuck, in milliseconds.
    stuck_after_ms: AtomicU64,
    /// The subscriber the layer was added to: read span fields for snapshots from it.
    dispatch: OnceLock<WeakDispatch>,
}

thread_local! {
    /// The tracked span entered on this thread (0: none): spans entered meanwhile are its
    /// current work.
    static CURRENT: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

impl Shared {
    /// Whether span `id` is registered.
    #[inline]
    fn is_tracked(&self, id: u64) -> bool {
        self.counts[slot(id)].load(Ordering::Relaxed) > 0 && self.stripe(id).contains_key(&id)
    }

    /// The spans from tracked span `id` down to the span last entered inside it, as names
    /// (`["request", "checkout", "db.query"]`); just the tracked span's own name when the
    /// last entered span has closed since.
    fn stack(&self, registry: &tracing_subscriber::Registry, id: u64) -> Vec<&'static str> {
        use tracing_subscriber::registry::SpanData as _;
        let own: Vec<&'static str> = registry
            .span_data(&Id::from_u64(id))
            .map(|d| d.metadata().name())
            .into_iter()
            .collect();
        let s = slot(id);
        if self.owners[s].load(Ordering::Acquire) != id {
            return own;
        }
        let mut at = self.leaves[s].load(Ordering::Acquire);
        let mut chain = Vec::new();
        // Up from the leaf; a stale leaf (closed, its ID reused) never reaches `id`.
        for _ in 0..64 {
            if at == 0 {
                return own;
            }
            if at == id {
                chain.extend(own);
                chain.reverse();
                return chain;
            }
            let Some(data) = registry.span_data(&Id::from_u64(at)) else {
                return own;
            };
            chain.push(data.metadata().name());
            match data.parent() {
                Some(p) => at = p.into_u64(),
                None => return own,
            }
        }
        own
    }

    fn stripe(&self, id: u64) -> MutexGuard<'_, Stripe> {
        // Slab indices are consecutive: the low bits spread them.
        self.stripes[(id as usize) % STRIPES]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }
}

/// The registry of requests and jobs in flight. Cheap to clone; add [`Inflight::layer`] to the
/// subscriber, then read it with [`Inflight::snapshot`], log it with [`Inflight::dump`], watch
/// for stuck work with [`Inflight::spawn_watch`].
///
/// ```
/// use tracing_subscriber::prelude::*;
///
/// let inflight = strata_diagnostics::Inflight::new();
/// let _default = tracing_subscriber::registry()
///     .with(strata_core::StoreLayer::default())
///     .with(inflight.layer())
///     .set_default();
/// let span = strata_request_id::request_span(&strata_request_id::RequestId::generate());
/// assert_eq!(inflight.len(), 1);
/// drop(span);
/// assert_eq!(inflight.len(), 0);
/// ```
#[derive(Clone)]
pub struct Inflight {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Inflight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inflight")
            .field("len", &self.len())
            .field("stuck_after", &self.stuck_after())
            .finish()
    }
}

impl Default for Inflight {
    fn default() -> Self {
        Inflight::new()
    }
}

/// The span is one of strata-request-id's request or job spans.
fn tracked(meta: &Metadata<'_>) -> bool {
    meta.is_span()
        && matches!(meta.name(), "request" | "job")
        && meta.target().starts_with("strata_request_id")
}

impl Inflight {
    /// An empty registry; requests are reported as stuck after 30 s.
    pub fn new() -> Self {
        Inflight {
            shared: Arc::new(Shared {
                stripes: std::array::from_fn(|_| Mutex::new(Stripe::default())),
                counts: std::array::from_fn(|_| AtomicU32::new(0)),
                leaves: std::array::from_fn(|_| AtomicU64::new(0)),
                owners: std::array::from_fn(|_| AtomicU64::new(0)),
                stuck_after_ms: AtomicU64::new(30_000),
                dispatch: OnceLock::new(),
            }),
        }
    }

    /// The age after which a request or job is reported, once, as still running. Default: 30 s.
    #[must_use]
    pub fn with_stuck_after(self, age: Duration) -> Self {
        self.shared.stuck_after_ms.store(
            u64::try_from(age.as_millis()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        self
    }

    /// The age after which work is reported as stuck.
    pub fn stuck_after(&self) -> Duration {
        Duration::from_millis(self.shared.stuck_after_ms.load(Ordering::Relaxed))
    }

    /// The layer that registers request and job spans. Other spans cost it a name comparison
    /// when they open and an atomic load when they close (cheaper than a per-layer filter,
    /// which every span would pay for).
    pub fn layer(&self) -> InflightLayer {
        InflightLayer {
            shared: Arc::clone(&self.shared),
        }
    }

    /// How many requests and jobs are in flight.
    pub fn len(&self) -> usize {
        self.shared
            .stripes
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).len())
            .sum()
    }

    /// Whether nothing is in flight.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The subscriber the layer was added to; else (a wrapper that does not pass
    /// `on_register_dispatch` on, such as `Option<Layer>`) the current default.
    fn dispatch(&self) -> Option<Dispatch> {
        self.shared
            .dispatch
            .get()
            .and_then(WeakDispatch::upgrade)
            .or_else(|| tracing::dispatcher::get_default(|d| Some(d.clone())))
    }

    /// The stack of span `id` as one string, `request > checkout > charge_card`.
    fn stack_text(&self, dispatch: Option<&Dispatch>, id: u64) -> String {
        dispatch
            .and_then(|d| d.downcast_ref::<tracing_subscriber::Registry>())
            .map(|r| self.shared.stack(r, id).join(" > "))
            .unwrap_or_default()
    }

    /// Every registered span and its entry, oldest first (each stripe locked in turn).
    fn entries(&self) -> Vec<(u64, Entry)> {
        let mut entries: Vec<(u64, Entry)> = Vec::new();
        for stripe in &self.shared.stripes {
            let stripe = stripe.lock().unwrap_or_else(|e| e.into_inner());
            entries.extend(stripe.iter().map(|(&id, &e)| (id, e)));
        }
        entries.sort_by_key(|(_, e)| e.started_ms);
        entries
    }

    /// Every request and job in flight, oldest first, with its span's fields (request ID,
    /// route, job name… when strata's span store is installed).
    pub fn snapshot(&self) -> Vec<InflightWork> {
        let now = now_ms();
        let entries = self.entries();
        let dispatch = self.dispatch();
        entries
            .into_iter()
            .map(|(id, e)| InflightWork {
                span_id: id,
                kind: e.kind,
                age: Duration::from_millis(now.saturating_sub(e.started_ms)),
                fields: dispatch
                    .as_ref()
                    .map(|d| span_fields(d, id))
                    .unwrap_or_default(),
                stack: dispatch
                    .as_ref()
                    .and_then(|d| d.downcast_ref::<tracing_subscriber::Registry>())
                    .map(|r| self.shared.stack(r, id))
                    .unwrap_or_default(),
            })
            .collect()
    }

    /// Logs what is in flight: one INFO line `in_flight` with the count, then one per request
    /// or job, in its own span (so it carries its request ID and route), with `age_ms`.
    /// Returns how many were logged.
    pub fn dump(&self) -> usize {
        let now = now_ms();
        let entries = self.entries();
        let dispatch = self.dispatch();
        tracing::info!(
            target: "strata_diagnostics",
            event = "in_flight",
            count = entries.len(),
            "{} requests and jobs in flight",
            entries.len()
        );
        let mut logged = 0;
        for (id, _) in entries {
            // Under the stripe's lock: the span cannot close (and its ID be reused) meanwhile.
            let stripe = self.shared.stripe(id);
            let Some(e) = stripe.get(&id) else { continue };
            let age = Duration::from_millis(now.saturating_sub(e.started_ms));
            tracing::info!(
                target: "strata_diagnostics",
                parent: Id::from_u64(id),
                event = "in_flight_work",
                kind = e.kind.as_str(),
                age_ms = millis(age),
                stack = self.stack_text(dispatch.as_ref(), id),
                "{} in flight for {} ms",
                e.kind.as_str(),
                millis(age)
            );
            logged += 1;
        }
        logged
    }

    /// Logs, once each, the requests and jobs older than [`Inflight::stuck_after`]: a WARN
    /// `still running after 30 s` in the work's own span, with `age_ms`. Returns how many
    /// were reported by this call.
    pub fn check_stuck(&self) -> usize {
        let limit = self.stuck_after();
        let now = now_ms();
        let dispatch = self.dispatch();
        let mut reported = 0;
        for stripe in &self.shared.stripes {
            let mut stripe = stripe.lock().unwrap_or_else(|e| e.into_inner());
            for (&id, e) in stripe.iter_mut() {
                let age = Duration::from_millis(now.saturating_sub(e.started_ms));
                if e.reported || age < limit {
                    continue;
                }
                e.reported = true;
                reported += 1;
                // Under the stripe's lock: the span stays open while its line is written.
                tracing::warn!(
                    target: "strata_diagnostics",
                    parent: Id::from_u64(id),
                    event = "stuck",
                    kind = e.kind.as_str(),
                    age_ms = millis(age),
                    stack = self.stack_text(dispatch.as_ref(), id),
                    stuck_after_ms = millis(limit),
                    "{} still running after {} s",
                    e.kind.as_str(),
                    limit.as_secs_f64()
                );
            }
        }
        reported
    }

    /// Checks for stuck work every `every` on a thread of its own (named `strata-inflight`)
    /// until the returned guard is dropped.
    ///
    /// # Errors
    ///
    /// When the thread cannot be spawned.
    pub fn spawn_watch(&self, every: Duration) -> std::io::Result<WatchGuard> {
        let inflight = self.clone();
        crate::periodic::Periodic::spawn("strata-inflight", every, move || {
            inflight.check_stuck();
        })
        .map(|p| WatchGuard { _thread: p })
    }

    /// Logs what is in flight ([`Inflight::dump`]) each time the process receives SIGUSR1
    /// (`kill -USR1 <pid>`), from a task on the current tokio runtime, until the handle is
    /// aborted.
    ///
    /// # Errors
    ///
    /// When the signal handler cannot be installed.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    #[cfg(unix)]
    pub fn dump_on_sigusr1(&self) -> std::io::Result<tokio::task::JoinHandle<()>> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut signals = signal(SignalKind::user_defined1())?;
        let inflight = self.clone();
        Ok(tokio::spawn(async move {
            while signals.recv().await.is_some() {
                inflight.dump();
            }
        }))
    }

    /// The snapshot as JSON: `{"count": N, "stuck_after_ms": …, "work": [{"kind", "age_ms",
    /// "span_id", "fields": {…}}, …]}`, oldest first.
    pub fn to_json(&self) -> Value {
        let work: Vec<Value> = self.snapshot().iter().map(InflightWork::to_json).collect();
        json!({
            "count": work.len(),
            "stuck_after_ms": millis(self.stuck_after()),
            "work": work,
        })
    }
}

/// The fields of span `id` in strata's span store, as JSON values.
fn span_fields(dispatch: &Dispatch, id: u64) -> Map<String, Value> {
    let mut out = Map::new();
    let Some(registry) = dispatch.downcast_ref::<tracing_subscriber::Registry>() else {
        return out;
    };
    let Some(data) = registry.span_data(&Id::from_u64(id)) else {
        return out;
    };
    use tracing_subscriber::registry::SpanData as _;
    let ext = data.extensions();
    let Some(fields) = ext.get::<SpanFields>() else {
        return out;
    };
    let mut buf = Vec::new();
    for f in fields.fields() {
        buf.clear();
        f.value().write_json(&mut buf, 1024);
        if let Ok(v) = serde_json::from_slice::<Value>(&buf) {
            out.insert(f.name().to_owned(), v);
        }
    }
    out
}

/// One request or job in flight, as [`Inflight::snapshot`] saw it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct InflightWork {
    /// The span's ID (as `tracing` numbers it; reused after the span closes).
    pub span_id: u64,
    /// Request or job.
    pub kind: Kind,
    /// How long it has been running.
    pub age: Duration,
    /// The span's own fields: `request_id`, `method`, `route`, `path` for a request; `job`,
    /// `request_id` for a job (empty without strata's span store).
    pub fields: Map<String, Value>,
    /// Span names from the request or job down to the span last entered inside it — where it
    /// is (or was last) working: `["request", "checkout", "charge_card"]`.
    pub stack: Vec<&'static str>,
}

impl InflightWork {
    /// The request ID, when recorded.
    pub fn request_id(&self) -> Option<&str> {
        self.fields.get("request_id").and_then(Value::as_str)
    }

    /// As JSON: `{"kind", "age_ms", "span_id", "fields", "stack"}`.
    pub fn to_json(&self) -> Value {
        json!({
            "kind": self.kind.as_str(),
            "age_ms": millis(self.age),
            "span_id": self.span_id,
            "fields": self.fields,
            "stack": self.stack,
        })
    }
}

/// Stops the watch thread of [`Inflight::spawn_watch`] when dropped.
#[derive(Debug)]
#[must_use = "dropping the guard stops the watch"]
pub struct WatchGuard {
    _thread: crate::periodic::Periodic,
}

/// Registers request and job spans in an [`Inflight`] (made by [`Inflight::layer`]).
pub struct InflightLayer {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for InflightLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InflightLayer").finish_non_exhaustive()
    }
}

impl<S> Layer<S> for InflightLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_register_dispatch(&self, subscriber: &Dispatch) {
        let _ = self.shared.dispatch.set(subscriber.downgrade());
    }

    #[inline]
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, _ctx: Context<'_, S>) {
        if !tracked(attrs.metadata()) {
            return;
        }
        let kind = if attrs.metadata().name() == "job" {
            Kind::Job
        } else {
            Kind::Request
        };
        let entry = Entry {
            kind,
            started_ms: now_ms(),
            reported: false,
        };
        let id = id.into_u64();
        self.shared.counts[slot(id)].fetch_add(1, Ordering::Relaxed);
        self.shared.stripe(id).insert(id, entry);
    }

    /// Entering a tracked span makes it this thread's current work; entering any other span
    /// meanwhile records it as that work's innermost span.
    #[inline]
    fn on_enter(&self, id: &Id, _ctx: Context<'_, S>) {
        let id = id.into_u64();
        if self.shared.is_tracked(id) {
            CURRENT.with(|c| c.set(id));
            return;
        }
        let current = CURRENT.with(std::cell::Cell::get);
        if current != 0 {
            let s = slot(current);
            self.shared.leaves[s].store(id, Ordering::Release);
            self.shared.owners[s].store(current, Ordering::Release);
        }
    }

    #[inline]
    fn on_exit(&self, id: &Id, _ctx: Context<'_, S>) {
        let id = id.into_u64();
        CURRENT.with(|c| {
            if c.get() == id {
                c.set(0);
            }
        });
    }

    #[inline]
    fn on_close(&self, id: Id, _ctx: Context<'_, S>) {
        let id = id.into_u64();
        let count = &self.shared.counts[slot(id)];
        // No tracked span open in this slot: not one of ours (one atomic load for most spans).
        if count.load(Ordering::Relaxed) == 0 {
            return;
        }
        if self.shared.stripe(id).remove(&id).is_some() {
            count.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Whole milliseconds, saturating.
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
