//! One request span as strata-request-id's middleware makes it: shared by the bench and the
//! profiling example.

use std::hint::black_box;

use tracing::field::Empty;

/// Creates, enters and closes the span, recording status and duration at the end.
pub(crate) fn request() {
    let span = tracing::info_span!(
        target: "strata_request_id::server",
        "request",
        request_id = "0193a9f0-7c1e-7b55-9a0e-4d6f4a1f2b3c",
        method = "GET",
        route = "/api/v1/users/{id}",
        path = "/api/v1/users/42",
        user_id = Empty,
        status_code = Empty,
        duration_ms = Empty,
    );
    span.in_scope(|| black_box(()));
    tracing::record_all!(span, status_code = 200_u64, duration_ms = 12.5);
}
