//! Alert sinks: Slack, Discord, PagerDuty Events v2, a generic JSON webhook and SMTP email,
//! delivered in the background under an [`AlertPolicy`].
//!
//! The caller only copies the rendered line into a bounded queue (a full queue drops the line
//! and counts it): parsing, the policy, retries and the network all happen on the sink's own
//! thread.

mod deliver;
mod payload;
mod policy;

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc as std_mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use lettre::message::{Mailbox, header::ContentType};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use reqwest::Url;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;

pub use deliver::Retry;
pub use policy::AlertPolicy;

use self::deliver::Attempt;
use self::payload::Occurrence;
use self::policy::{Decision, Kind, PolicyState};
use crate::router::{EventInfo, Format, Route, RouteFilter, Sink};

/// An alert destination could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AlertError {
    /// A URL that does not parse, or is not `http`/`https`.
    #[error("invalid {what} URL: {reason}")]
    InvalidUrl {
        /// Which URL (`slack webhook`, `smtp server`, …).
        what: &'static str,
        /// What is wrong with it (never the URL itself: it holds a secret).
        reason: String,
    },
    /// An `https` URL while the crate was built without its `tls` feature.
    #[error("{what} uses https but strata-router was built without its `tls` feature")]
    TlsDisabled {
        /// Which URL.
        what: &'static str,
    },
    /// A header name or value that is not valid HTTP (CR/LF, non-visible bytes).
    #[error("invalid HTTP header {name:?}: names are tokens, values visible ASCII without CR/LF")]
    InvalidHeader {
        /// The header name as given.
        name: String,
    },
    /// An email address that does not parse.
    #[error("invalid email address {address:?}: {reason}")]
    InvalidAddress {
        /// The address as given.
        address: String,
        /// Why.
        reason: String,
    },
    /// A value that is empty or out of range.
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// Which setting.
        what: &'static str,
        /// Why.
        reason: &'static str,
    },
    /// The TLS configuration could not be built.
    #[error("TLS setup failed: {0}")]
    Tls(String),
    /// The delivery thread could not be started.
    #[error("could not start the alert thread: {0}")]
    Spawn(#[from] io::Error),
}

enum Dest {
    Slack(Url),
    Discord(Url),
    PagerDuty {
        routing_key: String,
        url: Url,
    },
    Webhook(Url),
    Email {
        transport: AsyncSmtpTransport<Tokio1Executor>,
        server: String,
        from: Mailbox,
        to: Vec<Mailbox>,
    },
}

/// Where an [`AlertSink`] sends: its constructors check the URL, key or addresses at once.
///
/// Webhook URLs and SMTP credentials are secrets: `Debug` shows only the scheme and host, and
/// no error message contains them.
pub struct Destination {
    dest: Dest,
    headers: HeaderMap,
}

/// The PagerDuty Events API v2 endpoint.
pub const PAGERDUTY_EVENTS_URL: &str = "https://events.pagerduty.com/v2/enqueue";

fn http_url(what: &'static str, url: &str) -> Result<Url, AlertError> {
    let parsed = Url::parse(url.trim()).map_err(|e| AlertError::InvalidUrl {
        what,
        reason: e.to_string(),
    })?;
    match parsed.scheme() {
        "http" => {}
        "https" if cfg!(feature = "tls") => {}
        "https" => return Err(AlertError::TlsDisabled { what }),
        other => {
            return Err(AlertError::InvalidUrl {
                what,
                reason: format!("scheme {other:?}; expected http or https"),
            });
        }
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(AlertError::InvalidUrl {
            what,
            reason: "no host".to_owned(),
        });
    }
    Ok(parsed)
}

fn mailbox(address: &str) -> Result<Mailbox, AlertError> {
    address
        .parse::<Mailbox>()
        .map_err(|e| AlertError::InvalidAddress {
            address: address.to_owned(),
            reason: e.to_string(),
        })
}

