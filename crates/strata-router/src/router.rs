//! The severity router: each event goes to every route whose filter matches, rendered once per
//! distinct format however many sinks take it.

use std::cell::RefCell;
use std::fmt;
use std::io::{self, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use strata_core::redact::Redaction;
use strata_core::{ErrorClass, Severity, store};
use strata_json::JsonFormat;
use tracing_core::field::{Field, Visit};
use tracing_core::span::{Attributes, Id, Record};
use tracing_core::{Event, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

use crate::nonblocking::NonBlocking;
use crate::predicate::{FieldLookup, FieldPredicate};

/// What a sink may want to know about the event behind a line, besides the line itself.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct EventInfo {
    /// The event's severity (CRITICAL for `critical!` events).
    pub severity: Severity,
    /// The event's metadata: target, module, file, line, level.
    pub metadata: &'static Metadata<'static>,
}

impl EventInfo {
    /// Info for an event of `severity` with `metadata`.
    pub fn new(severity: Severity, metadata: &'static Metadata<'static>) -> Self {
        EventInfo { severity, metadata }
    }
}

/// Metadata for lines written without an event (`Sink::write_line` on a sink that wants one).
pub(crate) fn line_metadata() -> &'static tracing_core::Metadata<'static> {
    struct Cs;
    impl tracing_core::Callsite for Cs {
        fn set_interest(&self, _: tracing_core::Interest) {}
        fn metadata(&self) -> &tracing_core::Metadata<'_> {
            &META
        }
    }
    static CS: Cs = Cs;
    static META: tracing_core::Metadata<'static> = tracing_core::Metadata::new(
        "line",
        "strata_router",
        tracing_core::Level::INFO,
        None,
        None,
        None,
        tracing_core::field::FieldSet::new(&[], tracing_core::identify_callsite!(&CS)),
        tracing_core::metadata::Kind::EVENT,
    );
    &META
}

/// Where rendered lines go.
pub trait Sink: Send + Sync + 'static {
    /// Writes one rendered line (with its newline).
    ///
    /// # Errors
    ///
    /// The sink's I/O error; the router counts it and never panics.
    fn write_line(&self, line: &[u8]) -> io::Result<()>;

    /// Writes one rendered line of the event described by `event` (sinks that need the
    /// severity or the call site, like syslog and the alert sinks, override this). Default:
    /// [`Sink::write_line`].
    ///
    /// # Errors
    ///
    /// The sink's I/O error.
    fn write_event(&self, event: &EventInfo, line: &[u8]) -> io::Result<()> {
        let _ = event;
        self.write_line(line)
    }

    /// Flushes buffered lines.
    ///
    /// # Errors
    ///
    /// The sink's I/O error.
    fn flush(&self) -> io::Result<()> {
        Ok(())
    }

    /// Whether the sink sends over the network: such sinks never receive events from the
    /// network stack and telemetry crates (no feedback loops). Default: `false`.
    fn is_network(&self) -> bool {
        false
    }
}

/// Standard output.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stdout;

impl Sink for Stdout {
    fn write_line(&self, line: &[u8]) -> io::Result<()> {
        io::stdout().lock().write_all(line)
    }
    fn flush(&self) -> io::Result<()> {
        io::stdout().lock().flush()
    }
}

/// Standard error.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stderr;

impl Sink for Stderr {
    fn write_line(&self, line: &[u8]) -> io::Result<()> {
        io::stderr().lock().write_all(line)
    }
}

impl Sink for NonBlocking {
    fn write_line(&self, line: &[u8]) -> io::Result<()> {
        self.push(line);
        Ok(())
    }
    fn flush(&self) -> io::Result<()> {
        Write::flush(&mut self.clone())
    }
}

/// Targets whose events never reach network sinks: the network stack and telemetry crates
/// (and strata's own sinks), whose logs would otherwise be sent again and again.
pub const NO_NETWORK_TARGETS: &[&str] = strata_core::TELEMETRY_TARGETS;

/// How a route renders events.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Format {
    /// A strata-json format (any preset).
    Json(JsonFormat),
    /// One human-readable line: `TIMESTAMP LEVEL target: message key=value …`.
    Text,
}

impl Format {
    fn key(&self) -> u64 {
        match self {
            Format::Json(f) => f.id(),
            Format::Text => 0,
        }
    }

    /// The format as a router with `redaction` renders it: a JSON format without rules of its
    /// own gets the router's (the text format reads them from the router).
    fn with_fallback(&self, redaction: Option<&Arc<Redaction>>) -> Format {
        match (self, redaction) {
            (Format::Json(f), Some(r)) if f.redaction().is_none() => {
                Format::Json(f.clone().with_redaction(Some(Arc::clone(r))))
            }
            _ => self.clone(),
        }
    }
}

/// Which events a route takes.
#[derive(Debug, Clone)]
pub struct RouteFilter {
    min: Severity,
    max: Severity,
    include: Vec<String>,
    exclude: Vec<String>,
    classes: Option<Vec<ErrorClass>>,
    fields: Vec<FieldPredicate>,
}

