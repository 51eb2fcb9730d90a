//! The span-field store: each span's fields, captured once, structured, read by every layer.
//!
//! When a span is created its fields are captured into a [`SpanFields`] kept in the span's
//! extensions (and updated by `Span::record`). Values stay typed ([`FieldValue`]). A renderer
//! (the JSON formatter, the router's text format) may also keep its rendering of the span's
//! fields in the store ([`Rendered`]), built once per span and copied into every event's line —
//! nothing is rendered twice and nothing is ever re-parsed.
//!
//! Every strata layer calls [`on_new_span`] and [`on_record`] from its own hooks; both are
//! idempotent, so the store exists whichever strata layers are installed, in any order.
//!
//! Events inherit the fields of all their enclosing spans, the innermost span winning a name
//! clash: [`inherited`] collects that view, [`KeySet`] helps formatters do it without
//! allocating.

use std::error::Error;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use smallvec::SmallVec;
use tracing_core::Subscriber;
use tracing_core::field::{Field as TracingField, Visit};
use tracing_core::span::{Attributes, Id, Record};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::{ExtensionsMut, LookupSpan, SpanRef};

use crate::encode;

/// A typed field value.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum FieldValue {
    /// A boolean.
    Bool(bool),
    /// A signed integer.
    I64(i64),
    /// An unsigned integer.
    U64(u64),
    /// A 128-bit signed integer.
    I128(i128),
    /// A 128-bit unsigned integer.
    U128(u128),
    /// A float (may be non-finite).
    F64(f64),
    /// A string; values recorded with `?` (Debug) or `%` (Display) are kept as their text.
    Str(Box<str>),
    /// An error with its `source()` chain.
    Error(Box<ErrorValue>),
}

impl FieldValue {
    /// The value as a string slice, if it is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            FieldValue::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Appends the JSON encoding of the value, strings cut to `max` bytes.
    pub fn write_json(&self, buf: &mut Vec<u8>, max: usize) {
        match self {
            FieldValue::Bool(v) => encode::write_bool(buf, *v),
            FieldValue::I64(v) => encode::write_int(buf, *v),
            FieldValue::U64(v) => encode::write_int(buf, *v),
            FieldValue::I128(v) => encode::write_int(buf, *v),
            FieldValue::U128(v) => encode::write_int(buf, *v),
            FieldValue::F64(v) => encode::write_f64(buf, *v),
            FieldValue::Str(s) => encode::write_str_truncated(buf, s, max),
            FieldValue::Error(e) => e.write_json(buf, max),
        }
    }

    /// The length in bytes of the longest string inside the value (what truncation acts on).
    pub fn longest_text(&self) -> usize {
        match self {
            FieldValue::Str(s) => s.len(),
            FieldValue::Error(e) => e
                .chain
                .iter()
                .map(|l| l.message.len())
                .chain([e.message.len()])
                .max()
                .unwrap_or(0),
            _ => 0,
        }
    }
}

impl fmt::Display for FieldValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldValue::Bool(v) => v.fmt(f),
            FieldValue::I64(v) => v.fmt(f),
            FieldValue::U64(v) => v.fmt(f),
            FieldValue::I128(v) => v.fmt(f),
            FieldValue::U128(v) => v.fmt(f),
            FieldValue::F64(v) => v.fmt(f),
            FieldValue::Str(v) => f.write_str(v),
            FieldValue::Error(e) => e.message.fmt(f),
        }
    }
}

/// One link of an error chain.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ErrorLink {
    /// The concrete type name, where one could be had.
    pub type_name: Option<&'static str>,
    /// The error's `Display` text.
    pub message: Box<str>,
}

/// An error captured as data: its type, message and the `source()` chain below it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ErrorValue {
    /// The concrete type name of the outermost error, where one could be had.
    pub type_name: Option<&'static str>,
    /// The outermost error's `Display` text.
    pub message: Box<str>,
    /// The errors below it, from `source()`, outermost first.
    pub chain: Vec<ErrorLink>,
}