impl Destination {
    fn new(dest: Dest) -> Self {
        Destination {
            dest,
            headers: HeaderMap::new(),
        }
    }

    /// A Slack incoming webhook (`https://hooks.slack.com/services/…`).
    ///
    /// # Errors
    ///
    /// [`AlertError::InvalidUrl`] or [`AlertError::TlsDisabled`].
    pub fn slack(webhook_url: &str) -> Result<Self, AlertError> {
        Ok(Self::new(Dest::Slack(http_url(
            "slack webhook",
            webhook_url,
        )?)))
    }

    /// A Discord webhook (`https://discord.com/api/webhooks/…`).
    ///
    /// # Errors
    ///
    /// [`AlertError::InvalidUrl`] or [`AlertError::TlsDisabled`].
    pub fn discord(webhook_url: &str) -> Result<Self, AlertError> {
        Ok(Self::new(Dest::Discord(http_url(
            "discord webhook",
            webhook_url,
        )?)))
    }

    /// PagerDuty Events API v2 with an integration's routing key, at
    /// [`PAGERDUTY_EVENTS_URL`].
    ///
    /// # Errors
    ///
    /// [`AlertError::Invalid`] when the key is empty, longer than 64 characters or not
    /// alphanumeric.
    pub fn pagerduty(routing_key: &str) -> Result<Self, AlertError> {
        Self::pagerduty_at(routing_key, PAGERDUTY_EVENTS_URL)
    }

    /// PagerDuty Events API v2 at another endpoint (the EU service region, a proxy, a test
    /// receiver).
    ///
    /// # Errors
    ///
    /// As [`Destination::pagerduty`], and [`AlertError::InvalidUrl`].
    pub fn pagerduty_at(routing_key: &str, url: &str) -> Result<Self, AlertError> {
        let key = routing_key.trim();
        if key.is_empty() || key.len() > 64 || !key.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(AlertError::Invalid {
                what: "pagerduty routing key",
                reason: "expected 1 to 64 letters and digits (the integration key)",
            });
        }
        Ok(Self::new(Dest::PagerDuty {
            routing_key: key.to_owned(),
            url: http_url("pagerduty", url)?,
        }))
    }

    /// A generic JSON webhook: each alert is POSTed as one JSON object (see the crate docs
    /// for its fields). Add authentication with [`Destination::with_header`].
    ///
    /// # Errors
    ///
    /// [`AlertError::InvalidUrl`] or [`AlertError::TlsDisabled`].
    pub fn webhook(url: &str) -> Result<Self, AlertError> {
        Ok(Self::new(Dest::Webhook(http_url("webhook", url)?)))
    }

    /// Email over SMTP. `smtp_url` is `smtp://host:port` (plain, or STARTTLS with
    /// `?tls=required`) or `smtps://host:465` (TLS); `user:password@` is accepted only with TLS.
    ///
    /// # Errors
    ///
    /// [`AlertError::InvalidUrl`] for the server, [`AlertError::InvalidAddress`] for an
    /// address, [`AlertError::Invalid`] when `to` is empty.
    pub fn email(smtp_url: &str, from: &str, to: &[&str]) -> Result<Self, AlertError> {
        let parsed = Url::parse(smtp_url.trim()).map_err(|e| AlertError::InvalidUrl {
            what: "smtp server",
            reason: e.to_string(),
        })?;
        let tls = parsed.scheme() == "smtps"
            // lettre reads the first `tls` parameter; so do we.
            || parsed
                .query_pairs()
                .find(|(k, _)| k == "tls")
                .is_some_and(|(_, v)| v == "required");
        if (!parsed.username().is_empty() || parsed.password().is_some()) && !tls {
            return Err(AlertError::InvalidUrl {
                what: "smtp server",
                reason: "credentials need TLS: use smtps:// or ?tls=required, or the password \
                         would cross the network in clear text"
                    .to_owned(),
            });
        }
        let server = format!(
            "{}://{}:{}",
            parsed.scheme(),
            parsed.host_str().unwrap_or("-"),
            parsed.port().unwrap_or(0)
        );
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(smtp_url.trim())
            .map_err(|e| AlertError::InvalidUrl {
                what: "smtp server",
                reason: e.to_string(),
            })?
            .timeout(Some(Duration::from_secs(10)))
            .build();
        if to.is_empty() {
            return Err(AlertError::Invalid {
                what: "email recipients",
                reason: "at least one address is needed",
            });
        }
        Ok(Self::new(Dest::Email {
            transport,
            server,
            from: mailbox(from)?,
            to: to.iter().map(|a| mailbox(a)).collect::<Result<_, _>>()?,
        }))
    }

    /// Adds an HTTP header to every request (e.g. `Authorization` for a webhook).
    ///
    /// # Errors
    ///
    /// [`AlertError::InvalidHeader`] when the name or value is not valid HTTP (a CR or LF
    /// would let a value inject headers of its own).
    pub fn with_header(mut self, name: &str, value: &str) -> Result<Self, AlertError> {
        let bad = || AlertError::InvalidHeader {
            name: name.to_owned(),
        };
        let n = HeaderName::from_bytes(name.as_bytes()).map_err(|_| bad())?;
        let mut v = HeaderValue::from_str(value).map_err(|_| bad())?;
        v.set_sensitive(true);
        self.headers.append(n, v);
        Ok(self)
    }

    /// `slack`, `discord`, `pagerduty`, `webhook` or `email`.
    pub fn kind(&self) -> &'static str {
        match self.dest {
            Dest::Slack(_) => "slack",
            Dest::Discord(_) => "discord",
            Dest::PagerDuty { .. } => "pagerduty",
            Dest::Webhook(_) => "webhook",
            Dest::Email { .. } => "email",
        }
    }

    fn url(&self) -> Option<&Url> {
        match &self.dest {
            Dest::Slack(u)
            | Dest::Discord(u)
            | Dest::Webhook(u)
            | Dest::PagerDuty { url: u, .. } => Some(u),
            Dest::Email { .. } => None,
        }
    }
}

