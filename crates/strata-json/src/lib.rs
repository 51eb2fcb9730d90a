//! A `tracing-subscriber` layer that writes one JSON object per event, in a fixed, documented
//! schema, fast.
//!
//! ```
//! use tracing_subscriber::prelude::*;
//!
//! let layer = strata_json::layer()
//!     .with_service("payment_api")
//!     .with_env("production")
//!     .with_version("1.4.2");
//! let subscriber = tracing_subscriber::registry().with(layer);
//! tracing::subscriber::with_default(subscriber, || {
//!     let span = tracing::info_span!("request", request_id = "0193a5c2", user_id = 314159_u64);
//!     let _enter = span.enter();
//!     tracing::info!(event = "charge_created", duration_ms = 142, "Payment successful");
//! });
//! ```
//!
//! # Example output
//!
//! Each line is one JSON object (shown wrapped here):
//!
//! ```json
//! {"timestamp":"2026-11-25T09:12:03.418207Z","level":"INFO","service":"payment_api",
//!  "env":"production","version":"1.4.2","target":"payments::charge",
//!  "message":"Payment successful","event":"charge_created","span":"request",
//!  "trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"00f067aa0ba902b7",
//!  "duration_ms":142,"request_id":"0193a5c2","user_id":314159}
//! ```
//!
//! # The schema
//!
//! - `timestamp` (RFC 3339, UTC, microseconds), `level` (`TRACE` … `ERROR`, and `CRITICAL` for
//!   events from [`strata_core::critical!`]), `service`, `env` and `version` (when set),
//!   `target`, `message` and `event` (when given), `span` (the innermost span's name),
//!   `trace_id`/`span_id` (when a tracing layer has set the span's trace context).
//! - Then every event field and every field of every enclosing span, flattened to the top
//!   level. The event's field beats a span's, a child span's beats its parent's, so a key never
//!   appears twice.
//! - A user field whose name the schema may use itself (`timestamp`, `level`, `line`…, see
//!   [`strata_core::RESERVED_KEYS`]) or that starts with `fields.` is kept as `fields.<name>`.
//!   `message` and `event` are always strings.
//! - An error recorded as `error = &e as &dyn std::error::Error` becomes
//!   `{"type":…,"message":…,"chain":[{"type":…,"message":…}]}` with its whole `source()` chain;
//!   `type` appears where it can be had (errors logged with [`strata_core::log_error!`] and
//!   standard library errors).
//! - Strings are escaped (control characters included, so a value can never forge a line),
//!   invalid UTF-8 is replaced, values longer than the maximum field length are cut with a
//!   visible `…[truncated N bytes]`, non-finite floats are written `"NaN"`, `"Infinity"`,
//!   `"-Infinity"`.
//! - Optional: `file`/`line`, `thread`, and a line per closed span with `duration_ms`.
//!
//! The JSON Schema is `docs/schema/strata-log.schema.json` in the repository.
//!
//! # Presets
//!
//! The same record mapped to other schemas ([`Preset`]); the event above becomes:
//!
//! Elastic Common Schema:
//! ```json
//! {"@timestamp":"2026-11-25T09:12:03.418207Z","log.level":"info","ecs.version":"8.11.0",
//!  "service.name":"payment_api","service.environment":"production","service.version":"1.4.2",
//!  "log.logger":"payments::charge","message":"Payment successful","event.action":"charge_created",
//!  "span.name":"request","trace.id":"4bf92f3577b34da6a3ce929d0e0e4736","span.id":"00f067aa0ba902b7",
//!  "duration_ms":142,"request_id":"0193a5c2","user_id":314159}
//! ```
//!
//! Google Cloud Logging (with [`JsonFormat::with_gcp_project`]):
//! ```json
//! {"timestamp":"2026-11-25T09:12:03.418207Z","severity":"INFO",
//!  "serviceContext":{"service":"payment_api","version":"1.4.2"},"env":"production",
//!  "target":"payments::charge","message":"Payment successful","event":"charge_created",
//!  "span":"request","logging.googleapis.com/trace":"projects/my-proj/traces/4bf92f3577b34da6a3ce929d0e0e4736",
//!  "logging.googleapis.com/spanId":"00f067aa0ba902b7","logging.googleapis.com/trace_sampled":true,
//!  "duration_ms":142,"request_id":"0193a5c2","user_id":314159}
//! ```
//!
//! OpenTelemetry log data model (timestamps are nanoseconds since the epoch, as strings):
//! ```json
//! {"Timestamp":"1795597923418207000","ObservedTimestamp":"1795597923418207000",
//!  "SeverityText":"INFO","SeverityNumber":9,
//!  "Resource":{"service.name":"payment_api","deployment.environment.name":"production","service.version":"1.4.2"},
//!  "InstrumentationScope":{"Name":"payments::charge"},"Body":"Payment successful",
//!  "EventName":"charge_created","TraceId":"4bf92f3577b34da6a3ce929d0e0e4736",
//!  "SpanId":"00f067aa0ba902b7","TraceFlags":1,
//!  "Attributes":{"duration_ms":142,"request_id":"0193a5c2","user_id":314159}}
//! ```
//!
//! # Performance
//!
//! Span fields are captured once per span by the strata-core store, with their JSON encoding;
//! an event copies those bytes. Lines are built in a per-thread buffer and written with one
//! `write_all`, so steady-state logging allocates nothing. See `docs/performance.md`.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod format;