impl ErrorValue {
    /// Captures `error` and its chain.
    pub fn capture(error: &(dyn Error + 'static)) -> Self {
        let mut links = crate::error::chain(error).map(|e| ErrorLink {
            type_name: crate::error::error_type_name(e),
            message: e.to_string().into_boxed_str(),
        });
        let top = links.next().expect("chain yields the error itself first");
        ErrorValue {
            type_name: top.type_name,
            message: top.message,
            chain: links.collect(),
        }
    }

    /// Appends the JSON object `{"type":…,"message":…,"chain":[{"type":…,"message":…},…]}`.
    pub fn write_json(&self, buf: &mut Vec<u8>, max: usize) {
        write_error_object(
            buf,
            max,
            std::iter::once((self.type_name, &self.message as &dyn fmt::Display)).chain(
                self.chain
                    .iter()
                    .map(|l| (l.type_name, &l.message as &dyn fmt::Display)),
            ),
        );
    }
}

/// Appends the JSON object for an error given as links `(type name, message)`, outermost
/// first: `{"type":…,"message":…,"chain":[{"type":…,"message":…},…]}`. `type` is omitted where
/// unknown; `chain` holds the links below the first and is always present.
pub fn write_error_object<'a>(
    buf: &mut Vec<u8>,
    max: usize,
    mut links: impl Iterator<Item = (Option<&'static str>, &'a dyn fmt::Display)>,
) {
    fn link(buf: &mut Vec<u8>, max: usize, ty: Option<&'static str>, msg: &dyn fmt::Display) {
        if let Some(ty) = ty {
            buf.extend_from_slice(b"\"type\":");
            encode::write_str(buf, ty);
            buf.push(b',');
        }
        buf.extend_from_slice(b"\"message\":");
        encode::write_display(buf, msg, max);
    }
    buf.push(b'{');
    if let Some((ty, msg)) = links.next() {
        link(buf, max, ty, msg);
    }
    buf.extend_from_slice(b",\"chain\":[");
    for (i, (ty, msg)) in links.enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        buf.push(b'{');
        link(buf, max, ty, msg);
        buf.push(b'}');
    }
    buf.extend_from_slice(b"]}");
}

/// Appends the JSON error object for a live error, without allocating.
pub fn write_live_error(buf: &mut Vec<u8>, error: &(dyn Error + 'static), max: usize) {
    write_error_object(
        buf,
        max,
        crate::error::chain(error)
            .map(|e| (crate::error::error_type_name(e), e as &dyn fmt::Display)),
    );
}

/// The W3C trace context of a span, filled in by the OpenTelemetry layer when one is installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct TraceContext {
    /// The 16-byte trace ID.
    pub trace_id: [u8; 16],
    /// The 8-byte span ID.
    pub span_id: [u8; 8],
    /// Whether the trace is sampled.
    pub sampled: bool,
}

impl TraceContext {
    /// A trace context from its IDs and sampling decision.
    pub fn new(trace_id: [u8; 16], span_id: [u8; 8], sampled: bool) -> Self {
        TraceContext {
            trace_id,
            span_id,
            sampled,
        }
    }

    /// The trace ID as 32 lower-case hex digits.
    pub fn trace_id_hex(&self) -> String {
        let mut b = Vec::with_capacity(32);
        encode::write_hex(&mut b, &self.trace_id);
        String::from_utf8(b).expect("hex is ASCII")
    }

    /// The span ID as 16 lower-case hex digits.
    pub fn span_id_hex(&self) -> String {
        let mut b = Vec::with_capacity(16);
        encode::write_hex(&mut b, &self.span_id);
        String::from_utf8(b).expect("hex is ASCII")
    }
}

/// A process-unique id: for a layer (the `owner` of [`on_new_span`] / [`on_record`]) or a
/// renderer configuration (the key of its [`Rendered`] caches).
pub fn next_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

static SPAN_TIMING: AtomicBool = AtomicBool::new(false);

/// Asks the store to note each span's creation time ([`SpanFields::opened`]) from now on.
///
/// Layers that need span durations call this when they are built or attached
/// (`Layer::on_layer`); until one does, spans skip the clock read.
pub fn want_span_timing() {
    SPAN_TIMING.store(true, Ordering::Relaxed);
}

static TRACE_CONTEXT_IN_USE: AtomicBool = AtomicBool::new(false);

/// Whether any span of this process has had a trace context set; until then readers can skip
/// looking for one.
#[inline]
pub fn trace_context_in_use() -> bool {
    TRACE_CONTEXT_IN_USE.load(Ordering::Relaxed)
}