impl fmt::Debug for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = match (&self.dest, self.url()) {
            (Dest::Email { server, .. }, _) => server.clone(),
            (_, Some(u)) => format!("{}://{}", u.scheme(), u.host_str().unwrap_or("-")),
            (_, None) => String::new(),
        };
        f.debug_struct("Destination")
            .field("kind", &self.kind())
            .field("at", &at)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Default)]
struct Counters {
    accepted: AtomicU64,
    dropped: AtomicU64,
    sent: AtomicU64,
    failed: AtomicU64,
    retries: AtomicU64,
    held: AtomicU64,
    folded: AtomicU64,
    suppressed: AtomicU64,
    digests: AtomicU64,
    over_budget: AtomicU64,
    /// Failed attempts since the last success (for reporting once per outage).
    failing: AtomicU64,
    /// Bytes of lines in the queue.
    queued_bytes: std::sync::atomic::AtomicUsize,
    /// Set when the guard is dropped: retries stop waiting, so shutdown stays bounded.
    closing: std::sync::atomic::AtomicBool,
}

/// What an alert sink has done so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct AlertStats {
    /// Lines taken into the queue.
    pub accepted: u64,
    /// Lines dropped: the queue was full or the sink had stopped.
    pub dropped: u64,
    /// Alerts delivered.
    pub sent: u64,
    /// Alerts given up on (after the last retry, or refused for good).
    pub failed: u64,
    /// Retries made.
    pub retries: u64,
    /// External-class occurrences held below the escalation threshold.
    pub held: u64,
    /// Occurrences folded into digests.
    pub folded: u64,
    /// Business-class occurrences (never alert).
    pub suppressed: u64,
    /// Digests and budget summaries sent or being sent.
    pub digests: u64,
    /// New alerts held back by the budget (reported in the next summary).
    pub over_budget: u64,
}

