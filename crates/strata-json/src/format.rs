//! Rendering one event (or span close) into one JSON line.

use std::cell::RefCell;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use smallvec::SmallVec;
use strata_core::encode;
use strata_core::redact::{MASK, Redaction};
use strata_core::store::{self, FieldValue, KeyId, KeySet, Rendered, SpanFields, TraceContext};
use strata_core::{CRITICAL_FIELD, RESERVED_PREFIX, Severity};
use tracing_core::field::{Field, Visit};
use tracing_core::{Event, Metadata, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::{LookupSpan, SpanRef};

use strata_core::time::{Clock, unix_nanos};

/// The shape of the JSON object: strata's default schema or a mapping of the same record to
/// another well-known schema.
///
/// Sample lines (the same event in each preset) are in the crate documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Preset {
    /// strata's default flat schema (`docs/schema/strata-log.schema.json`).
    #[default]
    Default,
    /// Elastic Common Schema (`@timestamp`, `log.level`, `ecs.version`, `service.name`, …).
    Ecs,
    /// Google Cloud Logging structured payload (`severity`, `logging.googleapis.com/trace`, …).
    Gcp,
    /// The OpenTelemetry log data model (`Timestamp`, `SeverityNumber`, `Body`, `Resource`,
    /// `Attributes`, …).
    OpenTelemetry,
}

/// The ECS version written in `ecs.version`.
pub const ECS_VERSION: &str = "8.11.0";

/// Key names of one preset.
struct Names {
    message: &'static str,
    event: &'static str,
    span: &'static str,
    file: &'static str,
    line: &'static str,
    thread: &'static str,
    /// Every key the preset may write where user fields go (whatever the options), so a user
    /// field is prefixed the same way in every line.
    reserved: &'static [&'static str],
    reserved_prefix: Option<&'static str>,
}

const DEFAULT_NAMES: Names = Names {
    message: "message",
    event: "event",
    span: "span",
    file: "file",
    line: "line",
    thread: "thread",
    reserved: strata_core::RESERVED_KEYS,
    reserved_prefix: None,
};

const ECS_NAMES: Names = Names {
    message: "message",
    event: "event.action",
    span: "span.name",
    file: "log.origin.file.name",
    line: "log.origin.file.line",
    thread: "process.thread.name",
    reserved: &[
        "@timestamp",
        "log.level",
        "message",
        "ecs.version",
        "service.name",
        "service.environment",
        "service.version",
        "log.logger",
        "event.action",
        "trace.id",
        "span.id",
        "span.name",
        "log.origin.file.name",
        "log.origin.file.line",
        "process.thread.name",
        "log",
        "service",
        "ecs",
        "trace",
        "span",
        "process",
        "event",
    ],
    reserved_prefix: None,
};

const GCP_NAMES: Names = Names {
    message: "message",
    event: "event",
    span: "span",
    file: "file",
    line: "line",
    thread: "thread",
    reserved: &[
        "timestamp",
        "time",
        "severity",
        "message",
        "target",
        "event",
        "serviceContext",
        "httpRequest",
        "env",
        "span",
        "thread",
    ],
    reserved_prefix: Some("logging.googleapis.com/"),
};

const OTEL_NAMES: Names = Names {
    message: "Body",
    event: "EventName",
    span: "span.name",
    file: "code.filepath",
    line: "code.lineno",
    thread: "thread.name",
    // User fields live under "Attributes", beside these optional ones.
    reserved: &["code.filepath", "code.lineno", "thread.name"],
    reserved_prefix: None,
};

impl Preset {
    fn names(self) -> &'static Names {
        match self {
            Preset::Default => &DEFAULT_NAMES,
            Preset::Ecs => &ECS_NAMES,
            Preset::Gcp => &GCP_NAMES,
            Preset::OpenTelemetry => &OTEL_NAMES,
        }
    }
}

/// The default maximum length of one string value, in bytes: 16 KiB.
pub const DEFAULT_MAX_FIELD_LEN: usize = 16 * 1024;

