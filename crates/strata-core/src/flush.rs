//! A process-wide list of things to flush when the process is about to die: the panic hook
//! (strata-capture) calls [`flush_all`] so that lines still queued in background writers,
//! alert sinks and error transports reach their destination before a `panic = "abort"` or the
//! end of `main` kills the threads that would have written them.
//!
//! Each background component registers a flusher when it starts and keeps the returned
//! [`Registration`] in its guard; dropping the registration removes the flusher.
//!
//! ```
//! use std::time::{Duration, Instant};
//!
//! let registration = strata_core::flush::register("my-writer", |deadline: Instant| {
//!     // write out what is queued, giving up at `deadline`
//!     let _ = deadline;
//! });
//! strata_core::flush::flush_all(Instant::now() + Duration::from_secs(2));
//! drop(registration);
//! ```

use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;

type Flusher = dyn Fn(Instant) + Send + Sync;

static REGISTRY: Mutex<Vec<(&'static str, Weak<Flusher>)>> = Mutex::new(Vec::new());

/// Keeps a flusher registered; dropping it unregisters.
#[must_use = "the flusher is unregistered when this is dropped"]
pub struct Registration {
    _flusher: Arc<Flusher>,
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registration").finish_non_exhaustive()
    }
}

/// Registers `flush`, called by [`flush_all`] with the deadline it must respect.
pub fn register(
    name: &'static str,
    flush: impl Fn(Instant) + Send + Sync + 'static,
) -> Registration {
    let flusher: Arc<Flusher> = Arc::new(flush);
    let mut list = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
    list.retain(|(_, w)| w.strong_count() > 0);
    list.push((name, Arc::downgrade(&flusher)));
    Registration { _flusher: flusher }
}

/// Flushes everything registered, in registration order, each bounded by `deadline`. Returns
/// the names of those that were called.
pub fn flush_all(deadline: Instant) -> Vec<&'static str> {
    // Copy the list out so a flusher that logs (and so registers or flushes) cannot deadlock.
    let list: Vec<(&'static str, Arc<Flusher>)> = {
        let list = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
        list.iter()
            .filter_map(|(n, w)| w.upgrade().map(|f| (*n, f)))
            .collect()
    };
    let mut called = Vec::with_capacity(list.len());
    for (name, f) in list {
        if Instant::now() >= deadline {
            break;
        }
        f(deadline);
        called.push(name);
    }
    called
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    #[test]
    fn registered_flushers_run_until_dropped() {
        let hits = Arc::new(AtomicU32::new(0));
        let h = Arc::clone(&hits);
        let reg = register("counter", move |_| {
            h.fetch_add(1, Ordering::SeqCst);
        });
        let called = flush_all(Instant::now() + Duration::from_secs(1));
        assert!(called.contains(&"counter"));
        assert_eq!(hits.load(Ordering::SeqCst), 1);
        drop(reg);
        flush_all(Instant::now() + Duration::from_secs(1));
        assert_eq!(hits.load(Ordering::SeqCst), 1, "unregistered on drop");
    }
}