/// The longest line an alert sink queues, in bytes (longer ones are dropped and counted).
const MAX_LINE: usize = 1 << 20;
/// The most bytes of lines an alert sink holds in its queue; lines beyond are dropped and
/// counted, like lines beyond the queue's capacity in lines.
const MAX_QUEUED_BYTES: usize = 8 << 20;

enum Msg {
    Event(EventInfo, Vec<u8>),
    Flush(std_mpsc::SyncSender<()>),
    Shutdown(std_mpsc::SyncSender<()>),
}

/// A sink that turns error events into alerts for one [`Destination`]; use it with
/// [`Route::alert`].
///
/// ```no_run
/// use strata_core::Severity;
/// use strata_router::{AlertPolicy, AlertSink, Destination, Route, RouteFilter, RouterLayer};
/// use tracing_subscriber::prelude::*;
///
/// let slack = Destination::slack("https://hooks.slack.com/services/T000/B000/XXXX")?;
/// let (sink, _guard) = AlertSink::new(slack).with_policy(AlertPolicy::default()).spawn()?;
/// let errors = RouteFilter::default().with_levels(Severity::Error, Severity::Critical);
/// let router = RouterLayer::new().with_route(Route::alert(errors, sink));
/// tracing_subscriber::registry().with(router).init();
/// strata_core::critical!("database unreachable");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct AlertSink {
    dest: Option<Destination>,
    policy: AlertPolicy,
    retry: Retry,
    capacity: usize,
    concurrency: usize,
    timeout: Duration,
    tx: Option<mpsc::Sender<Msg>>,
    counters: Arc<Counters>,
    kind: &'static str,
}

impl fmt::Debug for AlertSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AlertSink")
            .field("kind", &self.kind)
            .field("policy", &self.policy)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl AlertSink {
    /// A sink for `dest` with the default policy, retries, a queue of 1024 lines, 4 deliveries
    /// at a time and a 10 s timeout per request; call [`AlertSink::spawn`] to start it.
    pub fn new(dest: Destination) -> Self {
        AlertSink {
            kind: dest.kind(),
            dest: Some(dest),
            policy: AlertPolicy::default(),
            retry: Retry::default(),
            capacity: 1024,
            concurrency: 4,
            timeout: Duration::from_secs(10),
            tx: None,
            counters: Arc::default(),
        }
    }

    /// The alert policy. Default: [`AlertPolicy::default`].
    #[must_use]
    pub fn with_policy(mut self, policy: AlertPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Retries. Default: [`Retry::default`].
    #[must_use]
    pub fn with_retry(mut self, retry: Retry) -> Self {
        self.retry = retry;
        self
    }

    /// The queue's capacity in lines. Default: 1024.
    #[must_use]
    pub fn with_queue_capacity(mut self, lines: usize) -> Self {
        self.capacity = lines.max(1);
        self
    }

    /// Deliveries in flight at once. Default: 4.
    #[must_use]
    pub fn with_concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// The timeout of one request (connect, send, response). Default: 10 s.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Starts the delivery thread. The returned sink goes into a route; the guard sends pending
    /// digests, waits for deliveries in flight (bounded) and stops the thread when dropped.
    ///
    /// # Errors
    ///
    /// [`AlertError::Tls`] when the HTTPS client cannot be built, [`AlertError::Spawn`] when
    /// the thread cannot be started.
    pub fn spawn(mut self) -> Result<(AlertSink, AlertGuard), AlertError> {
        let dest = self.dest.take().expect("spawn is called once");
        let client = http_client(self.timeout)?;
        let (tx, rx) = mpsc::channel(self.capacity);
        let closing = Arc::new(tokio::sync::Notify::new());
        let worker = Worker {
            dest,
            client,
            retry: self.retry,
            counters: Arc::clone(&self.counters),
            not_before: Mutex::new(None),
            kind: self.kind,
            timeout: self.timeout,
            closing: Arc::clone(&closing),
        };
        let (policy, concurrency) = (self.policy, self.concurrency);
        let handle = std::thread::Builder::new()
            .name(format!("strata-alert-{}", self.kind))
            .spawn(move || worker.run(rx, policy, concurrency))?;
        self.tx = Some(tx.clone());
        let for_flush = tx.clone();
        let registration =
            strata_core::flush::register("strata-router alert sink", move |deadline| {
                request(
                    &for_flush,
                    Msg::Flush,
                    deadline.saturating_duration_since(Instant::now()),
                );
            });
        let guard = AlertGuard {
            closing,
            _registration: registration,
            tx: Some(tx),
            counters: Arc::clone(&self.counters),
            handle: Some(handle),
            timeout: Duration::from_secs(10),
        };
        Ok((self, guard))
    }

    /// What the sink has done so far.
    pub fn stats(&self) -> AlertStats {
        stats(&self.counters)
    }
}

fn stats(c: &Counters) -> AlertStats {
    let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
    AlertStats {
        accepted: l(&c.accepted),
        dropped: l(&c.dropped),
        sent: l(&c.sent),
        failed: l(&c.failed),
        retries: l(&c.retries),
        held: l(&c.held),
        folded: l(&c.folded),
        suppressed: l(&c.suppressed),
        digests: l(&c.digests),
        over_budget: l(&c.over_budget),
    }
}

fn http_client(timeout: Duration) -> Result<reqwest::Client, AlertError> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("strata-router/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| AlertError::Tls(error_text(&e.without_url())))
}

/// An error and its sources, `: `-separated (reqwest's own message is terse).
fn error_text(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        let t = inner.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = inner.source();
    }
    s
}