/// One captured span field.
#[derive(Debug, Clone)]
pub struct StoredField {
    name: &'static str,
    index: usize,
    value: FieldValue,
}

impl StoredField {
    /// The field's name.
    #[inline]
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The field's index in its span's callsite field set (`tracing::field::Field::index`).
    #[inline]
    pub fn index(&self) -> usize {
        self.index
    }

    /// The field's typed value.
    #[inline]
    pub fn value(&self) -> &FieldValue {
        &self.value
    }
}

/// A renderer's rendering of one span's own fields: one byte fragment per field, each under
/// the key identity it was written with, so an event can copy the whole span at once when none
/// of its keys is taken yet (see [`KeySet::bloom`]), or field by field otherwise.
///
/// Typical spans (a few short fields) fit inline, so storing a rendering does not allocate.
#[derive(Debug, Default, Clone)]
pub struct Rendered {
    bytes: SmallVec<[u8; 128]>,
    keys: SmallVec<[(KeyId, u32, u32); 4]>,
    bloom: u64,
}

impl Rendered {
    /// A rendering made of `bytes` and, for each field, its key identity and the range of its
    /// fragment in `bytes`.
    pub fn new(bytes: &[u8], keys: &[(KeyId, u32, u32)]) -> Self {
        Rendered {
            bytes: SmallVec::from_slice(bytes),
            keys: SmallVec::from_slice(keys),
            bloom: keys.iter().fold(0, |b, k| b | k.0.bloom_bit()),
        }
    }

    /// The fragments, back to back.
    #[inline]
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Each field's key identity and the range of its fragment in [`Rendered::bytes`].
    #[inline]
    pub fn keys(&self) -> &[(KeyId, u32, u32)] {
        &self.keys
    }

    /// The union of the keys' Bloom bits.
    #[inline]
    pub fn bloom(&self) -> u64 {
        self.bloom
    }
}

/// The fields of one span, captured once; kept in the span's extensions.
#[derive(Debug)]
pub struct SpanFields {
    name: &'static str,
    opened: Option<Instant>,
    fields: SmallVec<[StoredField; 4]>,
    trace: Option<TraceContext>,
    /// The layer that created the store; only it applies `Span::record` values.
    owner: u64,
    /// Renderings by renderer id; nearly always zero or one.
    rendered: Option<(u64, Rendered)>,
    rendered_more: Vec<(u64, Rendered)>,
}

impl SpanFields {
    /// Captures the fields of a new span, for the layer `owner` (see [`on_new_span`]).
    pub fn new(attrs: &Attributes<'_>, owner: u64) -> Self {
        let mut this = SpanFields {
            name: attrs.metadata().name(),
            opened: SPAN_TIMING.load(Ordering::Relaxed).then(Instant::now),
            fields: SmallVec::new(),
            trace: None,
            owner,
            rendered: None,
            rendered_more: Vec::new(),
        };
        attrs.record(&mut Collector(&mut this.fields));
        this
    }

    /// Merges values recorded later with `Span::record` (collected with [`Recorded::new`]); a
    /// name recorded again is replaced. Drops every [`Rendered`] cache (renderers rebuild
    /// theirs in their own `on_record`).
    pub fn merge(&mut self, recorded: Recorded) {
        for f in recorded.0 {
            put(&mut self.fields, f.name, f.index, f.value);
        }
        self.rendered = None;
        self.rendered_more.clear();
    }

    /// The id of the layer that created this store and applies recorded values.
    #[inline]
    pub fn owner(&self) -> u64 {
        self.owner
    }

    /// The rendering stored by renderer `id`, if it is current.
    #[inline]
    pub fn rendered(&self, id: u64) -> Option<&Rendered> {
        match &self.rendered {
            Some((i, r)) if *i == id => Some(r),
            Some(_) => self
                .rendered_more
                .iter()
                .find(|(i, _)| *i == id)
                .map(|(_, r)| r),
            None => None,
        }
    }

    /// Stores renderer `id`'s rendering of this span's fields (replacing an older one).
    pub fn set_rendered(&mut self, id: u64, rendered: Rendered) {
        match &mut self.rendered {
            slot @ None => *slot = Some((id, rendered)),
            Some((i, r)) if *i == id => *r = rendered,
            Some(_) => match self.rendered_more.iter_mut().find(|(i, _)| *i == id) {
                Some((_, r)) => *r = rendered,
                None => self.rendered_more.push((id, rendered)),
            },
        }
    }

