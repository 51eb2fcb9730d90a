//! The body of the panic tests' child process, shared by `tests/panic.rs` (which re-runs its
//! own binary) and `examples/panic_probe.rs` (built with `panic = "abort"` by `scripts/test.sh`).

use std::path::Path;

use strata_capture::Capture;
use strata_router::{NonBlockingBuilder, RollingFile};
use tracing_subscriber::prelude::*;

/// Lines logged before the panic.
pub(crate) const LINES: usize = 2000;

/// Logs [`LINES`] lines to `dir/app.log` through the non-blocking writer, captures into
/// `dir/errors.db`, leaks the guards (only the panic hook can flush), then panics as `mode`
/// says: `main`, `thread`, `task` or `debug`; a `-abort` suffix aborts right after the hooks.
pub(crate) fn run(mode: &str, dir: &str) {
    let file = RollingFile::new(dir, "app").open().unwrap();
    let (writer, writer_guard) = NonBlockingBuilder::default().spawn(file).unwrap();
    let (capture, capture_guard) = Capture::new()
        .with_release("9.9.9")
        .with_store(Path::new(dir).join("errors.db"))
        .start()
        .unwrap();
    tracing_subscriber::registry()
        .with(strata_core::StoreLayer::default())
        .with(strata_json::layer().with_writer(move || writer.clone()))
        .with(capture)
        .init();
    if mode.ends_with("-abort") {
        // What `panic = "abort"` does after the hooks: no unwinding, no destructors.
        std::panic::set_hook(Box::new(|_| std::process::abort()));
    }
    strata_capture::install_panic_hook();
    // Only the hook can flush now.
    std::mem::forget(writer_guard);
    std::mem::forget(capture_guard);
    let request = tracing::info_span!("request", request_id = "req-panic");
    let _r = request.enter();
    for i in 0..LINES {
        tracing::info!(i, "line {i}");
    }
    match mode.trim_end_matches("-abort") {
        "main" => panic!("boom on main"),
        "debug" => {
            // The application's Debug impl panics while a breadcrumb is being written.
            struct Bomb;
            impl std::fmt::Debug for Bomb {
                fn fmt(&self, _: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    panic!("boom in Debug")
                }
            }
            tracing::info!(value = ?Bomb, "about to explode");
        }
        "thread" => {
            let _ = std::thread::Builder::new()
                .name("worker-7".into())
                .spawn(|| panic!("boom in thread"))
                .unwrap()
                .join();
        }
        "task" => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .build()
                .unwrap();
            let _ = rt.block_on(async { tokio::spawn(async { panic!("boom in task") }).await });
        }
        other => unreachable!("{other}"),
    }
    // The process dies without running destructors.
    std::process::exit(101);
}