/// How events are rendered: the preset, the static service fields and the optional parts.
///
/// `JsonFormat` renders; [`JsonLayer`](crate::JsonLayer) renders and writes. Other strata
/// crates (the router) use a `JsonFormat` directly to render each event once for many sinks.
#[derive(Debug, Clone)]
pub struct JsonFormat {
    preset: Preset,
    service: String,
    env: String,
    version: String,
    gcp_project: Option<String>,
    max_field_len: usize,
    file_line: bool,
    thread: bool,
    span_name: bool,
    redaction: Option<Arc<Redaction>>,
    /// Pre-encoded static part written after the level.
    statics: Vec<u8>,
    /// Keys the line writes itself (user fields with these names get [`RESERVED_PREFIX`]),
    /// with their first eight bytes as a word for a quick first test.
    reserved: Vec<KeyId>,
    /// Bloom bits of the reserved keys (untagged).
    reserved_bloom: u64,
    /// Identifies this configuration in per-span caches; changes with every setter that
    /// changes how a span field renders.
    id: u64,
}

impl Default for JsonFormat {
    fn default() -> Self {
        let mut f = JsonFormat {
            preset: Preset::Default,
            service: strata_core::default_service_name(),
            env: String::new(),
            version: String::new(),
            gcp_project: None,
            max_field_len: DEFAULT_MAX_FIELD_LEN,
            file_line: false,
            thread: false,
            span_name: true,
            redaction: None,
            statics: Vec::new(),
            reserved: Vec::new(),
            reserved_bloom: 0,
            id: 0,
        };
        f.rebuild();
        f
    }
}

impl JsonFormat {
    /// The default schema, service name from `STRATA_SERVICE` or the executable's name.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Selects the output schema. Default: [`Preset::Default`].
    #[must_use]
    pub fn with_preset(mut self, preset: Preset) -> Self {
        self.preset = preset;
        self.rebuild();
        self
    }

    /// Sets the `service` value.
    #[must_use]
    pub fn with_service(mut self, service: impl Into<String>) -> Self {
        self.service = service.into();
        self.rebuild();
        self
    }

    /// Sets the `env` value (`production`, `staging`, …); omitted from lines while empty.
    #[must_use]
    pub fn with_env(mut self, env: impl Into<String>) -> Self {
        self.env = env.into();
        self.rebuild();
        self
    }

    /// Sets the `version` value (the release); omitted from lines while empty.
    #[must_use]
    pub fn with_version(mut self, version: impl Into<String>) -> Self {
        self.version = version.into();
        self.rebuild();
        self
    }

    /// Sets the Google Cloud project, so the GCP preset writes
    /// `logging.googleapis.com/trace` as `projects/<project>/traces/<trace_id>`.
    #[must_use]
    pub fn with_gcp_project(mut self, project: impl Into<String>) -> Self {
        self.gcp_project = Some(project.into());
        self
    }

    /// Cuts string values longer than `bytes` (at a character boundary) and marks the cut with
    /// `…[truncated N bytes]`. Default: [`DEFAULT_MAX_FIELD_LEN`].
    #[must_use]
    pub fn with_max_field_len(mut self, bytes: usize) -> Self {
        self.max_field_len = bytes;
        self.id = store::next_id();
        self
    }

    /// Adds the source file and line of the event. Default: off.
    #[must_use]
    pub fn with_file_line(mut self, on: bool) -> Self {
        self.file_line = on;
        self.rebuild();
        self
    }

    /// Adds the name (or id) of the thread that emitted the event. Default: off.
    #[must_use]
    pub fn with_thread(mut self, on: bool) -> Self {
        self.thread = on;
        self.rebuild();
        self
    }

    /// Adds the name of the innermost span. Default: on.
    #[must_use]
    pub fn with_span_name(mut self, on: bool) -> Self {
        self.span_name = on;
        self.rebuild();
        self
    }

    /// Masks secrets before anything is written: values of fields with sensitive names become
    /// `"[REDACTED]"`, and secrets recognised by their shape in messages, string values and
    /// error messages are masked (see [`strata_core::redact`]). Name checks are made once per
    /// call site (and once per span), so only string values cost a scan. Default: none.
    #[must_use]
    pub fn with_redaction(mut self, redaction: Option<Arc<Redaction>>) -> Self {
        self.redaction = redaction;
        self.rebuild();
        self
    }

    /// The redaction rules in use, if any.
    pub fn redaction(&self) -> Option<&Arc<Redaction>> {
        self.redaction.as_ref()
    }

    /// The id keying this configuration's span caches: equal ids render identically, so a
    /// router renders an event once per distinct id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The preset in use.
    pub fn preset(&self) -> Preset {
        self.preset
    }

    /// The service name written in every line.
    pub fn service(&self) -> &str {
        &self.service
    }

