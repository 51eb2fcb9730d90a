//! Context in async code (Python's `contextvars` + a logging filter): a span is the context.
//! Concurrent requests interleave their lines, each line keeps its own `request_id`; strata's
//! `spawn` and `spawn_blocking` carry the span into new tasks (plain `tokio::spawn` does not);
//! `JobContext` carries it through a queue to a worker; a timeout is an event like any other.
//!
//! Run with `cargo run -p example-guide --bin async_context`.

use std::time::Duration;

use strata::request_id::{JobContext, RequestId};
use tokio::sync::mpsc;
use tracing::{Instrument, info, warn};

/// One request: its lines, those of the tasks it starts, and a job for the worker.
async fn handle(order: u64, jobs: mpsc::Sender<(u64, JobContext)>) {
    strata::request_id::record_user(1000 + order);
    info!(order, "order received");
    tokio::time::sleep(Duration::from_millis(fastrand_ms(order))).await;

    // Keeps the request's span: this line has its request_id.
    let mail = strata::request_id::spawn(async move { info!(order, "confirmation e-mail sent") });
    // Plain tokio::spawn starts with no span: this line has no request_id.
    let audit = tokio::spawn(async move { info!(order, "audit record written (context lost)") });
    // Blocking work on the blocking pool, still in the request.
    let pdf = strata::request_id::spawn_blocking(move || info!(order, "invoice PDF rendered"));
    let _ = tokio::join!(mail, audit, pdf);

    // asyncio.wait_for(…, timeout): tokio::time::timeout, and say so when it fires.
    let inventory = tokio::time::sleep(Duration::from_millis(if order == 2 { 200 } else { 1 }));
    if tokio::time::timeout(Duration::from_millis(50), inventory)
        .await
        .is_err()
    {
        warn!(order, timeout_ms = 50, "inventory call timed out");
    }

    // The job carries the request's context through the queue (serialisable with serde).
    let _ = jobs.send((order, JobContext::capture())).await;
    info!(order, "order queued for fulfilment");
}

/// A different pause per order, so the requests' lines interleave.
fn fastrand_ms(order: u64) -> u64 {
    [0, 15, 5, 10][order as usize % 4]
}

#[tokio::main]
async fn main() {
    example_guide::workdir("async_context");
    let mut builder = strata::builder().with_service("shop");
    if std::env::var_os("STRATA_ENV").is_none() {
        builder = builder.with_profile(strata::Profile::Staging);
    }
    let guard = builder.init();

    // The worker: each job runs in a `job` span with the originating request's ID.
    let (jobs, mut queue) = mpsc::channel::<(u64, JobContext)>(16);
    let worker = tokio::spawn(async move {
        while let Some((order, context)) = queue.recv().await {
            async { info!(order, "receipt sent") }
                .instrument(context.span("send_receipt"))
                .await;
        }
    });

    // Three requests at once, each in its own request span.
    let requests: Vec<_> = (1..=3)
        .map(|order| {
            let span = strata::request_id::request_span(&RequestId::generate());
            tokio::spawn(handle(order, jobs.clone()).instrument(span))
        })
        .collect();
    for r in requests {
        let _ = r.await;
    }
    drop(jobs);
    let _ = worker.await;

    // asyncio.all_tasks(): the runtime's live task count is a metric (the lag probe's runtime).
    let exposition = guard.metrics().expect("metrics are on").encode();
    eprintln!(
        "[guide] tokio_alive_tasks = {:?}, tokio_workers = {:?}",
        example_guide::sample(&exposition, "tokio_alive_tasks", &[]),
        example_guide::sample(&exposition, "tokio_workers", &[])
    );
    eprintln!(
        "[guide] look at: lines of orders 1, 2, 3 interleave, yet each order's lines share one \
         request_id and user_id; \"context lost\" lines have none; \"receipt sent\" runs in the \
         worker with the request's request_id and job = send_receipt"
    );
}
