//! The application's stack frames, for backtraces under ERROR and CRITICAL lines.

use smallvec::SmallVec;

use crate::render::Frame;

/// The most frames shown under a line.
pub(crate) const MAX_FRAMES: usize = 12;

/// Crates whose frames are not the application's: the standard library, the runtime, the
/// logging machinery (this crate included) and common framework plumbing.
const NOT_APP: &[&str] = &[
    "std",
    "core",
    "alloc",
    "backtrace",
    "test",
    "tokio",
    "tracing",
    "tracing_core",
    "tracing_subscriber",
    "futures",
    "futures_core",
    "futures_util",
    "hyper",
    "hyper_util",
    "tower",
    "tower_http",
    "axum",
    "axum_core",
];

/// A resolved frame, owned.
#[derive(Debug)]
pub(crate) struct OwnedFrame {
    function: String,
    file: Option<String>,
    line: Option<u32>,
}

impl OwnedFrame {
    pub(crate) fn as_frame(&self) -> Frame<'_> {
        Frame {
            function: &self.function,
            file: self.file.as_deref(),
            line: self.line,
        }
    }
}

/// The crate a demangled function name belongs to: the first path segment of the name, or of
/// the self type of a trait method (`<shop::Order as core::fmt::Display>::fmt` → `shop`), or,
/// when the self type is a bare generic parameter, of the trait.
fn crate_of(function: &str) -> Option<&str> {
    let f = function.trim_start_matches(['<', '&', '*']);
    let f = f
        .trim_start_matches("mut ")
        .trim_start_matches("const ")
        .trim_start_matches("dyn ");
    let head_end = f.find(|c: char| !(c.is_alphanumeric() || c == '_'))?;
    let head = &f[..head_end];
    if f[head_end..].starts_with("::") {
        return Some(head);
    }
    // `<T as krate::Trait>::method`: the trait's crate.
    let as_at = f.find(" as ")?;
    crate_of(&f[as_at + 4..])
}

/// Whether `function` is the application's code.
fn is_app(function: &str) -> bool {
    match crate_of(function) {
        Some(krate) => {
            !(NOT_APP.contains(&krate) || krate.starts_with("strata_") || krate.starts_with("__"))
        }
        None => false,
    }
}

/// Whether a frame whose source is `file` is code of a library that is not the application's,
/// inlined into an application function (like the closure a `tracing` macro or
/// `strata_core::log_error!` expands to): the standard library's sources, or a file under the
/// `src` folder of a crate of [`NOT_APP`] or a strata crate — in Cargo's registry
/// (`tracing-0.1.44/src/…`), vendored, or a path dependency (`crates/strata-core/src/…`).
fn is_foreign_file(file: &std::path::Path) -> bool {
    let Some(path) = file.to_str() else {
        return false;
    };
    if path.starts_with("/rustc/") || path.contains("/lib/rustlib/src/") {
        return true;
    }
    let parts: SmallVec<[&str; 16]> = path.split(['/', '\\']).collect();
    parts.windows(2).any(|w| {
        if w[1] != "src" {
            return false;
        }
        // `name-1.2.3` → `name`; dashes → underscores.
        let dir = match w[0].rsplit_once('-') {
            Some((name, version)) if version.starts_with(|c: char| c.is_ascii_digit()) => name,
            _ => w[0],
        };
        let name = dir.replace('-', "_");
        NOT_APP.contains(&name.as_str()) || name.starts_with("strata_")
    })
}

/// The application's frames of a backtrace printed by `std::backtrace::Backtrace` (the text
/// strata-capture's panic hook puts in a line's `backtrace` field): `  N: function` lines, each
/// optionally followed by `at file:line:column`. Innermost first, the standard library, the
/// runtime and the logging machinery left out, at most twelve; borrowed from `text`.
///
/// ```
/// let text = "   0: std::panicking::begin_panic\n             at /rustc/abc/library/std/src/panicking.rs:1:1\n   1: shop::orders::place\n             at src/orders.rs:41:5\n   2: tokio::runtime::task::raw::poll\n";
/// let frames = strata_console::backtrace_frames(text);
/// assert_eq!(frames.len(), 1);
/// assert_eq!(frames[0].function, "shop::orders::place");
/// assert_eq!((frames[0].file, frames[0].line), (Some("src/orders.rs"), Some(41)));
/// ```
pub fn backtrace_frames(text: &str) -> Vec<Frame<'_>> {
    let mut out: Vec<Frame<'_>> = Vec::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let Some((index, function)) = line.trim_start().split_once(": ") else {
            continue;
        };
        if index.is_empty() || !index.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let mut file = None;
        let mut at_line = None;
        if let Some(at) = lines
            .peek()
            .and_then(|l| l.trim_start().strip_prefix("at "))
        {
            lines.next();
            // `file:line:column`; a file name may itself hold colons.
            let mut parts = at.rsplitn(3, ':');
            let (col, ln, path) = (parts.next(), parts.next(), parts.next());
            match (path, ln.and_then(|l| l.parse().ok()), col) {
                (Some(p), Some(l), Some(_)) => {
                    file = Some(p);
                    at_line = Some(l);
                }
                _ => file = Some(at),
            }
        }
        let function = function.trim();
        if !is_app(function) || file.is_some_and(|f| is_foreign_file(std::path::Path::new(f))) {
            continue;
        }
        out.push(Frame {
            function,
            file,
            line: at_line,
        });
        if out.len() == MAX_FRAMES {
            break;
        }
    }
    out
}

