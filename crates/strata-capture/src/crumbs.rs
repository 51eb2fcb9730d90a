//! Breadcrumbs: the last N events of each request (a ring kept with the request's root span)
//! and of the process outside requests (a ring per thread, merged when an error is captured).
//!
//! Recording reuses the ring's slots, so after warm-up a breadcrumb costs no allocation: the
//! message and fields are written into the slot's buffers.

use std::fmt::{self, Write as _};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::SystemTime;

use serde_json::{Map, Value};
use strata_core::{ErrorClass, Severity, encode};
use tracing_core::field::{Field, Visit};

use crate::event::BreadcrumbRecord;

/// A field value as recorded: numbers raw, text as a range of the slot's text buffer.
/// Formatting (JSON, floats) waits until an error actually needs the breadcrumb.
#[derive(Debug, Clone, Copy)]
enum Raw {
    I64(i64),
    U64(u64),
    F64(f64),
    Bool(bool),
    Text(u32, u32),
}

/// One recorded event.
#[derive(Debug)]
pub(crate) struct Crumb {
    /// Its number in its ring (0, 1, 2, …).
    seq: u64,
    pub(crate) at: SystemTime,
    pub(crate) severity: Severity,
    pub(crate) target: &'static str,
    /// The message's range in `text`.
    message: (u32, u32),
    /// The message and the text of string and formatted values.
    text: Vec<u8>,
    vals: Vec<(&'static str, Raw)>,
}

impl Crumb {
    pub(crate) const fn empty() -> Crumb {
        Crumb {
            seq: 0,
            at: SystemTime::UNIX_EPOCH,
            severity: Severity::Info,
            target: "",
            message: (0, 0),
            text: Vec::new(),
            vals: Vec::new(),
        }
    }
}

fn range(start: usize, end: usize) -> (u32, u32) {
    (
        u32::try_from(start).unwrap_or(u32::MAX),
        u32::try_from(end).unwrap_or(u32::MAX),
    )
}

fn slice(text: &[u8], (a, b): (u32, u32)) -> String {
    String::from_utf8_lossy(text.get(a as usize..b as usize).unwrap_or_default()).into_owned()
}

/// One breadcrumb in a [`CrumbBatch`].
#[derive(Debug, Clone, Copy)]
struct Item {
    at: SystemTime,
    severity: Severity,
    target: &'static str,
    message: (u32, u32),
    vals: (u32, u32),
}

/// Breadcrumbs copied out of rings into flat buffers (three allocations however many there
/// are), so taking them on the caller's thread stays cheap; turned into records on the
/// capture thread.
#[derive(Debug, Default)]
pub(crate) struct CrumbBatch {
    items: Vec<Item>,
    vals: Vec<(&'static str, Raw)>,
    text: Vec<u8>,
}

impl CrumbBatch {
    fn push(&mut self, c: &Crumb) {
        let base = self.text.len();
        self.text.extend_from_slice(&c.text);
        let shift = |(a, b): (u32, u32)| range(base + a as usize, base + b as usize);
        let first = self.vals.len();
        for &(name, v) in &c.vals {
            let v = match v {
                Raw::Text(a, b) => {
                    let (a, b) = shift((a, b));
                    Raw::Text(a, b)
                }
                other => other,
            };
            self.vals.push((name, v));
        }
        self.items.push(Item {
            at: c.at,
            severity: c.severity,
            target: c.target,
            message: shift(c.message),
            vals: range(first, self.vals.len()),
        });
    }

    /// Keeps the latest `cap`, ordered by time (a stable sort: each ring's order survives).
    fn keep_latest(&mut self, cap: usize) {
        self.items.sort_by_key(|i| i.at);
        let skip = self.items.len().saturating_sub(cap);
        self.items.drain(..skip);
    }

    /// The breadcrumbs as records.
    pub(crate) fn records(&self) -> Vec<BreadcrumbRecord> {
        self.items
            .iter()
            .map(|item| {
                let vals = &self.vals[item.vals.0 as usize..item.vals.1 as usize];
                let data: Map<String, Value> = vals
                    .iter()
                    .map(|&(name, v)| {
                        let value = match v {
                            Raw::I64(n) => Value::from(n),
                            Raw::U64(n) => Value::from(n),
                            Raw::F64(n) => serde_json::Number::from_f64(n)
                                .map_or_else(|| Value::String(n.to_string()), Value::Number),
                            Raw::Bool(b) => Value::Bool(b),
                            Raw::Text(a, b) => Value::String(slice(&self.text, (a, b))),
                        };
                        (name.to_owned(), value)
                    })
                    .collect();
                BreadcrumbRecord {
                    timestamp: strata_core::time::rfc3339(item.at),
                    level: item.severity.as_str().to_owned(),
                    target: item.target.to_owned(),
                    message: slice(&self.text, item.message),
                    data,
                }
            })
            .collect()
    }
}

/// A fixed-size ring of breadcrumbs.
#[derive(Debug)]
pub(crate) struct Ring {
    slots: Vec<Crumb>,
    next: usize,
    cap: usize,
    /// Breadcrumbs written so far.
    pushed: u64,
    /// Errors captured in this request so far.
    pub(crate) captured: u32,
}

impl Ring {
    pub(crate) fn new(cap: usize) -> Ring {
        Ring {
            slots: Vec::new(),
            next: 0,
            cap: cap.max(1),
            pushed: 0,
            captured: 0,
        }
    }