impl Default for RouteFilter {
    fn default() -> Self {
        RouteFilter {
            min: Severity::Info,
            max: Severity::Critical,
            include: Vec::new(),
            exclude: Vec::new(),
            classes: None,
            fields: Vec::new(),
        }
    }
}

impl RouteFilter {
    /// Events from `min` to `max` severity (inclusive). Default: INFO to CRITICAL.
    #[must_use]
    pub fn with_levels(mut self, min: Severity, max: Severity) -> Self {
        self.min = min;
        self.max = max;
        self
    }

    /// Only events whose target starts with one of these prefixes (repeatable).
    #[must_use]
    pub fn with_target(mut self, prefix: impl Into<String>) -> Self {
        self.include.push(prefix.into());
        self
    }

    /// No events whose target starts with this prefix (repeatable).
    #[must_use]
    pub fn without_target(mut self, prefix: impl Into<String>) -> Self {
        self.exclude.push(prefix.into());
        self
    }

    /// Only events carrying `error.class` = one of these (events logged with `log_error!`).
    #[must_use]
    pub fn with_classes(mut self, classes: impl IntoIterator<Item = ErrorClass>) -> Self {
        self.classes = Some(classes.into_iter().collect());
        self
    }

    /// Only events whose field (or, failing that, the nearest enclosing span's field)
    /// satisfies `predicate` (repeatable: all must hold).
    ///
    /// ```
    /// use strata_router::RouteFilter;
    ///
    /// let server_errors = RouteFilter::default().with_field("status >= 500".parse().unwrap());
    /// ```
    #[must_use]
    pub fn with_field(mut self, predicate: FieldPredicate) -> Self {
        self.fields.push(predicate);
        self
    }

    fn matches(&self, meta: &Metadata<'_>, sev: Severity, class: Option<ErrorClass>) -> bool {
        let target = meta.target();
        sev >= self.min
            && sev <= self.max
            && (self.include.is_empty()
                || self.include.iter().any(|p| target_has_prefix(target, p)))
            && !self.exclude.iter().any(|p| target_has_prefix(target, p))
            && self
                .classes
                .as_ref()
                .is_none_or(|cs| class.is_some_and(|c| cs.contains(&c)))
    }
}

/// `target` is `prefix` or a module below it (`hyper` matches `hyper::proto`, not `hyperx`).
fn target_has_prefix(target: &str, prefix: &str) -> bool {
    target.starts_with(prefix)
        && (target.len() == prefix.len()
            || target[prefix.len()..].starts_with("::")
            || target[prefix.len()..].starts_with('-')
            || prefix.ends_with(':')
            || prefix.ends_with('_'))
}

/// One route: a filter, a format and a sink.
pub struct Route {
    filter: RouteFilter,
    format: Format,
    sink: Arc<dyn Sink>,
}

impl fmt::Debug for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Route")
            .field("filter", &self.filter)
            .field("format", &self.format)
            .field("network", &self.sink.is_network())
            .finish()
    }
}

impl Route {
    /// A route sending what `filter` takes, rendered with `format`, to `sink`.
    pub fn new(filter: RouteFilter, format: Format, sink: impl Sink) -> Self {
        Route {
            filter,
            format,
            sink: Arc::new(sink),
        }
    }
}

/// The router layer.
///
/// With [`RouterLayer::with_redaction`], secrets are masked in every line it renders: text
/// lines, and JSON lines of formats without rules of their own — so alert sinks, files, syslog
/// and the standard streams never see them.
///
/// ```
/// use strata_router::{Format, Route, RouteFilter, RouterLayer, Stderr, Stdout};
/// use strata_core::Severity;
/// use tracing_subscriber::prelude::*;
///
/// let json = Format::Json(strata_json::JsonFormat::new());
/// let router = RouterLayer::new()
///     .with_route(Route::new(RouteFilter::default(), json.clone(), Stdout))
///     .with_route(Route::new(
///         RouteFilter::default().with_levels(Severity::Error, Severity::Critical),
///         Format::Text,
///         Stderr,
///     ));
/// let subscriber = tracing_subscriber::registry().with(router);
/// tracing::subscriber::with_default(subscriber, || tracing::error!("to both"));
/// ```
#[derive(Debug, Default)]
pub struct RouterLayer {
    routes: Vec<Route>,
    /// Distinct formats (as rendered: with the router's redaction where it applies), and for
    /// each route the index of its format.
    formats: Vec<Format>,
    route_format: Vec<usize>,
    /// The key (as given) of each of `formats`: routes given equal formats share a rendering.
    format_keys: Vec<u64>,
    redaction: Option<Arc<Redaction>>,
    /// Identifies `redaction` in the text format's per-thread cache of field-name decisions.
    redaction_id: u64,
    needs_class: bool,
    /// Whether some route has field predicates.
    needs_fields: bool,
    /// Whether some route's sink is a network sink (only then is the target checked against
    /// [`NO_NETWORK_TARGETS`]).
    has_network: bool,
    id: u64,
    write_errors: Arc<AtomicU64>,
}

impl RouterLayer {
    /// A router with no routes.
    #[must_use]
    pub fn new() -> Self {
        RouterLayer {
            id: store::next_id(),
            ..Default::default()
        }
    }