    fn rebuild(&mut self) {
        let n = self.preset.names();
        self.reserved = n.reserved.iter().map(|k| KeyId::new(false, k)).collect();
        self.reserved_bloom = self.reserved.iter().fold(0, |b, k| b | k.bloom_bit());
        self.id = store::next_id();

        let s = &mut self.statics;
        s.clear();
        let kv = |s: &mut Vec<u8>, k: &str, v: &str| {
            s.extend_from_slice(b",\"");
            s.extend_from_slice(k.as_bytes());
            s.extend_from_slice(b"\":");
            encode::write_str(s, v);
        };
        match self.preset {
            Preset::Default => {
                kv(s, "service", &self.service);
                if !self.env.is_empty() {
                    kv(s, "env", &self.env);
                }
                if !self.version.is_empty() {
                    kv(s, "version", &self.version);
                }
            }
            Preset::Ecs => {
                kv(s, "ecs.version", ECS_VERSION);
                kv(s, "service.name", &self.service);
                if !self.env.is_empty() {
                    kv(s, "service.environment", &self.env);
                }
                if !self.version.is_empty() {
                    kv(s, "service.version", &self.version);
                }
            }
            Preset::Gcp => {
                s.extend_from_slice(b",\"serviceContext\":{\"service\":");
                encode::write_str(s, &self.service);
                if !self.version.is_empty() {
                    s.extend_from_slice(b",\"version\":");
                    encode::write_str(s, &self.version);
                }
                s.push(b'}');
                if !self.env.is_empty() {
                    kv(s, "env", &self.env);
                }
            }
            Preset::OpenTelemetry => {
                s.extend_from_slice(b",\"Resource\":{\"service.name\":");
                encode::write_str(s, &self.service);
                if !self.env.is_empty() {
                    s.extend_from_slice(b",\"deployment.environment.name\":");
                    encode::write_str(s, &self.env);
                }
                if !self.version.is_empty() {
                    s.extend_from_slice(b",\"service.version\":");
                    encode::write_str(s, &self.version);
                }
                s.push(b'}');
            }
        }
    }

    /// Whether the schema writes a key named like `key` itself (`key` untagged).
    #[inline]
    fn is_reserved(&self, key: &KeyId) -> bool {
        // RESERVED_PREFIX is "fields." (7 bytes): compare the head word's first 7 bytes.
        const PREFIX_MASK: u64 = 0x00ff_ffff_ffff_ffff;
        if key.name().len() >= 7 && key.head() & PREFIX_MASK == FIELDS_PREFIX_HEAD {
            return true;
        }
        if let Some(p) = self.preset.names().reserved_prefix
            && key.name().starts_with(p)
        {
            return true;
        }
        self.reserved_bloom & key.bloom_bit() != 0 && self.reserved.iter().any(|k| k.same(key))
    }

    /// The key identity a user field named `name` is written under, absent clashes.
    #[inline]
    fn user_key(&self, name: &'static str) -> KeyId {
        let key = KeyId::new(false, name);
        if self.is_reserved(&key) {
            key.with_tag(true)
        } else {
            key
        }
    }