    /// How many breadcrumbs were ever written: the number the next one gets.
    pub(crate) fn pushed(&self) -> u64 {
        self.pushed
    }

    /// Moves `crumb` into the next slot; the slot's old buffers go back into `crumb` for reuse.
    pub(crate) fn push(&mut self, crumb: &mut Crumb) {
        let slot = self.next_slot();
        let seq = slot.seq;
        std::mem::swap(slot, crumb);
        slot.seq = seq;
    }

    /// The slot to overwrite: a new one until the ring is full, then the oldest.
    fn next_slot(&mut self) -> &mut Crumb {
        let seq = self.pushed;
        self.pushed += 1;
        let crumb = if self.slots.len() < self.cap {
            self.slots.push(Crumb::empty());
            self.slots.last_mut().expect("just pushed")
        } else {
            let i = self.next;
            self.next = (self.next + 1) % self.cap;
            &mut self.slots[i]
        };
        crumb.seq = seq;
        crumb
    }

    /// The breadcrumbs, oldest first.
    fn oldest_first(&self) -> impl Iterator<Item = &Crumb> {
        let (newer, older) = self.slots.split_at(self.next.min(self.slots.len()));
        older.iter().chain(newer)
    }

    /// Copies the latest `cap` breadcrumbs numbered below `upto`, oldest first, into one
    /// buffer (those written after an error are not its history).
    pub(crate) fn snapshot_before(&self, upto: u64, cap: usize) -> CrumbBatch {
        let wanted = || {
            self.oldest_first()
                .filter(move |c| c.seq < upto && c.seq + cap as u64 >= upto)
        };
        // Sized exactly first: three allocations, no regrowth.
        let (n, text, vals) = wanted().fold((0, 0, 0), |(n, t, v), c| {
            (n + 1, t + c.text.len(), v + c.vals.len())
        });
        let mut batch = CrumbBatch {
            items: Vec::with_capacity(n),
            vals: Vec::with_capacity(vals),
            text: Vec::with_capacity(text),
        };
        for c in wanted() {
            batch.push(c);
        }
        batch
    }
}

/// An error's breadcrumbs: copied already, or to be copied from a request's ring.
#[derive(Debug)]
pub(crate) enum Crumbs {
    /// Copied on the caller's thread.
    Now(CrumbBatch),
    /// The latest `cap` numbered below `upto` in `ring`.
    Later {
        ring: SharedRing,
        upto: u64,
        cap: usize,
    },
}

impl Crumbs {
    /// The breadcrumbs as records.
    pub(crate) fn records(&self) -> Vec<BreadcrumbRecord> {
        match self {
            Crumbs::Now(batch) => batch.records(),
            Crumbs::Later { ring, upto, cap } => {
                // Copy under the lock, format after it.
                let batch = lock(ring).snapshot_before(*upto, *cap);
                batch.records()
            }
        }
    }
}

/// A ring shared by the spans of one request (root span and descendants).
pub(crate) type SharedRing = Arc<Mutex<Ring>>;

/// The per-thread rings of one capture layer, merged into the global breadcrumbs.
#[derive(Debug, Default)]
pub(crate) struct ThreadRings {
    rings: Mutex<Vec<Weak<Mutex<Ring>>>>,
}

thread_local! {
    /// (layer id, this thread's ring for that layer)
    static LOCAL: std::cell::RefCell<Vec<(u64, SharedRing)>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl ThreadRings {
    /// Runs `f` with this thread's ring for layer `id`.
    /// Runs `f` with this thread's ring for layer `id` (not during thread teardown).
    pub(crate) fn with_local(&self, id: u64, cap: usize, f: impl FnOnce(&mut Ring)) {
        let ring = LOCAL.try_with(|l| {
            let mut l = l.try_borrow_mut().ok()?;
            if let Some((_, r)) = l.iter().find(|(i, _)| *i == id) {
                return Some(Arc::clone(r));
            }
            let r = Arc::new(Mutex::new(Ring::new(cap)));
            let mut rings = lock(&self.rings);
            // Rings of threads that have ended go here, not only when an error needs them.
            rings.retain(|w| w.strong_count() > 0);
            rings.push(Arc::downgrade(&r));
            l.push((id, Arc::clone(&r)));
            Some(r)
        });
        if let Ok(Some(ring)) = ring {
            f(&mut lock(&ring));
        }
    }

    /// The latest `cap` breadcrumbs of all threads, oldest first.
    pub(crate) fn snapshot(&self, cap: usize) -> CrumbBatch {
        let rings: Vec<SharedRing> = {
            let mut list = lock(&self.rings);
            list.retain(|w| w.strong_count() > 0);
            list.iter().filter_map(Weak::upgrade).collect()
        };
        let mut batch = CrumbBatch::default();
        for r in &rings {
            for c in lock(r).oldest_first() {
                batch.push(c);
            }
        }
        batch.keep_latest(cap);
        batch
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Writes an event into a breadcrumb slot.
pub(crate) struct CrumbVisitor<'a> {
    crumb: &'a mut Crumb,
    max: usize,
    /// The event's `error.class`, noticed on the way.
    pub(crate) class: Option<ErrorClass>,
}

/// `fmt::Write` into a byte buffer.
/// `value`'s `Debug` (or, with `display`, `Display`) text, at most about `max` bytes, cut on a
/// character boundary; formatting stops early for huge values.
pub(crate) fn bounded(value: &dyn fmt::Debug, max: usize) -> String {
    let mut buf = Vec::new();
    let limit = max.saturating_add(4);
    let _ = write!(
        Bytes {
            buf: &mut buf,
            limit
        },
        "{value:?}"
    );
    let text = String::from_utf8_lossy(&buf);
    encode::clip_marked(&text, max).into_owned()
}

/// Stops taking text a little past `limit` bytes, so a huge `Debug` value costs neither time
/// nor memory (the result is then cut on a character boundary).
struct Bytes<'a> {
    buf: &'a mut Vec<u8>,
    limit: usize,
}

impl fmt::Write for Bytes<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = self.limit.saturating_sub(self.buf.len());
        if room == 0 {
            return Err(fmt::Error);
        }
        let s = &s.as_bytes()[..s.len().min(room)];
        self.buf.extend_from_slice(s);
        Ok(())
    }
}

impl<'a> CrumbVisitor<'a> {
    /// Starts a breadcrumb in `crumb` (a scratch one, moved into a ring afterwards).
    pub(crate) fn new(
        crumb: &'a mut Crumb,
        severity: Severity,
        target: &'static str,
        max: usize,
    ) -> Self {
        // One huge value must not keep its buffer forever.
        if crumb.text.capacity() > 16 * max.max(1024) {
            crumb.text = Vec::new();
        }
        crumb.at = strata_core::time::coarse_now();
        crumb.severity = severity;
        crumb.target = target;
        crumb.message = (0, 0);
        crumb.text.clear();
        crumb.vals.clear();
        CrumbVisitor {
            crumb,
            max,
            class: None,
        }
    }

