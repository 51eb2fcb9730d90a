//! The development console format against tracing-subscriber's human formats, on the
//! workload of the project's performance baseline (`docs/performance.md`): one event with four
//! fields inside two entered spans, written to `io::sink()`, without colour (tracing-subscriber
//! is built without its `ansi` feature here), and strata's with colour too.
//!
//! Run with `cargo bench -p strata-console --bench console`.

use std::io;

use criterion::{Criterion, criterion_group, criterion_main};
use tracing::{Dispatch, info, info_span};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::prelude::*;

fn console(color: bool) -> Dispatch {
    Dispatch::new(
        tracing_subscriber::registry().with(LevelFilter::INFO).with(
            strata_console::layer()
                .with_writer(io::sink)
                .with_color(color),
        ),
    )
}

fn fmt_full() -> Dispatch {
    Dispatch::new(
        tracing_subscriber::fmt()
            .with_writer(io::sink)
            .with_ansi(false)
            .with_max_level(LevelFilter::INFO)
            .finish(),
    )
}

fn fmt_compact() -> Dispatch {
    Dispatch::new(
        tracing_subscriber::fmt()
            .compact()
            .with_writer(io::sink)
            .with_ansi(false)
            .with_max_level(LevelFilter::INFO)
            .finish(),
    )
}

fn the_event() {
    info!(
        client = "203.0.113.42:51234",
        status = 200_u16,
        latency_ms = 12.625_f64,
        cache_hit = true,
        "request completed"
    );
}

fn in_two_spans(f: impl FnOnce()) {
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
    f();
}

fn event_in_2_spans(c: &mut Criterion) {
    let mut g = c.benchmark_group("console_event_in_2_spans");
    let configs: [(&str, Dispatch); 4] = [
        ("strata_console", console(false)),
        ("strata_console_colour", console(true)),
        ("fmt_full", fmt_full()),
        ("fmt_compact", fmt_compact()),
    ];
    for (name, d) in &configs {
        tracing::dispatcher::with_default(d, || {
            in_two_spans(|| {
                g.bench_function(*name, |b| b.iter(the_event));
            });
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(3));
    targets = event_in_2_spans
}
criterion_main!(benches);