    /// Renders the fields of a span (already in the store) into this format's per-span cache.
    ///
    /// Formatting a line does this for every span of the line that has no current cache (one
    /// made before the span last recorded is dropped), so layers need not call it; a layer may
    /// call it ahead, off a latency-sensitive path.
    pub fn prepare_span<S>(&self, span: &SpanRef<'_, S>)
    where
        S: for<'a> LookupSpan<'a>,
    {
        if let Some(sf) = span.extensions_mut().get_mut::<SpanFields>() {
            self.prepare_fields(span.metadata(), sf);
        }
    }

    /// [`JsonFormat::prepare_span`] for a caller already holding the span's store.
    pub fn prepare_fields(&self, meta: &'static Metadata<'static>, sf: &mut SpanFields) {
        with_scratch(|s| self.render_fields(meta, sf, &mut s.callsites, &mut s.span));
    }

    /// Renders `sf` into its cache, with the thread's callsite cache and a buffer to use.
    fn render_fields(
        &self,
        meta: &'static Metadata<'static>,
        sf: &mut SpanFields,
        callsites: &mut CallsiteCache,
        buf: &mut Vec<u8>,
    ) {
        let cs = callsites.get(self, meta);
        let mut keys: SmallVec<[(KeyId, u32, u32); 8]> = SmallVec::new();
        buf.clear();
        for f in sf.fields() {
            let start = buf.len() as u32;
            let key = match cs.roles.get(f.index()) {
                Some(&Role::User(key, a, b)) if key.name() == f.name() => {
                    buf.extend_from_slice(&cs.keys[a as usize..b as usize]);
                    self.write_value(buf, f.value(), false);
                    key
                }
                Some(&Role::Masked(key, a, b)) if key.name() == f.name() => {
                    buf.extend_from_slice(&cs.keys[a as usize..b as usize]);
                    encode::write_str(buf, MASK);
                    key
                }
                _ if f.name() == CRITICAL_FIELD => continue,
                _ => {
                    let key = self.user_key(f.name());
                    write_user_key(buf, key.tag(), f.name());
                    self.write_value(buf, f.value(), self.is_masked(f.name()));
                    key
                }
            };
            keys.push((key, start, buf.len() as u32));
        }
        callsites.put(cs);
        sf.set_rendered(self.id, Rendered::new(buf, &keys));
    }

    /// Renders `event` as one JSON line (with its trailing newline) appended to `out`.
    pub fn format_event<S>(&self, event: &Event<'_>, ctx: &Context<'_, S>, out: &mut Vec<u8>)
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        with_scratch(|s| {
            self.render_event(event, ctx, s);
            out.extend_from_slice(&s.line);
        });
    }

    /// Renders the line written when `span` closes, `elapsed` after it was created (appended
    /// to `out`).
    pub fn format_span_close<S>(&self, span: &SpanRef<'_, S>, elapsed: Duration, out: &mut Vec<u8>)
    where
        S: for<'a> LookupSpan<'a>,
    {
        with_scratch(|s| {
            self.render_close(span, elapsed, s);
            out.extend_from_slice(&s.line);
        });
    }

    /// Whether a field named `name` is written as `"[REDACTED]"`.
    #[inline]
    fn is_masked(&self, name: &str) -> bool {
        self.redaction
            .as_ref()
            .is_some_and(|r| r.is_sensitive(name))
    }

    /// Writes a stored value: masked, or scanned for secrets when it holds text.
    fn write_value(&self, buf: &mut Vec<u8>, value: &FieldValue, masked: bool) {
        if masked {
            encode::write_str(buf, MASK);
            return;
        }
        let start = buf.len();
        value.write_json(buf, self.max_field_len);
        if let Some(r) = &self.redaction
            && matches!(value, FieldValue::Str(_) | FieldValue::Error(_))
        {
            r.redact_json(buf, start);
        }
    }

    pub(crate) fn render_event<S>(&self, event: &Event<'_>, ctx: &Context<'_, S>, s: &mut Scratch)
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let meta = event.metadata();
        let cs = s.callsites.get(self, meta);
        s.begin(self, &cs.target, Severity::of(meta));
        let mut v = EventVisitor {
            names: self.preset.names(),
            max: self.max_field_len,
            redaction: self.redaction.as_deref(),
            cs: &cs,
            line: &mut s.line,
            fields: &mut s.fields,
            keys: &mut s.keys,
        };
        event.record(&mut v);
        s.callsites.put(cs);
        let span = ctx.event_span(event);
        let mut trace = None;
        if let Some(span) = &span {
            trace = self.span_fields(span, s, true);
        }
        self.finish(meta, span.as_ref().map(|s| s.name()), trace, s);
    }