    /// Appends text (cut to the maximum length) and returns its range.
    fn text(&mut self, write: impl FnOnce(&mut Vec<u8>)) -> (u32, u32) {
        let start = self.crumb.text.len();
        write(&mut self.crumb.text);
        let written = &self.crumb.text[start..];
        if written.len() > self.max {
            // Cut on a character boundary (the text is UTF-8 but for lossy debug output).
            let keep =
                std::str::from_utf8(written).map_or(self.max, |s| encode::clip(s, self.max).len());
            self.crumb.text.truncate(start + keep);
        }
        range(start, self.crumb.text.len())
    }

    fn put(&mut self, field: &Field, v: Raw) {
        self.crumb.vals.push((field.name(), v));
    }
}

impl Visit for CrumbVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        let r = self.text(|t| t.extend_from_slice(value.as_bytes()));
        match field.name() {
            "message" => self.crumb.message = r,
            "error.class" => {
                self.class = ErrorClass::from_name(value);
                self.put(field, Raw::Text(r.0, r.1));
            }
            _ => self.put(field, Raw::Text(r.0, r.1)),
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == strata_core::CRITICAL_FIELD {
            return;
        }
        let max = self.max;
        let r = self.text(|t| {
            let limit = t.len() + max.saturating_add(4);
            let _ = write!(Bytes { buf: t, limit }, "{value:?}");
        });
        if field.name() == "message" {
            self.crumb.message = r;
        } else {
            self.put(field, Raw::Text(r.0, r.1));
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Raw::I64(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Raw::U64(value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, Raw::F64(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        if field.name() != strata_core::CRITICAL_FIELD {
            self.put(field, Raw::Bool(value));
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        let max = self.max;
        let r = self.text(|t| {
            let limit = t.len() + max.saturating_add(4);
            let _ = write!(Bytes { buf: t, limit }, "{value}");
        });
        self.put(field, Raw::Text(r.0, r.1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ring_keeps_the_latest_in_order_and_reuses_slots() {
        let mut r = Ring::new(3);
        for i in 0..5 {
            let c = r.next_slot();
            c.text.clear();
            c.text.extend_from_slice(i.to_string().as_bytes());
            c.message = range(0, c.text.len());
        }
        let got: Vec<String> = r
            .snapshot_before(5, 3)
            .records()
            .into_iter()
            .map(|c| c.message)
            .collect();
        assert_eq!(got, ["2", "3", "4"]);
        assert_eq!(r.slots.len(), 3);
        // The history of the event numbered 4: before it, at most 2.
        let got: Vec<String> = r
            .snapshot_before(4, 2)
            .records()
            .into_iter()
            .map(|c| c.message)
            .collect();
        assert_eq!(got, ["2", "3"]);
    }
}