    /// The span's name.
    #[inline]
    pub fn span_name(&self) -> &'static str {
        self.name
    }

    /// When the span was created, if some layer asked for span timing with
    /// [`want_span_timing`] before the span was created.
    #[inline]
    pub fn opened(&self) -> Option<Instant> {
        self.opened
    }

    /// This span's own fields, in the order they were first recorded.
    #[inline]
    pub fn fields(&self) -> &[StoredField] {
        &self.fields
    }

    /// The value of this span's own field `name`.
    pub fn get(&self, name: &str) -> Option<&FieldValue> {
        self.fields
            .iter()
            .find(|f| f.name == name)
            .map(|f| &f.value)
    }

    /// The span's trace context, if a tracing layer has set it.
    #[inline]
    pub fn trace_context(&self) -> Option<&TraceContext> {
        self.trace.as_ref()
    }

    /// Sets the span's trace context (done by the OpenTelemetry layer).
    pub fn set_trace_context(&mut self, trace: TraceContext) {
        if !TRACE_CONTEXT_IN_USE.load(Ordering::Relaxed) {
            TRACE_CONTEXT_IN_USE.store(true, Ordering::Relaxed);
        }
        self.trace = Some(trace);
    }
}

struct Collector<'a>(&'a mut SmallVec<[StoredField; 4]>);

/// Sets `name` in `fields`: replaces the value of an existing name, else appends.
fn put(
    fields: &mut SmallVec<[StoredField; 4]>,
    name: &'static str,
    index: usize,
    value: FieldValue,
) {
    if let Some(existing) = fields.iter_mut().find(|f| f.name == name) {
        existing.value = value;
    } else {
        fields.push(StoredField { name, index, value });
    }
}

impl Collector<'_> {
    fn put(&mut self, field: &TracingField, value: FieldValue) {
        put(self.0, field.name(), field.index(), value);
    }
}

/// Values of one `Span::record` call, captured (running the values' `Debug`/`Display`) before
/// the span's store is locked, so a `Debug` impl that logs cannot deadlock on it.
#[derive(Debug, Default)]
pub struct Recorded(SmallVec<[StoredField; 4]>);

impl Recorded {
    /// Captures `values`.
    pub fn new(values: &Record<'_>) -> Self {
        let mut r = Recorded::default();
        values.record(&mut Collector(&mut r.0));
        r
    }
}

impl Visit for Collector<'_> {
    fn record_f64(&mut self, field: &TracingField, value: f64) {
        self.put(field, FieldValue::F64(value));
    }
    fn record_i64(&mut self, field: &TracingField, value: i64) {
        self.put(field, FieldValue::I64(value));
    }
    fn record_u64(&mut self, field: &TracingField, value: u64) {
        self.put(field, FieldValue::U64(value));
    }
    fn record_i128(&mut self, field: &TracingField, value: i128) {
        self.put(field, FieldValue::I128(value));
    }
    fn record_u128(&mut self, field: &TracingField, value: u128) {
        self.put(field, FieldValue::U128(value));
    }
    fn record_bool(&mut self, field: &TracingField, value: bool) {
        self.put(field, FieldValue::Bool(value));
    }
    fn record_str(&mut self, field: &TracingField, value: &str) {
        self.put(field, FieldValue::Str(value.into()));
    }
    fn record_bytes(&mut self, field: &TracingField, value: &[u8]) {
        self.put(
            field,
            FieldValue::Str(String::from_utf8_lossy(value).into()),
        );
    }
    fn record_error(&mut self, field: &TracingField, value: &(dyn Error + 'static)) {
        self.put(
            field,
            FieldValue::Error(Box::new(ErrorValue::capture(value))),
        );
    }
    fn record_debug(&mut self, field: &TracingField, value: &dyn fmt::Debug) {
        self.put(field, FieldValue::Str(format!("{value:?}").into()));
    }
}

