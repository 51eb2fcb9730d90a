//! The facade: settings precedence, typed errors, one global install, the guard.
//!
//! Environment variables are process-wide, so every check that touches them runs in this one
//! test, in order.

use strata::{InitError, builder};

fn clear_env() {
    for k in [
        strata::ENV_SERVICE,
        strata::ENV_ENV,
        strata::ENV_VERSION,
        strata::ENV_FILTER,
    ] {
        // SAFETY: this test binary has a single test; no other thread reads the environment.
        unsafe { std::env::remove_var(k) };
    }
}

fn set(k: &str, v: &str) {
    // SAFETY: as above.
    unsafe { std::env::set_var(k, v) };
}

#[test]
fn settings_precedence_errors_and_install() {
    clear_env();
    let s = builder().resolve().unwrap();
    assert_eq!(s.env, "development");
    assert_eq!(s.filter, "info");
    assert_eq!(s.filter_setting, "default");
    assert_eq!(s.version, None);
    assert!(s.service.starts_with("init"), "binary name: {}", s.service);

    // environment beats defaults
    set(strata::ENV_SERVICE, "billing");
    set(strata::ENV_ENV, "production");
    set(strata::ENV_VERSION, "2.1.0");
    set(strata::ENV_FILTER, "warn,billing=debug");
    let s = builder().with_default_filter("trace").resolve().unwrap();
    assert_eq!(
        (s.service.as_str(), s.env.as_str()),
        ("billing", "production")
    );
    assert_eq!(s.version.as_deref(), Some("2.1.0"));
    assert_eq!(
        (s.filter.as_str(), s.filter_setting),
        ("warn,billing=debug", "RUST_LOG")
    );

    // code beats environment
    let s = builder()
        .with_service("api")
        .with_env("staging")
        .with_filter("error")
        .resolve()
        .unwrap();
    assert_eq!(
        (s.service.as_str(), s.env.as_str(), s.filter.as_str()),
        ("api", "staging", "error")
    );

    // bad values are typed errors naming the setting and the value
    set(strata::ENV_FILTER, "info,[unclosed");
    match builder().resolve() {
        Err(InitError::InvalidFilter { setting, value, .. }) => {
            assert_eq!(setting, "RUST_LOG");
            assert_eq!(value, "info,[unclosed");
        }
        other => panic!("expected InvalidFilter, got {other:?}"),
    }
    set(strata::ENV_FILTER, "info");
    set(strata::ENV_SERVICE, "bad\u{1b}[31mname");
    let err = builder().resolve().unwrap_err();
    assert!(
        matches!(
            err,
            InitError::InvalidSetting {
                setting: "STRATA_SERVICE",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("STRATA_SERVICE"));
    clear_env();
    let long = "x".repeat(300);
    let err = builder().with_version(long).resolve().unwrap_err();
    assert!(
        matches!(&err, InitError::InvalidSetting { setting: "Builder::with_version", value, .. } if value.len() < 100),
        "{err:?}"
    );

    // installs once; the second attempt says why it failed
    let guard = builder()
        .with_service("init-test")
        .try_init()
        .expect("first install");
    assert_eq!(guard.settings().service, "init-test");
    tracing::info!("logged through the facade");
    let err = strata::try_init().unwrap_err();
    assert!(matches!(err, InitError::AlreadyInitialized(_)), "{err:?}");
    guard.flush();
    drop(guard);
}