/// The application's frames of the current stack, innermost first, at most [`MAX_FRAMES`].
pub(crate) fn capture() -> Vec<OwnedFrame> {
    let cwd = std::env::current_dir().ok();
    let mut out: Vec<OwnedFrame> = Vec::new();
    backtrace::trace(|frame| {
        backtrace::resolve_frame(frame, |symbol| {
            if out.len() >= MAX_FRAMES {
                return;
            }
            let Some(name) = symbol.name() else { return };
            let function = format!("{name:#}");
            if !is_app(&function) {
                return;
            }
            if symbol.filename().is_some_and(is_foreign_file) {
                return;
            }
            let file = symbol.filename().map(|p| {
                cwd.as_deref()
                    .and_then(|cwd| p.strip_prefix(cwd).ok())
                    .unwrap_or(p)
                    .display()
                    .to_string()
            });
            out.push(OwnedFrame {
                function,
                file,
                line: symbol.lineno(),
            });
        });
        out.len() < MAX_FRAMES
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_attributed_to_crates() {
        for (f, want) in [
            ("shop::orders::place", Some("shop")),
            ("shop::orders::place::{{closure}}", Some("shop")),
            ("<shop::Order as core::fmt::Display>::fmt", Some("shop")),
            (
                "<alloc::boxed::Box<F,A> as core::ops::function::FnOnce<Args>>::call_once",
                Some("alloc"),
            ),
            ("<T as shop::Describe>::describe", Some("shop")),
            ("<&mut T as core::fmt::Write>::write_str", Some("core")),
            ("main", None),
            ("__libc_start_main", None),
        ] {
            assert_eq!(crate_of(f), want, "{f}");
        }
        assert!(is_app("shop::orders::place"));
        assert!(!is_app("std::rt::lang_start"));
        assert!(!is_app(
            "<strata_console::ConsoleLayer as tracing_subscriber::layer::Layer<S>>::on_event"
        ));
        assert!(!is_app("tracing_core::event::Event::dispatch"));
        assert!(!is_app("strata_core::error::with_error_type"));
        assert!(!is_app("tokio::runtime::task::harness::poll"));
        assert!(!is_app("main"));
        for (file, foreign) in [
            (
                "/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/tracing-0.1.44/src/macros.rs",
                true,
            ),
            (
                "/home/u/.cargo/registry/src/index.crates.io-6f17d22bba15001f/tracing-core-0.1.35/src/event.rs",
                true,
            ),
            (
                "/home/u/.cargo/registry/src/index.crates.io-6f17d22bba15001f/serde_json-1.0.1/src/de.rs",
                false,
            ),
            (
                "/home/u/.cargo/git/checkouts/strata-1a2b3c/abc1234/src/lib.rs",
                false,
            ),
            (
                "/rustc/59807616e1fa2540724bfbac14d7976d7e4a3860/library/core/src/ops/function.rs",
                true,
            ),
            ("src/orders.rs", false),
            ("/work/main/crates/strata-core/src/error.rs", true),
            ("/work/shop/vendor/tokio/src/runtime/mod.rs", true),
            ("/work/shop/crates/shop-core/src/lib.rs", false),
            (
                "C:\\Users\\u\\.cargo\\registry\\src\\idx\\tracing-0.1.44\\src\\macros.rs",
                true,
            ),
        ] {
            assert_eq!(
                is_foreign_file(std::path::Path::new(file)),
                foreign,
                "{file}"
            );
        }
    }
}
