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

/// One recorded event.
#[derive(Debug)]
pub(crate) struct Crumb {
    pub(crate) at: SystemTime,
    pub(crate) severity: Severity,
    pub(crate) target: &'static str,
    pub(crate) message: String,
    /// The fields as a JSON object's members, without braces.
    pub(crate) fields: Vec<u8>,
}

impl Crumb {
    fn empty() -> Crumb {
        Crumb {
            at: SystemTime::UNIX_EPOCH,
            severity: Severity::Info,
            target: "",
            message: String::new(),
            fields: Vec::new(),
        }
    }
}

/// Breadcrumbs copied out of rings in one buffer: two allocations however many there are,
/// so taking them on the caller's thread stays cheap; turned into records on the capture thread.
#[derive(Debug, Default)]
pub(crate) struct CrumbBatch {
    /// (time, level, target, message length, fields length), in order.
    items: Vec<(SystemTime, Severity, &'static str, u32, u32)>,
    /// Offsets of each item's message in `bytes`.
    starts: Vec<u32>,
    bytes: Vec<u8>,
}

impl CrumbBatch {
    fn push(&mut self, c: &Crumb) {
        let start = u32::try_from(self.bytes.len()).unwrap_or(u32::MAX);
        self.bytes.extend_from_slice(c.message.as_bytes());
        self.bytes.extend_from_slice(&c.fields);
        self.starts.push(start);
        self.items.push((
            c.at,
            c.severity,
            c.target,
            u32::try_from(c.message.len()).unwrap_or(0),
            u32::try_from(c.fields.len()).unwrap_or(0),
        ));
    }

    /// Keeps the latest `cap`, ordered by time (a stable sort: each ring's order survives).
    fn keep_latest(&mut self, cap: usize) {
        let mut order: Vec<usize> = (0..self.items.len()).collect();
        order.sort_by_key(|&i| self.items[i].0);
        let skip = order.len().saturating_sub(cap);
        let keep = &order[skip..];
        self.items = keep.iter().map(|&i| self.items[i]).collect();
        self.starts = keep.iter().map(|&i| self.starts[i]).collect();
    }

    /// The breadcrumbs as records.
    pub(crate) fn records(&self) -> Vec<BreadcrumbRecord> {
        self.items
            .iter()
            .zip(&self.starts)
            .map(|(&(at, severity, target, m, f), &start)| {
                let start = start as usize;
                let (m, f) = (m as usize, f as usize);
                let message = String::from_utf8_lossy(&self.bytes[start..start + m]).into_owned();
                let mut json = Vec::with_capacity(f + 2);
                json.push(b'{');
                json.extend_from_slice(&self.bytes[start + m..start + m + f]);
                json.push(b'}');
                let data: Map<String, Value> = serde_json::from_slice(&json).unwrap_or_default();
                BreadcrumbRecord {
                    timestamp: strata_core::time::rfc3339(at),
                    level: severity.as_str().to_owned(),
                    target: target.to_owned(),
                    message,
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
}

impl Ring {
    pub(crate) fn new(cap: usize) -> Ring {
        Ring {
            slots: Vec::new(),
            next: 0,
            cap: cap.max(1),
        }
    }

    /// The slot to overwrite: a new one until the ring is full, then the oldest.
    fn next_slot(&mut self) -> &mut Crumb {
        if self.slots.len() < self.cap {
            self.slots.push(Crumb::empty());
            return self.slots.last_mut().expect("just pushed");
        }
        let i = self.next;
        self.next = (self.next + 1) % self.cap;
        &mut self.slots[i]
    }

    /// The breadcrumbs, oldest first.
    fn oldest_first(&self) -> impl Iterator<Item = &Crumb> {
        let (newer, older) = self.slots.split_at(self.next.min(self.slots.len()));
        older.iter().chain(newer)
    }

    /// Copies the breadcrumbs, oldest first, into one buffer.
    pub(crate) fn snapshot(&self) -> CrumbBatch {
        let mut batch = CrumbBatch::default();
        batch.items.reserve(self.slots.len());
        batch.starts.reserve(self.slots.len());
        for c in self.oldest_first() {
            batch.push(c);
        }
        batch
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
    pub(crate) fn with_local<R>(&self, id: u64, cap: usize, f: impl FnOnce(&mut Ring) -> R) -> R {
        let ring = LOCAL.with(|l| {
            let mut l = l.borrow_mut();
            if let Some((_, r)) = l.iter().find(|(i, _)| *i == id) {
                return Arc::clone(r);
            }
            let r = Arc::new(Mutex::new(Ring::new(cap)));
            lock(&self.rings).push(Arc::downgrade(&r));
            l.push((id, Arc::clone(&r)));
            r
        });
        let mut g = lock(&ring);
        f(&mut g)
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

impl<'a> CrumbVisitor<'a> {
    /// Starts a breadcrumb in the ring's next slot.
    pub(crate) fn start(
        ring: &'a mut Ring,
        severity: Severity,
        target: &'static str,
        max: usize,
    ) -> Self {
        let crumb = ring.next_slot();
        crumb.at = strata_core::time::coarse_now();
        crumb.severity = severity;
        crumb.target = target;
        crumb.message.clear();
        crumb.fields.clear();
        CrumbVisitor {
            crumb,
            max,
            class: None,
        }
    }

    fn key(&mut self, field: &Field) {
        if !self.crumb.fields.is_empty() {
            self.crumb.fields.push(b',');
        }
        encode::write_str(&mut self.crumb.fields, field.name());
        self.crumb.fields.push(b':');
    }

    fn clip_message(&mut self) {
        if self.crumb.message.len() > self.max {
            let cut = encode::clip(&self.crumb.message, self.max).len();
            self.crumb.message.truncate(cut);
        }
    }
}

impl Visit for CrumbVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => {
                self.crumb.message.push_str(encode::clip(value, self.max));
            }
            "error.class" => {
                self.class = ErrorClass::from_name(value);
                self.key(field);
                encode::write_str(&mut self.crumb.fields, value);
            }
            _ => {
                self.key(field);
                encode::write_str_truncated(&mut self.crumb.fields, value, self.max);
            }
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.crumb.message, "{value:?}");
            self.clip_message();
        } else if field.name() != strata_core::CRITICAL_FIELD {
            self.key(field);
            encode::write_debug(&mut self.crumb.fields, value, self.max);
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.key(field);
        encode::write_int(&mut self.crumb.fields, value);
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.key(field);
        encode::write_int(&mut self.crumb.fields, value);
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.key(field);
        encode::write_f64(&mut self.crumb.fields, value);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        if field.name() != strata_core::CRITICAL_FIELD {
            self.key(field);
            encode::write_bool(&mut self.crumb.fields, value);
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.key(field);
        encode::write_display(&mut self.crumb.fields, value, self.max);
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
            c.message.clear();
            c.message.push_str(&i.to_string());
        }
        let got: Vec<String> = r
            .snapshot()
            .records()
            .into_iter()
            .map(|c| c.message)
            .collect();
        assert_eq!(got, ["2", "3", "4"]);
        assert_eq!(r.slots.len(), 3);
    }
}
