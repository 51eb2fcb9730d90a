//! The workload of the project's performance baseline, shared by the benchmark, the profiling
//! example and the allocation test.

use tracing::{debug, info, info_span};

/// The event: four fields and a message.
#[inline(always)]
pub(crate) fn the_event() {
    info!(
        client = "203.0.113.42:51234",
        status = 200_u16,
        latency_ms = 12.625_f64,
        cache_hit = true,
        "request completed"
    );
}

/// The same event at DEBUG, below the INFO maximum.
#[inline(always)]
pub(crate) fn disabled_event() {
    debug!(
        client = "203.0.113.42:51234",
        status = 200_u16,
        latency_ms = 12.625_f64,
        cache_hit = true,
        "request completed"
    );
}

/// Creates and enters the workload's two spans, runs `f` inside them, exits and closes them.
#[inline(always)]
pub(crate) fn in_two_spans<R>(f: impl FnOnce() -> R) -> R {
    let request = info_span!(
        "request",
        request_id = "67e55044-10b1-426f-9247-bb680e5fe0c8",
        user_id = 424242_u64
    );
    let _r = request.enter();
    let handler = info_span!(
        "handler",
        route = "/api/v1/users/{id}/orders",
        method = "GET"
    );
    let _h = handler.enter();
    f()
}

/// Both spans created and entered, the event once, both spans exited and closed.
#[inline(always)]
pub(crate) fn request_unit() {
    in_two_spans(the_event);
}