impl Sink for AlertSink {
    fn write_line(&self, line: &[u8]) -> io::Result<()> {
        let info = EventInfo::new(strata_core::Severity::Error, crate::router::line_metadata());
        self.write_event(&info, line)
    }

    fn write_event(&self, event: &EventInfo, line: &[u8]) -> io::Result<()> {
        // Memory is bounded in bytes as well as in lines; a line over 1 MiB (cut, it would lose
        // its class and fields) is dropped and counted.
        let queued = &self.counters.queued_bytes;
        let room = line.len() <= MAX_LINE
            && queued.fetch_add(line.len(), Ordering::Relaxed) + line.len() <= MAX_QUEUED_BYTES;
        let sent = room
            && self
                .tx
                .as_ref()
                .is_some_and(|tx| tx.try_send(Msg::Event(*event, line.to_vec())).is_ok());
        if !sent && line.len() <= MAX_LINE {
            queued.fetch_sub(line.len(), Ordering::Relaxed);
        }
        let counter = if sent {
            &self.counters.accepted
        } else {
            &self.counters.dropped
        };
        counter.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Waits (at most 10 s) until the queued lines are processed and deliveries in flight are
    /// done.
    fn flush(&self) -> io::Result<()> {
        match &self.tx {
            Some(tx) if !request(tx, Msg::Flush, Duration::from_secs(10)) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "alert sink: flush timed out",
            )),
            _ => Ok(()),
        }
    }

    fn is_network(&self) -> bool {
        true
    }
}