    /// Adds a route.
    #[must_use]
    pub fn with_route(mut self, route: Route) -> Self {
        let idx = self.format_index(&route.format);
        self.needs_class |= route.filter.classes.is_some();
        self.needs_fields |= !route.filter.fields.is_empty();
        self.has_network |= route.sink.is_network();
        self.route_format.push(idx);
        self.routes.push(route);
        self
    }

    /// Masks secrets in every line the router renders (see [`strata_core::redact`]): text
    /// lines mask the values of sensitive fields (the event's and its spans') whatever their
    /// type and pass the message and text values through [`Redaction::redact`]; JSON routes
    /// whose [`JsonFormat`] has no rules of its own ([`JsonFormat::with_redaction`]) render
    /// with these (a format with its own rules keeps them). Applies to the routes added before
    /// and after. Default: none.
    #[must_use]
    pub fn with_redaction(mut self, redaction: Option<Arc<Redaction>>) -> Self {
        self.redaction = redaction;
        self.redaction_id = store::next_id();
        self.formats.clear();
        self.format_keys.clear();
        let routes = std::mem::take(&mut self.routes);
        self.route_format = routes
            .iter()
            .map(|r| self.format_index(&r.format))
            .collect();
        self.routes = routes;
        self
    }

    /// The redaction rules in use, if any.
    pub fn redaction(&self) -> Option<&Arc<Redaction>> {
        self.redaction.as_ref()
    }

    /// The index in `formats` of the rendering of `format`, added when new.
    fn format_index(&mut self, format: &Format) -> usize {
        let key = format.key();
        match self.format_keys.iter().position(|k| *k == key) {
            Some(i) => i,
            None => {
                self.formats
                    .push(format.with_fallback(self.redaction.as_ref()));
                self.format_keys.push(key);
                self.formats.len() - 1
            }
        }
    }

    /// Lines the sinks failed to take.
    pub fn write_errors(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.write_errors)
    }

    fn render<S>(&self, format: &Format, event: &Event<'_>, ctx: &Context<'_, S>, out: &mut Vec<u8>)
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        match format {
            Format::Json(f) => f.format_event(event, ctx, out),
            Format::Text => {
                let rules = self.redaction.as_deref().map(|r| crate::text::Rules {
                    redaction: r,
                    id: self.redaction_id,
                });
                crate::text::format_event(event, ctx, rules, out);
            }
        }
    }
}

thread_local! {
    /// One buffer per distinct format, reused.
    static BUFFERS: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// Whether every predicate holds for the event's field or, failing that, the nearest enclosing
/// span's.
fn fields_match<S>(predicates: &[FieldPredicate], event: &Event<'_>, ctx: &Context<'_, S>) -> bool
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    if predicates.is_empty() {
        return true;
    }
    let mut lookup = FieldLookup {
        predicates,
        found: Vec::new(),
    };
    event.record(&mut lookup);
    predicates.iter().all(|p| {
        if let Some(v) = lookup.get(p.field()) {
            return p.test(Some(v));
        }
        let from_span = ctx.event_scope(event).and_then(|scope| {
            scope.into_iter().find_map(|span| {
                let ext = span.extensions();
                ext.get::<store::SpanFields>()
                    .and_then(|f| f.get(p.field()).cloned())
            })
        });
        p.test(from_span.as_ref())
    })
}

/// Finds the `error.class` field of an event.
struct ClassVisitor(Option<ErrorClass>);

impl Visit for ClassVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "error.class" {
            self.0 = ErrorClass::from_name(value);
        }
    }
    fn record_debug(&mut self, _: &Field, _: &dyn fmt::Debug) {}
}

impl<S> Layer<S> for RouterLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        // JSON formats render the span's fields at its first line (`JsonFormat::prepare_span`).
        store::fields_mut(&mut span.extensions_mut(), attrs, self.id);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        store::on_record(id, values, &ctx, self.id);
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let meta = event.metadata();
        let sev = Severity::of(meta);
        let class = if self.needs_class && meta.fields().field("error.class").is_some() {
            let mut v = ClassVisitor(None);
            event.record(&mut v);
            v.0
        } else {
            None
        };
        let no_network = self.has_network && strata_core::is_telemetry_target(meta.target());
        let info = EventInfo::new(sev, meta);
        BUFFERS.with(|cell| {
            let Ok(mut bufs) = cell.try_borrow_mut() else {
                return;
            };
            if bufs.len() < self.formats.len() {
                bufs.resize_with(self.formats.len(), Vec::new);
            }
            for b in bufs.iter_mut() {
                b.clear();
            }
            for (route, &fi) in self.routes.iter().zip(&self.route_format) {
                if !route.filter.matches(meta, sev, class)
                    || (no_network && route.sink.is_network())
                    || (self.needs_fields && !fields_match(&route.filter.fields, event, &ctx))
                {
                    continue;
                }
                if bufs[fi].is_empty() {
                    self.render(&self.formats[fi], event, &ctx, &mut bufs[fi]);
                }
                if route.sink.write_event(&info, &bufs[fi]).is_err() {
                    self.write_errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
}