    pub(crate) fn render_close<S>(&self, span: &SpanRef<'_, S>, elapsed: Duration, s: &mut Scratch)
    where
        S: for<'a> LookupSpan<'a>,
    {
        let meta = span.metadata();
        let cs = s.callsites.get(self, meta);
        s.begin(self, &cs.target, Severity::from(*meta.level()));
        s.callsites.put(cs);
        let n = self.preset.names();
        let (line, fields, keys) = (&mut s.line, &mut s.fields, &mut s.keys);
        write_key(line, n.message);
        encode::write_display(
            line,
            &format_args!("{} closed", span.name()),
            self.max_field_len,
        );
        write_key(line, n.event);
        encode::write_str(line, "span_close");
        keys.insert(false, "duration_ms");
        write_key(fields, "duration_ms");
        let ms = elapsed.as_secs_f64() * 1000.0;
        encode::write_f64(fields, (ms * 1000.0).round() / 1000.0);
        let trace = self.span_fields(span, s, false);
        self.finish(meta, Some(span.name()), trace, s);
    }

    /// Appends the fields of `span` and its ancestors to `s.fields`, skipping names already
    /// written; returns the innermost trace context. With `inherit_only == false` the span's
    /// own fields are treated like an event's (prefixed on a clash instead of hidden).
    fn span_fields<S>(
        &self,
        span: &SpanRef<'_, S>,
        s: &mut Scratch,
        inherit_only: bool,
    ) -> Option<TraceContext>
    where
        S: for<'a> LookupSpan<'a>,
    {
        let mut trace = None;
        let mut want_trace = store::trace_context_in_use();
        for (depth, sp) in span.scope().enumerate() {
            let own = !inherit_only && depth == 0;
            let mut ext = sp.extensions();
            if !own
                && ext
                    .get::<SpanFields>()
                    .is_some_and(|sf| sf.rendered(self.id).is_none())
            {
                // Rendered at the first line that needs it, not when the span is made or
                // records: a span often records before its first line (a status, a latency),
                // and one with no line is never rendered.
                drop(ext);
                if let Some(sf) = sp.extensions_mut().get_mut::<SpanFields>() {
                    self.render_fields(sp.metadata(), sf, &mut s.callsites, &mut s.span);
                }
                ext = sp.extensions();
            }
            let Some(sf) = ext.get::<SpanFields>() else {
                continue;
            };
            if want_trace && let Some(t) = sf.trace_context() {
                trace = Some(*t);
                want_trace = false;
            }
            let cached = if own { None } else { sf.rendered(self.id) };
            if let Some(frag) = cached {
                if frag.bloom() & s.keys.bloom() == 0 {
                    // No name of this span is taken yet: copy the whole span at once.
                    s.fields.extend_from_slice(frag.bytes());
                    s.keys.extend_absent(frag.keys().iter().map(|k| k.0));
                } else {
                    for &(key, a, b) in frag.keys() {
                        if s.keys.insert_id(key) {
                            s.fields
                                .extend_from_slice(&frag.bytes()[a as usize..b as usize]);
                        }
                    }
                }
                continue;
            }
            for f in sf.fields() {
                if f.name() == CRITICAL_FIELD {
                    continue;
                }
                let key = self.user_key(f.name());
                let key = if own {
                    event_key(&mut s.keys, key)
                } else if s.keys.insert_id(key) {
                    Some(key)
                } else {
                    None
                };
                let Some(key) = key else { continue };
                write_user_key(&mut s.fields, key.tag(), f.name());
                self.write_value(&mut s.fields, f.value(), self.is_masked(f.name()));
            }
        }
        trace
    }

    /// Writes the span name, trace context, fields and extras, and closes the line.
    fn finish(
        &self,
        meta: &Metadata<'_>,
        span_name: Option<&str>,
        trace: Option<TraceContext>,
        s: &mut Scratch,
    ) {
        let n = self.preset.names();
        let (line, fields) = (&mut s.line, &mut s.fields);
        if self.file_line
            && let Some(file) = meta.file()
        {
            if self.preset == Preset::Gcp {
                fields.extend_from_slice(b",\"logging.googleapis.com/sourceLocation\":{\"file\":");
                encode::write_str(fields, file);
                if let Some(l) = meta.line() {
                    fields.extend_from_slice(b",\"line\":\"");
                    encode::write_int(fields, l);
                    fields.push(b'"');
                }
                fields.extend_from_slice(b",\"function\":");
                encode::write_str(fields, meta.module_path().unwrap_or(meta.target()));
                fields.push(b'}');
            } else {
                write_key(fields, n.file);
                encode::write_str(fields, file);
                if let Some(l) = meta.line() {
                    write_key(fields, n.line);
                    encode::write_int(fields, l);
                }
            }
        }
        if self.thread {
            write_key(fields, n.thread);
            let t = std::thread::current();
            match t.name() {
                Some(name) => encode::write_str(fields, name),
                None => encode::write_debug(fields, &t.id(), 64),
            }
        }
        if self.span_name
            && self.preset != Preset::OpenTelemetry
            && let Some(name) = span_name
        {
            write_key(line, n.span);
            encode::write_str(line, name);
        }
        if let Some(t) = trace {
            self.write_trace(line, &t);
        }
        if self.preset == Preset::OpenTelemetry {
            line.extend_from_slice(b",\"Attributes\":{");
            if !fields.is_empty() {
                line.extend_from_slice(&fields[1..]);
            }
            line.push(b'}');
        } else {
            line.extend_from_slice(fields);
        }
        line.extend_from_slice(b"}\n");
    }

    fn write_trace(&self, line: &mut Vec<u8>, t: &TraceContext) {
        let hex = |line: &mut Vec<u8>, key: &str, bytes: &[u8]| {
            write_key(line, key);
            line.push(b'"');
            encode::write_hex(line, bytes);
            line.push(b'"');
        };
        match self.preset {
            Preset::Default => {
                hex(line, "trace_id", &t.trace_id);
                hex(line, "span_id", &t.span_id);
            }
            Preset::Ecs => {
                hex(line, "trace.id", &t.trace_id);
                hex(line, "span.id", &t.span_id);
            }
            Preset::Gcp => {
                write_key(line, "logging.googleapis.com/trace");
                line.push(b'"');
                if let Some(p) = &self.gcp_project {
                    line.extend_from_slice(b"projects/");
                    encode::escape_into(line, p);
                    line.extend_from_slice(b"/traces/");
                }
                encode::write_hex(line, &t.trace_id);
                line.push(b'"');
                hex(line, "logging.googleapis.com/spanId", &t.span_id);
                write_key(line, "logging.googleapis.com/trace_sampled");
                encode::write_bool(line, t.sampled);
            }
            Preset::OpenTelemetry => {
                hex(line, "TraceId", &t.trace_id);
                hex(line, "SpanId", &t.span_id);
                write_key(line, "TraceFlags");
                line.push(if t.sampled { b'1' } else { b'0' });
            }
        }
    }
}

/// The head word of [`RESERVED_PREFIX`].
const FIELDS_PREFIX_HEAD: u64 = u64::from_le_bytes(*b"fields.\0");
const _: () = assert!(RESERVED_PREFIX.len() == 7);

/// Appends `,"key":` for a key known to need no escaping.
#[inline]
fn write_key(buf: &mut Vec<u8>, key: &str) {
    buf.extend_from_slice(b",\"");
    buf.extend_from_slice(key.as_bytes());
    buf.extend_from_slice(b"\":");
}

/// Appends `,"[fields.]name":` for a user-supplied name, escaped.
#[inline]
fn write_user_key(buf: &mut Vec<u8>, prefixed: bool, name: &str) {
    buf.extend_from_slice(b",\"");
    if prefixed {
        buf.extend_from_slice(RESERVED_PREFIX.as_bytes());
    }
    encode::escape_into(buf, name);
    buf.extend_from_slice(b"\":");
}

/// Claims a key for an event field: `key`, or its prefixed form when `key` is already taken by
/// another field of the same event. `None` only when both are taken.
#[inline]
fn event_key(keys: &mut KeySet, key: KeyId) -> Option<KeyId> {
    if keys.insert_id(key) {
        Some(key)
    } else if !key.tag() && keys.insert_id(key.with_tag(true)) {
        Some(key.with_tag(true))
    } else {
        None
    }
}

/// Per-thread buffers reused for every line, so steady-state rendering allocates nothing.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    pub(crate) line: Vec<u8>,
    fields: Vec<u8>,
    /// A span's fields being rendered into its cache.
    span: Vec<u8>,
    keys: KeySet,
    clock: Clock,
    callsites: CallsiteCache,
}

