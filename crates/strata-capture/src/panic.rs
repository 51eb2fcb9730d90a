//! The last-resort safety net: a panic hook that logs CRITICAL with the panic's message,
//! location, thread and backtrace in the current request's context (so the capture layer
//! captures it), flushes every registered writer, sink and transport with a deadline, then
//! runs the previous hook.

use std::cell::Cell;
use std::panic::PanicHookInfo;
use std::time::{Duration, Instant};

thread_local! {
    /// Set while this thread runs the hook: a panic inside it goes straight to the previous hook.
    static IN_HOOK: Cell<bool> = const { Cell::new(false) };
}

/// Installs the hook with a 5-second flush deadline. Works for panics on the main thread,
/// other threads and tokio tasks, and under `panic = "abort"` (the hook runs before the abort).
pub fn install_panic_hook() {
    install_panic_hook_with(Duration::from_secs(5));
}

/// Installs the hook; flushing waits at most `deadline`. Installing it again does nothing.
pub fn install_panic_hook_with(deadline: Duration) {
    static INSTALLED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if INSTALLED.swap(true, std::sync::atomic::Ordering::AcqRel) {
        return;
    }
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !IN_HOOK.with(|h| h.replace(true)) {
            log_panic(info);
            strata_core::flush::flush_all(Instant::now() + deadline);
            IN_HOOK.with(|h| h.set(false));
        }
        previous(info);
    }));
}

fn log_panic(info: &PanicHookInfo<'_>) {
    let message = info
        .payload()
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| info.payload().downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "Box<dyn Any>".to_owned());
    let location = info.location().map_or_else(
        || "<unknown>".to_owned(),
        |l| format!("{}:{}:{}", l.file(), l.line(), l.column()),
    );
    let thread = std::thread::current();
    let thread = thread.name().unwrap_or("<unnamed>");
    let backtrace = std::backtrace::Backtrace::force_capture();
    tracing::error!(
        target: "panic",
        {
            strata.critical = true,
            error.class = "system",
            panic.location = %location,
            panic.thread = thread,
            backtrace = %backtrace,
        },
        "panicked: {message}"
    );
}
