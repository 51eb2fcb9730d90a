//! The library behind the `strata` command (`src/main.rs` is its command line).
//!
//! Only the `strata pretty` log reader is public: the line renderer the binary streams its
//! input through, and that the fuzz targets (`fuzz/` in the repository) call one line at a
//! time. Everything else the command does lives in the binary.
//!
//! ```
//! use strata_cli::pretty::{self, Options};
//! use strata_console::Style;
//!
//! let opts = Options::new(Style::new().with_color(false).with_time(false), true);
//! let line = br#"{"level":"INFO","target":"shop","message":"order placed","order_id":42}"#;
//! let mut out = Vec::new();
//! assert!(pretty::format_line(line, line.len(), &opts, &mut out));
//! assert_eq!(out, b" INFO shop: order placed  order_id=42\n");
//! ```

pub mod pretty;
mod record;
