//! The workload of the project's performance baseline and the subscribers compared on it,
//! shared by the benchmarks, the profiling example and the allocation test.

use std::io;

use tracing::{Dispatch, debug, info, info_span};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::prelude::*;

/// strata-json to `io::sink()` behind a global INFO filter, like every peer.
pub(crate) fn strata_dispatch() -> Dispatch {
    Dispatch::new(
        tracing_subscriber::registry().with(LevelFilter::INFO).with(
            strata_json::layer()
                .with_service("bench")
                .with_writer(io::sink),
        ),
    )
}

/// The same with redaction on (strata's default rules), as the staging and production profiles
/// run it.
pub(crate) fn strata_redacted_dispatch() -> Dispatch {
    Dispatch::new(
        tracing_subscriber::registry().with(LevelFilter::INFO).with(
            strata_json::layer()
                .with_service("bench")
                .with_redaction(Some(std::sync::Arc::new(strata_core::Redaction::new())))
                .with_writer(io::sink),
        ),
    )
}

/// `tracing_subscriber::fmt().json()` with flatten, current span and span list, to `io::sink()`.
pub(crate) fn fmt_json_dispatch() -> Dispatch {
    Dispatch::new(
        tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(true)
            .with_writer(io::sink)
            .with_max_level(LevelFilter::INFO)
            .finish(),
    )
}

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
    in_handler_span(f)
}

/// Creates and enters the workload's inner (handler) span, runs `f` inside it, closes it.
#[inline(always)]
pub(crate) fn in_handler_span<R>(f: impl FnOnce() -> R) -> R {
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