/// Captures a new span's fields into the store unless another strata layer already did.
///
/// Call from `Layer::on_new_span`, with `owner` a [`next_id`] the layer took once. The first
/// strata layer to see a span owns its store: `tracing` calls layers in the same order for
/// `on_new_span` and `on_record`, so the owner is also the first to see each record, and only
/// it applies the values (once, however many strata layers are installed).
pub fn on_new_span<S>(attrs: &Attributes<'_>, id: &Id, ctx: &Context<'_, S>, owner: u64)
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let Some(span) = ctx.span(id) else { return };
    fields_mut(&mut span.extensions_mut(), attrs, owner);
}

/// The span's store, captured from `attrs` first unless another strata layer already did.
///
/// For layers that hold the span's extensions already (to do their own work under the same
/// lock); others call [`on_new_span`].
pub fn fields_mut<'a>(
    ext: &'a mut ExtensionsMut<'_>,
    attrs: &Attributes<'_>,
    owner: u64,
) -> &'a mut SpanFields {
    if ext.get_mut::<SpanFields>().is_none() {
        ext.insert(SpanFields::new(attrs, owner));
    }
    ext.get_mut::<SpanFields>().expect("inserted above")
}

/// Applies values recorded with `Span::record` to the store, if `owner` owns it (see
/// [`on_new_span`]); returns whether it did. The values are captured before the store is
/// locked.
///
/// Call from `Layer::on_record`.
pub fn on_record<S>(id: &Id, values: &Record<'_>, ctx: &Context<'_, S>, owner: u64) -> bool
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let Some(span) = ctx.span(id) else {
        return false;
    };
    record_span(&span, values, owner)
}

/// [`on_record`] for a caller that has looked the span up already.
pub fn record_span<S>(span: &SpanRef<'_, S>, values: &Record<'_>, owner: u64) -> bool
where
    S: for<'a> LookupSpan<'a>,
{
    let owns = span
        .extensions()
        .get::<SpanFields>()
        .is_some_and(|f| f.owner == owner);
    if owns {
        let recorded = Recorded::new(values);
        if let Some(fields) = span.extensions_mut().get_mut::<SpanFields>() {
            fields.merge(recorded);
        }
    }
    owns
}