/// Sends a message carrying an acknowledgement channel and waits for the acknowledgement.
fn request(
    tx: &mpsc::Sender<Msg>,
    make: fn(std_mpsc::SyncSender<()>) -> Msg,
    timeout: Duration,
) -> bool {
    let deadline = Instant::now() + timeout;
    let (ack_tx, ack_rx) = std_mpsc::sync_channel(1);
    let mut msg = make(ack_tx);
    loop {
        match tx.try_send(msg) {
            Ok(()) => break,
            // The worker is gone (it stopped, or its runtime could not start).
            Err(mpsc::error::TrySendError::Closed(_)) => return true,
            Err(mpsc::error::TrySendError::Full(m)) => {
                if Instant::now() >= deadline {
                    return false;
                }
                msg = m;
                // The queue is full: the worker is busy; wait for room.
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
    ack_rx
        .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        .is_ok()
}

/// Sends pending digests, waits (at most 10 s) for deliveries in flight and stops the alert
/// thread when dropped.
#[must_use = "dropping the guard stops alert delivery; hold it until the end of main"]
pub struct AlertGuard {
    closing: Arc<tokio::sync::Notify>,
    _registration: strata_core::flush::Registration,
    tx: Option<mpsc::Sender<Msg>>,
    counters: Arc<Counters>,
    handle: Option<JoinHandle<()>>,
    timeout: Duration,
}

impl fmt::Debug for AlertGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AlertGuard")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl AlertGuard {
    /// How long dropping the guard waits for deliveries. Default: 10 s.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// What the sink has done so far (the same as [`AlertSink::stats`]).
    pub fn stats(&self) -> AlertStats {
        stats(&self.counters)
    }

    /// Reads what was lost — lines dropped (the queue was full) and alerts given up on —
    /// also after the guard is gone.
    pub(crate) fn dropped_counter(&self) -> impl Fn() -> u64 + Send + Sync + 'static {
        let counters = Arc::clone(&self.counters);
        move || {
            let s = stats(&counters);
            s.dropped + s.failed
        }
    }

    /// Waits (at most `timeout`) until the lines queued so far are processed and the
    /// deliveries they started are done (retries included); `false` when time ran out.
    pub fn flush(&self, timeout: Duration) -> bool {
        self.tx
            .as_ref()
            .is_none_or(|tx| request(tx, Msg::Flush, timeout))
    }
}

impl Drop for AlertGuard {
    fn drop(&mut self) {
        self.counters.closing.store(true, Ordering::Relaxed);
        self.closing.notify_waiters();
        let done = self
            .tx
            .take()
            .is_none_or(|tx| request(&tx, Msg::Shutdown, self.timeout));
        if let Some(h) = self.handle.take()
            && done
        {
            let _ = h.join();
        }
    }
}

struct Worker {
    dest: Destination,
    client: reqwest::Client,
    retry: Retry,
    counters: Arc<Counters>,
    /// Set by a 429 / `Retry-After`: no request before then.
    not_before: Mutex<Option<Instant>>,
    kind: &'static str,
    timeout: Duration,
    /// Woken when the guard is dropped.
    closing: Arc<tokio::sync::Notify>,
}

impl Worker {
    fn run(self, mut rx: mpsc::Receiver<Msg>, policy: AlertPolicy, concurrency: usize) {
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                eprintln!(
                    "strata-router: the {} alert thread could not start a runtime: {e}; alerts are dropped",
                    self.kind
                );
                return;
            }
        };
        let worker = Arc::new(self);
        rt.block_on(async move {
            let mut state = PolicyState::<Occurrence>::new(policy);
            let slots = Arc::new(Semaphore::new(concurrency));
            let mut tasks = JoinSet::new();
            loop {
                let due = state.next_due();
                let msg = tokio::select! {
                    msg = rx.recv() => msg,
                    () = sleep_until(due), if due.is_some() => {
                        for (occ, kind) in state.due(Instant::now(), false) {
                            worker.start(&mut tasks, &slots, occ, kind).await;
                        }
                        continue;
                    }
                    Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                        worker.reaped(done);
                        continue;
                    }
                };
                match msg {
                    Some(Msg::Event(info, line)) => {
                        worker
                            .counters
                            .queued_bytes
                            .fetch_sub(line.len(), Ordering::Relaxed);
                        let occ = Occurrence::parse(&info, &line);
                        let decision = state.observe(
                            occ.fingerprint.0,
                            occ.severity,
                            occ.class,
                            occ.clone(),
                            Instant::now(),
                        );
                        let c = &worker.counters;
                        match decision {
                            Decision::Send(kind) => {
                                worker.start(&mut tasks, &slots, occ, kind).await
                            }
                            Decision::Fold => _ = c.folded.fetch_add(1, Ordering::Relaxed),
                            Decision::Hold => _ = c.held.fetch_add(1, Ordering::Relaxed),
                            Decision::Suppress => _ = c.suppressed.fetch_add(1, Ordering::Relaxed),
                            Decision::OverBudget => {
                                _ = c.over_budget.fetch_add(1, Ordering::Relaxed)
                            }
                        }
                    }
                    Some(Msg::Flush(ack)) => {
                        while let Some(done) = tasks.join_next().await {
                            worker.reaped(done);
                        }
                        let _ = ack.send(());
                    }
                    Some(Msg::Shutdown(ack)) => {
                        for (occ, kind) in state.due(Instant::now(), true) {
                            worker.start(&mut tasks, &slots, occ, kind).await;
                        }
                        while let Some(done) = tasks.join_next().await {
                            worker.reaped(done);
                        }
                        let _ = ack.send(());
                        return;
                    }
                    None => return,
                }
            }
        });
        // DNS lookups run on the runtime's blocking threads; never wait for them at exit.
        rt.shutdown_background();
    }

    /// Counts a delivery task that panicked (a bug; the alert is lost, so say so).
    fn reaped(&self, done: Result<(), tokio::task::JoinError>) {
        if let Err(e) = done {
            self.counters.failed.fetch_add(1, Ordering::Relaxed);
            eprintln!(
                "strata-router: a {} alert delivery failed unexpectedly: {e}",
                self.kind
            );
        }
    }

    /// Starts one delivery, waiting for a free slot first (which is what bounds memory: while
    /// all slots are busy the queue fills and the callers' lines are dropped and counted).
    async fn start(
        self: &Arc<Self>,
        tasks: &mut JoinSet<()>,
        slots: &Arc<Semaphore>,
        occ: Occurrence,
        kind: Kind,
    ) {
        if matches!(kind, Kind::Digest { .. } | Kind::Overflow { .. }) {
            self.counters.digests.fetch_add(1, Ordering::Relaxed);
        }
        let Ok(permit) = Arc::clone(slots).acquire_owned().await else {
            return;
        };
        let me = Arc::clone(self);
        tasks.spawn(async move {
            me.deliver(&occ, kind).await;
            drop(permit);
        });
    }

    async fn deliver(&self, occ: &Occurrence, kind: Kind) {
        let c = &self.counters;
        for attempt in 1..=self.retry.attempts {
            let wait = self
                .not_before
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .map(|t| t.saturating_duration_since(Instant::now()));
            if let Some(wait) = wait.filter(|w| !w.is_zero())
                && self.sleep_unless_closing(wait).await
            {
                c.failed.fetch_add(1, Ordering::Relaxed);
                return;
            }
            match self.attempt(occ, kind).await {
                Attempt::Sent => {
                    c.sent.fetch_add(1, Ordering::Relaxed);
                    let failures = c.failing.swap(0, Ordering::Relaxed);
                    if failures > 0 {
                        eprintln!(
                            "strata-router: {} alerts are delivered again (after {failures} failed attempts)",
                            self.kind
                        );
                    }
                    return;
                }
                Attempt::Fail(reason) => {
                    self.report(&reason);
                    c.failed.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Attempt::Retry { reason, after } => {
                    self.report(&reason);
                    if attempt == self.retry.attempts || c.closing.load(Ordering::Relaxed) {
                        c.failed.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                    c.retries.fetch_add(1, Ordering::Relaxed);
                    let delay = match after.filter(|a| !a.is_zero()) {
                        Some(after) => {
                            let after = after.min(self.retry.max_retry_after);
                            *self.not_before.lock().unwrap_or_else(|e| e.into_inner()) =
                                Some(Instant::now() + after);
                            after
                        }
                        None => self.retry.backoff(attempt),
                    };
                    // Shutdown cuts the wait short (and gives up on this alert).
                    if self.sleep_unless_closing(delay).await {
                        c.failed.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                }
            }
        }
    }

    /// Sleeps for `d`; `true` when the guard was dropped meanwhile (or before).
    async fn sleep_unless_closing(&self, d: Duration) -> bool {
        let notified = self.closing.notified();
        if self.counters.closing.load(Ordering::Relaxed) {
            return true;
        }
        tokio::select! {
            () = tokio::time::sleep(d) => false,
            () = notified => true,
        }
    }

    /// Says on stderr, once per outage, that deliveries fail; counts the rest.
    fn report(&self, reason: &str) {
        if self.counters.failing.fetch_add(1, Ordering::Relaxed) == 0 {
            eprintln!(
                "strata-router: {} alert delivery failed: {reason}; retrying, further failures are counted until it recovers",
                self.kind
            );
        }
    }

    async fn attempt(&self, occ: &Occurrence, kind: Kind) -> Attempt {
        let (url, body) = match &self.dest.dest {
            Dest::Slack(url) => (url, payload::slack(occ, kind)),
            Dest::Discord(url) => (url, payload::discord(occ, kind)),
            Dest::PagerDuty { routing_key, url } => {
                (url, payload::pagerduty(occ, kind, routing_key, &occ.target))
            }
            Dest::Webhook(url) => (url, payload::webhook(occ, kind)),
            Dest::Email {
                transport,
                from,
                to,
                ..
            } => {
                // lettre's timeout is per read/write; bound the whole conversation too.
                return tokio::time::timeout(
                    self.timeout,
                    send_email(transport, from, to, occ, kind),
                )
                .await
                .unwrap_or_else(|_| Attempt::Retry {
                    reason: format!("SMTP delivery took longer than {:?}", self.timeout),
                    after: None,
                });
            }
        };
        let request = self
            .client
            .post(url.clone())
            .header(CONTENT_TYPE, "application/json")
            .headers(self.dest.headers.clone())
            .body(serde_json::to_vec(&body).unwrap_or_default());
        match request.send().await {
            Err(e) => Attempt::Retry {
                reason: error_text(&e.without_url()),
                after: None,
            },
            Ok(mut response) => {
                let status = response.status();
                let headers = response.headers().clone();
                // Read at most 4 KiB of the answer: enough for an error message or a
                // rate-limit hint, bounded against a hostile endless body.
                let mut body = Vec::new();
                while body.len() < 4096 {
                    match response.chunk().await {
                        Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                        Ok(None) | Err(_) => break,
                    }
                }
                deliver::classify(status, &headers, &body)
            }
        }
    }
}

async fn send_email(
    transport: &AsyncSmtpTransport<Tokio1Executor>,
    from: &Mailbox,
    to: &[Mailbox],
    occ: &Occurrence,
    kind: Kind,
) -> Attempt {
    let (subject, body) = payload::email(occ, kind);
    let mut builder = Message::builder()
        .from(from.clone())
        .subject(subject)
        .header(ContentType::TEXT_PLAIN);
    for m in to {
        builder = builder.to(m.clone());
    }
    let message = match builder.body(body) {
        Ok(m) => m,
        Err(e) => return Attempt::Fail(format!("building the email: {e}")),
    };
    match transport.send(message).await {
        Ok(_) => Attempt::Sent,
        Err(e) if e.is_permanent() => Attempt::Fail(error_text(&e)),
        Err(e) => Attempt::Retry {
            reason: error_text(&e),
            after: None,
        },
    }
}

async fn sleep_until(when: Option<Instant>) {
    match when {
        Some(t) => tokio::time::sleep_until(t.into()).await,
        None => std::future::pending().await,
    }
}

impl Route {
    /// A route to an alert sink: events are rendered in strata's default JSON schema (which
    /// the sink reads its fields from), masked with the router's rules when it has some
    /// ([`RouterLayer::with_redaction`](crate::RouterLayer::with_redaction)).
    pub fn alert(filter: RouteFilter, sink: AlertSink) -> Route {
        Route::new(filter, Format::Json(strata_json::JsonFormat::new()), sink)
    }
}
