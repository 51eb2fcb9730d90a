//! Handlers and rotation: one event, several destinations. JSON lines on standard output for
//! the platform to collect (containers), every line from INFO in a file rotated by size and
//! by day with old files removed, and errors as text on standard error.
//!
//! Run with `cargo run -p example-guide --bin rotation`; the files are in `logs/` of the
//! directory it prints.

use strata::router::RouterConfig;
use tracing::{error, info};

fn main() {
    let dir = example_guide::workdir("rotation");
    let routes = RouterConfig::from_toml(
        r#"
        # Every line from INFO to logs/app.log, behind a non-blocking writer: a new file past
        # 4 KB (50MB in real life) and at midnight, 3 old files kept.
        [[route]]
        sink = "file"
        dir = "logs"
        prefix = "app"
        max_size = "4KB"
        rotation = "daily"
        keep_files = 3

        # ERROR and CRITICAL as text on standard error, for whoever watches the console.
        [[route]]
        sink = "stderr"
        format = "text"
        min_level = "error"
        "#,
    )
    .expect("valid routes");
    let mut builder = strata::builder().with_service("shop").with_router(routes);
    if std::env::var_os("STRATA_ENV").is_none() {
        builder = builder.with_profile(strata::Profile::Staging);
    }
    let guard = builder.init();

    for order_id in 1..=100_u64 {
        info!(
            event = "order_placed",
            order_id,
            amount_cents = 1999,
            "Order placed"
        );
    }
    error!(order_id = 101_u64, "Email send failed");
    // Dropping the guard flushes the file's writer (and every other output).
    drop(guard);

    let mut files: Vec<_> = std::fs::read_dir(dir.join("logs"))
        .expect("the log directory")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    files.sort();
    eprintln!("[guide] logs/ after 101 lines:");
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap_or_default();
        eprintln!(
            "[guide]   {:<40} {:>5} bytes {:>3} lines",
            f.file_name().unwrap_or_default().to_string_lossy(),
            text.len(),
            text.lines().count()
        );
    }
    eprintln!(
        "[guide] look at: app.log is the file being written (tail -F follows it); rotated files \
         are named by time, none over 4 KB, only the 3 newest kept; the ERROR line was also \
         written as text on standard error"
    );
}
