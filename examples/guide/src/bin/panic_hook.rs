//! The last-resort safety net (Python's `sys.excepthook`): with capture on, `strata::init`
//! installs a panic hook that logs every panic as CRITICAL — message, location, thread,
//! backtrace, in the context of the request or job it happened in — captures it, and flushes
//! every output before the process goes on or dies.
//!
//! Run with `cargo run -p example-guide --bin panic_hook`. It ends with a panic on the main
//! thread on purpose: expect exit status 101, as with any Rust panic.

use std::collections::HashMap;

use strata::request_id::{JobContext, RequestId};
use tracing::Instrument;

fn main() {
    example_guide::workdir("panic_hook");
    let mut builder = strata::builder()
        .with_service("invoicer")
        .with_version("2.0.1");
    if std::env::var_os("STRATA_ENV").is_none() {
        builder = builder.with_profile(strata::Profile::Staging);
    }
    let guard = builder.init();

    // 1. A thread dies in the middle of a job: logged, captured; the program goes on.
    let job = JobContext::capture().span("nightly_invoices");
    let worker = std::thread::Builder::new()
        .name("invoicer-1".to_owned())
        .spawn(move || {
            let _enter = job.enter();
            let invoices: Vec<u64> = Vec::new();
            tracing::info!(count = invoices.len(), "invoices loaded");
            invoices[0] // index out of bounds
        })
        .expect("a thread");
    let died = worker.join().is_err();
    tracing::warn!(died, "invoicer-1 is gone; the other workers carry on");

    // 2. A tokio task panics inside a request: the runtime keeps serving, the JoinHandle says so.
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    runtime.block_on(async {
        let request = strata::request_id::request_span(&RequestId::generate());
        async {
            // strata's spawn keeps the request's span: the panic line carries its request_id.
            let task = strata::request_id::spawn(async {
                let coupons: HashMap<&str, u32> = HashMap::new(); // not loaded yet
                *coupons.get("SPRING10").expect("coupon code is missing")
            })
            .await;
            tracing::warn!(failed = task.is_err(), "the request's task panicked");
        }
        .instrument(request)
        .await;
    });

    // Both panics are in the error store (flushed by the hook already; this is belt and braces).
    guard.flush();
    eprintln!(
        "[guide] captured so far: {:?}",
        guard.capture_stats().map(|s| s.stored)
    );

    // 3. The main thread panics: CRITICAL line, capture, flush — then the process dies.
    eprintln!("[guide] now panicking on the main thread on purpose (exit status 101)");
    eprintln!(
        "[guide] look at: three CRITICAL \"panicked: …\" lines with panic.thread, \
         panic.location and the job's or request's request_id; .strata/errors.db holds them"
    );
    let _ = std::env::var("SHOP_DATABASE_URL").expect("SHOP_DATABASE_URL is not set");
}