use std::fmt;
use std::io::{self, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

pub use format::{DEFAULT_MAX_FIELD_LEN, ECS_VERSION, JsonFormat, Preset};
pub use strata_core::default_service_name;

use strata_core::store;
use tracing_core::span::{Attributes, Id, Record};
use tracing_core::{Event, Metadata, Subscriber};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

/// A new JSON layer writing to stdout in the default schema.
#[must_use]
pub fn layer() -> JsonLayer {
    JsonLayer::default()
}

/// Where lines go: anything `tracing-subscriber` can write to, behind one object-safe call.
trait LineWriter: Send + Sync + 'static {
    fn write_line(&self, meta: &Metadata<'_>, line: &[u8]) -> io::Result<()>;
    fn flush(&self) -> io::Result<()>;
}

struct MakeWriterLines<M>(M);

impl<M> LineWriter for MakeWriterLines<M>
where
    M: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    #[inline]
    fn write_line(&self, meta: &Metadata<'_>, line: &[u8]) -> io::Result<()> {
        self.0.make_writer_for(meta).write_all(line)
    }

    fn flush(&self) -> io::Result<()> {
        self.0.make_writer().flush()
    }
}

/// Counters shared by a [`JsonLayer`] and its handles.
#[derive(Debug, Default)]
struct Counters {
    write_errors: AtomicU64,
    reported: AtomicBool,
}

/// The JSON layer: renders each event with a [`JsonFormat`] and writes it as one line.
///
/// Build it with [`layer()`] and the `with_*` setters; none changes the type. Filter it like any
/// layer (`.with_filter(LevelFilter::INFO)`).
pub struct JsonLayer {
    /// This layer's id as a span-store owner.
    id: u64,
    format: JsonFormat,
    writer: Arc<dyn LineWriter>,
    span_close: bool,
    counters: Arc<Counters>,
}

impl fmt::Debug for JsonLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsonLayer")
            .field("format", &self.format)
            .field("span_close", &self.span_close)
            .field(
                "write_errors",
                &self.counters.write_errors.load(Ordering::Relaxed),
            )
            .finish_non_exhaustive()
    }
}

impl Default for JsonLayer {
    fn default() -> Self {
        JsonLayer {
            id: store::next_id(),
            format: JsonFormat::default(),
            writer: Arc::new(MakeWriterLines(io::stdout)),
            span_close: false,
            counters: Arc::default(),
        }
    }
}