/// The fields an event inside `span` inherits: those of `span` and all its ancestors, the
/// innermost span winning a name clash, innermost span first.
pub fn inherited<S>(span: &SpanRef<'_, S>) -> Vec<(&'static str, FieldValue)>
where
    S: for<'a> LookupSpan<'a>,
{
    let mut out: Vec<(&'static str, FieldValue)> = Vec::new();
    for s in span.scope() {
        let ext = s.extensions();
        let Some(fields) = ext.get::<SpanFields>() else {
            continue;
        };
        for f in fields.fields() {
            if !out.iter().any(|(n, _)| *n == f.name) {
                out.push((f.name, f.value.clone()));
            }
        }
    }
    out
}

/// The innermost trace context in `span`'s scope (the span's own, or the nearest ancestor's).
pub fn trace_context<S>(span: &SpanRef<'_, S>) -> Option<TraceContext>
where
    S: for<'a> LookupSpan<'a>,
{
    span.scope()
        .find_map(|s| s.extensions().get::<SpanFields>().and_then(|f| f.trace))
}

/// A small set of field names, kept on the stack up to 32 names, for de-duplicating keys
/// without allocating. Each name carries a tag (strata formatters use it for "prefixed").
///
/// A 64-bit Bloom filter of the names lets a formatter test a whole group of names (a span's
/// fields) against the set with one `AND`.
#[derive(Debug)]
pub struct KeySet {
    inline: [KeyId; 32],
    len: usize,
    spill: Vec<KeyId>,
    bloom: u64,
}

/// A key identity: a name and a tag, with the length, tag and first eight bytes packed so that
/// most comparisons are integer compares and no `memcmp`.
#[derive(Debug, Clone, Copy)]
pub struct KeyId {
    head: u64,
    len_tag: usize,
    name: &'static str,
}

impl KeyId {
    /// The identity of `(tag, name)`.
    #[inline(always)]
    pub fn new(tag: bool, name: &'static str) -> KeyId {
        KeyId {
            head: head_word(name),
            len_tag: name.len() << 1 | tag as usize,
            name,
        }
    }

    /// The same name with another tag.
    #[inline(always)]
    pub fn with_tag(self, tag: bool) -> KeyId {
        KeyId {
            len_tag: (self.len_tag & !1) | tag as usize,
            ..self
        }
    }

    /// The name.
    #[inline(always)]
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The tag.
    #[inline(always)]
    pub fn tag(&self) -> bool {
        self.len_tag & 1 == 1
    }

    /// The first (up to) eight bytes of the name, zero-padded, as one word.
    #[inline(always)]
    pub fn head(&self) -> u64 {
        self.head
    }

    /// This key's bit in a 64-bit Bloom filter.
    #[inline(always)]
    pub fn bloom_bit(&self) -> u64 {
        let h =
            (self.head ^ (self.len_tag as u64).rotate_left(40)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        1 << (h >> 58)
    }

    /// Whether two identities are the same name with the same tag.
    #[inline(always)]
    pub fn same(&self, other: &KeyId) -> bool {
        self.head == other.head
            && self.len_tag == other.len_tag
            && (self.name.len() <= 8
                || self.name.as_ptr() == other.name.as_ptr()
                || self.name == other.name)
    }
}

/// The first (up to) eight bytes of `s`, zero-padded, as one word.
#[inline(always)]
pub fn head_word(s: &str) -> u64 {
    let b = s.as_bytes();
    if b.len() >= 8 {
        u64::from_le_bytes(b[..8].try_into().expect("8 bytes"))
    } else {
        let mut w = 0u64;
        for (i, &x) in b.iter().enumerate() {
            w |= (x as u64) << (8 * i);
        }
        w
    }
}

impl Default for KeySet {
    fn default() -> Self {
        KeySet {
            inline: [KeyId::new(false, ""); 32],
            len: 0,
            spill: Vec::new(),
            bloom: 0,
        }
    }
}

impl KeySet {
    /// Empties the set, keeping any spill capacity.
    #[inline]
    pub fn clear(&mut self) {
        self.len = 0;
        self.bloom = 0;
        self.spill.clear();
    }

    /// Whether `key` is in the set.
    #[inline]
    pub fn contains_id(&self, key: &KeyId) -> bool {
        self.bloom & key.bloom_bit() != 0
            && (self.inline[..self.len].iter().any(|k| k.same(key))
                || self.spill.iter().any(|k| k.same(key)))
    }

    /// Whether `(tag, name)` is in the set.
    #[inline]
    pub fn contains(&self, tag: bool, name: &'static str) -> bool {
        self.contains_id(&KeyId::new(tag, name))
    }

    /// Adds `key`; returns `false` if it was already there.
    #[inline]
    pub fn insert_id(&mut self, key: KeyId) -> bool {
        if self.contains_id(&key) {
            return false;
        }
        self.push(key);
        true
    }

    /// Adds `(tag, name)`; returns `false` if it was already there.
    #[inline]
    pub fn insert(&mut self, tag: bool, name: &'static str) -> bool {
        self.insert_id(KeyId::new(tag, name))
    }

    #[inline]
    fn push(&mut self, key: KeyId) {
        self.bloom |= key.bloom_bit();
        if self.len < self.inline.len() {
            self.inline[self.len] = key;
            self.len += 1;
        } else {
            self.spill.push(key);
        }
    }

    /// The Bloom filter of the names in the set: `set.bloom() & group_bloom == 0` proves that no
    /// name of the group is in the set.
    #[inline]
    pub fn bloom(&self) -> u64 {
        self.bloom
    }

    /// Adds keys the caller has proven absent (with [`KeySet::bloom`]).
    #[inline]
    pub fn extend_absent(&mut self, keys: impl IntoIterator<Item = KeyId>) {
        for k in keys {
            self.push(k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_set_distinguishes_tags_lengths_and_long_names() {
        let mut k = KeySet::default();
        assert!(k.insert(false, "request_id"));
        assert!(!k.insert(false, "request_id"));
        assert!(k.insert(true, "request_id"));
        assert!(k.insert(false, "request_ie"));
        assert!(k.insert(false, "request"));
        assert!(k.insert(false, ""));
        assert!(!k.insert(false, ""));
        let names: Vec<&'static str> = (0..100).map(|i| &*format!("field_{i}").leak()).collect();
        for n in &names {
            assert!(k.insert(false, n));
        }
        for n in &names {
            assert!(k.contains(false, n) && !k.contains(true, n));
        }
        k.clear();
        assert!(!k.contains(false, "request_id"));
    }
}