impl Scratch {
    /// Clears the buffers and writes the line's header: time, level, statics, target.
    fn begin(&mut self, fmt: &JsonFormat, target: &[u8], sev: Severity) {
        self.line.clear();
        self.fields.clear();
        self.keys.clear();
        let line = &mut self.line;
        let now = SystemTime::now();
        match fmt.preset {
            Preset::Default | Preset::Gcp => {
                line.extend_from_slice(b"{\"timestamp\":\"");
                self.clock.write_rfc3339(line, now);
                if fmt.preset == Preset::Default {
                    line.extend_from_slice(b"\",\"level\":\"");
                    line.extend_from_slice(sev.as_str().as_bytes());
                } else {
                    line.extend_from_slice(b"\",\"severity\":\"");
                    line.extend_from_slice(sev.gcp_name().as_bytes());
                }
                line.push(b'"');
                line.extend_from_slice(&fmt.statics);
                line.extend_from_slice(b",\"target\":");
            }
            Preset::Ecs => {
                line.extend_from_slice(b"{\"@timestamp\":\"");
                self.clock.write_rfc3339(line, now);
                line.extend_from_slice(b"\",\"log.level\":\"");
                line.extend_from_slice(sev.as_lower_str().as_bytes());
                line.push(b'"');
                line.extend_from_slice(&fmt.statics);
                line.extend_from_slice(b",\"log.logger\":");
            }
            Preset::OpenTelemetry => {
                let nanos = unix_nanos(now);
                line.extend_from_slice(b"{\"Timestamp\":\"");
                encode::write_int(line, nanos);
                line.extend_from_slice(b"\",\"ObservedTimestamp\":\"");
                encode::write_int(line, nanos);
                line.extend_from_slice(b"\",\"SeverityText\":\"");
                line.extend_from_slice(sev.as_str().as_bytes());
                line.extend_from_slice(b"\",\"SeverityNumber\":");
                encode::write_int(line, sev.otel_number());
                line.extend_from_slice(&fmt.statics);
                line.extend_from_slice(b",\"InstrumentationScope\":{\"Name\":");
                line.extend_from_slice(target);
                line.push(b'}');
                return;
            }
        }
        line.extend_from_slice(target);
    }
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// Runs `f` with this thread's scratch buffers (or fresh ones if they are in use, which only
/// happens when rendering re-enters, e.g. a `Debug` impl that logs).
pub(crate) fn with_scratch<R>(f: impl FnOnce(&mut Scratch) -> R) -> R {
    let mut f = Some(f);
    let res = SCRATCH.try_with(|cell| match cell.try_borrow_mut() {
        Ok(mut s) => {
            let out = (f.take().expect("called once"))(&mut s);
            // Do not let one huge line pin memory forever.
            if s.line.capacity() > 1 << 20 || s.span.capacity() > 1 << 20 {
                *s = Scratch::default();
            }
            Some(out)
        }
        Err(_) => None,
    });
    match res {
        Ok(Some(out)) => out,
        _ => (f.take().expect("not called yet"))(&mut Scratch::default()),
    }
}

/// What the fields of one callsite become in one format: computed once per callsite, format
/// and thread, so an event neither compares nor escapes its field names.
#[derive(Debug)]
struct CallsiteKeys {
    meta: usize,
    format: u64,
    /// The target as a JSON string.
    target: Vec<u8>,
    /// Per field index.
    roles: Vec<Role>,
    /// `,"key":` fragments of the user fields.
    keys: Vec<u8>,
}

#[derive(Debug, Clone, Copy)]
enum Role {
    Message,
    Event,
    /// The CRITICAL marker, or a name repeated so often that even its prefixed form is taken.
    Skip,
    /// A user field written under `KeyId`, its `,"key":` at `keys[a..b]`.
    User(KeyId, u32, u32),
    /// The same for a field whose name says it holds a secret: its value is never written.
    Masked(KeyId, u32, u32),
}

impl CallsiteKeys {
    fn build(fmt: &JsonFormat, meta: &'static Metadata<'static>) -> CallsiteKeys {
        let mut cs = CallsiteKeys {
            meta: meta as *const _ as usize,
            format: fmt.id,
            target: Vec::new(),
            roles: Vec::with_capacity(meta.fields().len()),
            keys: Vec::new(),
        };
        encode::write_str(&mut cs.target, meta.target());
        let mut set = KeySet::default();
        // Only events have a message and an event name; for spans those are plain user fields.
        let (mut message, mut event) = (meta.is_span(), meta.is_span());
        for field in meta.fields() {
            let name = field.name();
            let role = if name == "message" && !message {
                message = true;
                Role::Message
            } else if name == "event" && !event {
                event = true;
                Role::Event
            } else if name == CRITICAL_FIELD {
                Role::Skip
            } else if let Some(key) = event_key(&mut set, fmt.user_key(name)) {
                let a = cs.keys.len() as u32;
                write_user_key(&mut cs.keys, key.tag(), name);
                let b = cs.keys.len() as u32;
                if fmt.is_masked(name) {
                    Role::Masked(key, a, b)
                } else {
                    Role::User(key, a, b)
                }
            } else {
                Role::Skip
            };
            cs.roles.push(role);
        }
        cs
    }
}

/// A small direct-mapped per-thread cache of [`CallsiteKeys`].
#[derive(Debug, Default)]
struct CallsiteCache {
    slots: Vec<Option<Box<CallsiteKeys>>>,
}

const CALLSITE_SLOTS: usize = 256;

impl CallsiteCache {
    #[inline]
    fn slot(meta: usize, format: u64) -> usize {
        ((meta as u64 ^ format.rotate_left(32)).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as usize
            % CALLSITE_SLOTS
    }

    /// Takes the entry for `meta` out of the cache (building it on a miss); give it back with
    /// [`CallsiteCache::put`].
    #[inline]
    fn get(&mut self, fmt: &JsonFormat, meta: &'static Metadata<'static>) -> Box<CallsiteKeys> {
        let addr = meta as *const _ as usize;
        if self.slots.is_empty() {
            self.slots.resize_with(CALLSITE_SLOTS, || None);
        }
        match self.slots[Self::slot(addr, fmt.id)].take() {
            Some(cs) if cs.meta == addr && cs.format == fmt.id => cs,
            _ => Box::new(CallsiteKeys::build(fmt, meta)),
        }
    }

    #[inline]
    fn put(&mut self, cs: Box<CallsiteKeys>) {
        let i = Self::slot(cs.meta, cs.format);
        self.slots[i] = Some(cs);
    }
}

struct EventVisitor<'a> {
    names: &'static Names,
    max: usize,
    redaction: Option<&'a Redaction>,
    cs: &'a CallsiteKeys,
    line: &'a mut Vec<u8>,
    fields: &'a mut Vec<u8>,
    keys: &'a mut KeySet,
}

impl EventVisitor<'_> {
    /// Writes the key for `field` and returns the buffer its value goes to and whether the
    /// value must be a string (`message` and `event` always are), or `None` to skip the field.
    #[inline]
    fn begin(&mut self, field: &Field) -> Option<(&mut Vec<u8>, bool)> {
        match *self.cs.roles.get(field.index())? {
            Role::Message => {
                write_key(self.line, self.names.message);
                Some((self.line, true))
            }
            Role::Event => {
                write_key(self.line, self.names.event);
                Some((self.line, true))
            }
            Role::Skip => None,
            Role::User(key, a, b) => {
                // Names were de-duplicated when the callsite was first seen.
                self.keys.extend_absent([key]);
                self.fields
                    .extend_from_slice(&self.cs.keys[a as usize..b as usize]);
                Some((self.fields, false))
            }
            Role::Masked(key, a, b) => {
                self.keys.extend_absent([key]);
                self.fields
                    .extend_from_slice(&self.cs.keys[a as usize..b as usize]);
                encode::write_str(self.fields, MASK);
                None
            }
        }
    }