impl JsonLayer {
    /// Same as [`layer()`].
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes lines to `make_writer` (anything implementing `tracing-subscriber`'s
    /// [`MakeWriter`]: `std::io::stderr`, a `Mutex<File>`, a non-blocking writer…).
    /// Each line is handed over in one `write_all` call. Default: stdout.
    #[must_use]
    pub fn with_writer<M>(mut self, make_writer: M) -> Self
    where
        M: for<'w> MakeWriter<'w> + Send + Sync + 'static,
    {
        self.writer = Arc::new(MakeWriterLines(make_writer));
        self
    }

    /// Replaces the whole format.
    #[must_use]
    pub fn with_format(mut self, format: JsonFormat) -> Self {
        self.format = format;
        self
    }

    /// See [`JsonFormat::with_preset`].
    #[must_use]
    pub fn with_preset(self, preset: Preset) -> Self {
        self.map_format(|f| f.with_preset(preset))
    }

    /// See [`JsonFormat::with_service`].
    #[must_use]
    pub fn with_service(self, service: impl Into<String>) -> Self {
        self.map_format(|f| f.with_service(service))
    }

    /// See [`JsonFormat::with_env`].
    #[must_use]
    pub fn with_env(self, env: impl Into<String>) -> Self {
        self.map_format(|f| f.with_env(env))
    }

    /// See [`JsonFormat::with_version`].
    #[must_use]
    pub fn with_version(self, version: impl Into<String>) -> Self {
        self.map_format(|f| f.with_version(version))
    }

    /// See [`JsonFormat::with_gcp_project`].
    #[must_use]
    pub fn with_gcp_project(self, project: impl Into<String>) -> Self {
        self.map_format(|f| f.with_gcp_project(project))
    }

    /// See [`JsonFormat::with_max_field_len`].
    #[must_use]
    pub fn with_max_field_len(self, bytes: usize) -> Self {
        self.map_format(|f| f.with_max_field_len(bytes))
    }

    /// See [`JsonFormat::with_file_line`].
    #[must_use]
    pub fn with_file_line(self, on: bool) -> Self {
        self.map_format(|f| f.with_file_line(on))
    }

    /// See [`JsonFormat::with_thread`].
    #[must_use]
    pub fn with_thread(self, on: bool) -> Self {
        self.map_format(|f| f.with_thread(on))
    }

    /// See [`JsonFormat::with_redaction`].
    #[must_use]
    pub fn with_redaction(self, redaction: Option<Arc<strata_core::Redaction>>) -> Self {
        self.map_format(|f| f.with_redaction(redaction))
    }

    /// See [`JsonFormat::with_span_name`].
    #[must_use]
    pub fn with_span_name(self, on: bool) -> Self {
        self.map_format(|f| f.with_span_name(on))
    }

    /// Also writes a line when a span closes, with `event` = `span_close`, the span's name and
    /// fields and `duration_ms` (wall time since it was created, in milliseconds with
    /// microsecond precision). Default: off.
    #[must_use]
    pub fn with_span_close(mut self, on: bool) -> Self {
        self.span_close = on;
        self
    }

    fn map_format(mut self, f: impl FnOnce(JsonFormat) -> JsonFormat) -> Self {
        self.format = f(self.format);
        self
    }

    /// The format in use.
    pub fn format(&self) -> &JsonFormat {
        &self.format
    }

    /// A handle to flush the writer and read error counts after the layer is installed.
    pub fn handle(&self) -> JsonHandle {
        JsonHandle {
            counters: Arc::clone(&self.counters),
            writer: Arc::clone(&self.writer),
        }
    }

    #[inline]
    fn write(&self, meta: &Metadata<'_>, line: &[u8]) {
        if let Err(e) = self.writer.write_line(meta, line) {
            self.counters.write_errors.fetch_add(1, Ordering::Relaxed);
            if !self.counters.reported.swap(true, Ordering::Relaxed) {
                // The log itself is what failed: say so once on stderr, count the rest.
                eprintln!(
                    "strata-json: writing a log line failed: {e}; further failures are only counted"
                );
            }
        }
    }

    /// Flushes the underlying writer.
    pub fn flush(&self) -> io::Result<()> {
        self.writer.flush()
    }
}

/// A handle on an installed [`JsonLayer`]: flush its writer, read its counters.
#[derive(Clone)]
pub struct JsonHandle {
    counters: Arc<Counters>,
    writer: Arc<dyn LineWriter>,
}

impl fmt::Debug for JsonHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsonHandle")
            .field("write_errors", &self.write_errors())
            .finish_non_exhaustive()
    }
}

impl JsonHandle {
    /// Flushes the layer's writer.
    pub fn flush(&self) -> io::Result<()> {
        self.writer.flush()
    }

    /// How many lines could not be written (the writer returned an error).
    pub fn write_errors(&self) -> u64 {
        self.counters.write_errors.load(Ordering::Relaxed)
    }
}

impl<S> Layer<S> for JsonLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_layer(&mut self, _subscriber: &mut S) {
        if self.span_close {
            store::want_span_timing();
        }
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        // The fields are rendered at the span's first line (`JsonFormat::prepare_span`).
        store::fields_mut(&mut span.extensions_mut(), attrs, self.id);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        // Applying the values drops every rendering; the next line renders ours again.
        store::on_record(id, values, &ctx, self.id);
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        format::with_scratch(|s| {
            self.format.render_event(event, &ctx, s);
            self.write(event.metadata(), &s.line);
        });
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        if !self.span_close {
            return;
        }
        let Some(span) = ctx.span(&id) else { return };
        let opened = span
            .extensions()
            .get::<store::SpanFields>()
            .and_then(|f| f.opened());
        let Some(opened) = opened else { return };
        format::with_scratch(|s| {
            self.format.render_close(&span, opened.elapsed(), s);
            self.write(span.metadata(), &s.line);
        });
    }
}
