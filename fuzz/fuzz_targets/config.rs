//! The configuration file parser: `strata::builder().with_config_file(path).resolve()` on
//! arbitrary `strata.toml` files (the facade reads from a file only: each input is written to
//! a file in /dev/shm first), with every strata feature on, as `strata config check` has.
//!
//! Properties:
//! - never a panic: `Ok`, or `InitError::Config` with a `ConfigError` that names the file
//!   and, for a bad value or an unknown key, the key; a syntax error's line is in the file;
//!   no error comes from elsewhere (the environment is emptied of strata's variables);
//! - the messages (but for tabs in values they quote) and the resolved configuration's
//!   `Display` (what `strata config check` prints) hold no raw control character but
//!   newlines; every line of the `Display` is a
//!   comment, a `[section]`, a `[[router.route]]` or `key = value  # origin`, and the whole
//!   parses as TOML.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use strata::InitError;
use strata::config::{ConfigError, Source};

/// The file each input is written to, in memory; the environment emptied of what strata
/// reads, once.
fn path() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy();
            if k.starts_with("STRATA_")
                || k.starts_with("OTEL_")
                || ["RUST_LOG", "SENTRY_DSN", "NO_COLOR", "CLICOLOR_FORCE"].contains(&&*k)
            {
                // SAFETY: single-threaded here: the first input, before strata runs.
                unsafe { std::env::remove_var(&*k) };
            }
        }
        let shm = PathBuf::from("/dev/shm");
        let base = if shm.is_dir() {
            shm
        } else {
            std::env::temp_dir()
        };
        let dir = base.join(format!("strata-fuzz-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a scratch directory");
        dir.join("strata.toml")
    })
}

/// No control character but newlines and, when `tabs`, tabs (TOML's literal strings, which
/// errors quote values with, may hold them).
fn no_controls(text: &str, what: &str, tabs: bool) {
    assert!(
        !text
            .chars()
            .any(|c| c.is_control() && c != '\n' && !(tabs && c == '\t')),
        "raw control character in {what}: {text:?}"
    );
}

fn check_error(e: &ConfigError, path: &PathBuf, data: &[u8]) {
    let shown = e.to_string();
    let file = path.display().to_string();
    match e {
        ConfigError::Invalid { key, origin, .. } => {
            assert!(!key.is_empty() && shown.contains(key.as_str()), "{shown}");
            assert_eq!(origin, &Source::File(path.clone()), "{shown}");
            assert!(shown.contains(&file), "{shown}");
        }
        ConfigError::UnknownKey {
            key,
            file: f,
            expected,
            suggestion,
        } => {
            assert_eq!(f, path);
            assert!(
                shown.contains(key.as_str()) && shown.contains(&file),
                "{shown}"
            );
            if let Some(s) = suggestion {
                assert!(expected.split(", ").any(|k| k == s), "{shown}");
            }
        }
        ConfigError::Syntax { file: f, line, .. } => {
            assert_eq!(f, path);
            assert!(shown.contains(&file), "{shown}");
            let lines = data.iter().filter(|&&b| b == b'\n').count() + 1;
            assert!(
                (1..=lines).contains(line),
                "line {line} of {lines}: {shown}"
            );
        }
        ConfigError::Read { file: f, .. } => {
            // Only a file that is not UTF-8 cannot be read here.
            assert_eq!(f, path);
            assert!(std::str::from_utf8(data).is_err(), "{shown}");
        }
        other => panic!("unexpected error {other:?}"),
    }
    no_controls(&shown, "the error", true);
}

fn check_config(config: &strata::config::Config, path: &PathBuf) {
    assert_eq!(config.file.as_ref(), Some(path));
    let shown = config.to_string();
    no_controls(&shown, "the configuration", false);
    for line in shown.lines() {
        let ok = line.is_empty()
            || line.starts_with('#')
            || line.starts_with("[[router.route]]")
            || (line.starts_with('[') && line.ends_with(']'))
            || (line.contains(" = ") && line.contains("  # "));
        assert!(ok, "odd line {line:?} in\n{shown}");
    }
    if let Err(e) = shown.parse::<toml::Table>() {
        panic!("the configuration shown is not TOML: {e}\n{shown}");
    }
}

fuzz_target!(|data: &[u8]| {
    let path = path();
    std::fs::write(path, data).expect("the scratch file is written");
    match strata::builder().with_config_file(path).resolve() {
        Ok(config) => check_config(&config, path),
        Err(InitError::Config(e)) => check_error(&e, path, data),
        Err(other) => panic!("not a configuration error: {other:?}"),
    }
});