    /// Writes text with `write`, then masks the secrets it holds.
    #[inline]
    fn text(&mut self, field: &Field, write: impl FnOnce(&mut Vec<u8>, usize)) {
        let (max, redaction) = (self.max, self.redaction);
        if let Some((b, _)) = self.begin(field) {
            let start = b.len();
            write(b, max);
            if let Some(r) = redaction {
                r.redact_json(b, start);
            }
        }
    }

    /// Writes a non-string value: as JSON by `write`, or as its text where a string is required.
    #[inline]
    fn scalar<T: fmt::Display>(&mut self, field: &Field, value: T, write: fn(&mut Vec<u8>, T)) {
        let max = self.max;
        match self.begin(field) {
            Some((b, false)) => write(b, value),
            Some((b, true)) => encode::write_display(b, &value, max),
            None => {}
        }
    }
}

impl Visit for EventVisitor<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.scalar(field, value, encode::write_f64);
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.scalar(field, value, encode::write_int);
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.scalar(field, value, encode::write_int);
    }
    fn record_i128(&mut self, field: &Field, value: i128) {
        self.scalar(field, value, encode::write_int);
    }
    fn record_u128(&mut self, field: &Field, value: u128) {
        self.scalar(field, value, encode::write_int);
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.scalar(field, value, encode::write_bool);
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.text(field, |b, max| encode::write_str_truncated(b, value, max));
    }
    fn record_bytes(&mut self, field: &Field, value: &[u8]) {
        self.text(field, |b, max| encode::write_bytes_lossy(b, value, max));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        let as_string = matches!(
            self.cs.roles.get(field.index()),
            Some(Role::Message | Role::Event)
        );
        self.text(field, |b, max| {
            if as_string {
                encode::write_display(b, value, max);
            } else {
                store::write_live_error(b, value, max);
            }
        });
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.text(field, |b, max| encode::write_debug(b, value, max));
    }
}
