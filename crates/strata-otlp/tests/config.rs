//! Settings from the environment, in a test binary of their own (the environment is
//! process-wide).

use strata_otlp::Otlp;

#[test]
fn a_bad_protocol_is_a_typed_error_naming_the_setting() {
    // SAFETY: the only test in this process; nothing else reads the environment meanwhile.
    unsafe { std::env::set_var("OTEL_EXPORTER_OTLP_PROTOCOL", "carrier-pigeon") };
    let err = Otlp::new().start().unwrap_err();
    unsafe { std::env::remove_var("OTEL_EXPORTER_OTLP_PROTOCOL") };
    assert!(
        err.to_string().contains("OTEL_EXPORTER_OTLP_PROTOCOL"),
        "{err}"
    );
    assert!(err.to_string().contains("carrier-pigeon"), "{err}");
    let err = Otlp::new()
        .with_endpoint("localhost:4317")
        .start()
        .unwrap_err();
    assert!(err.to_string().contains("endpoint"), "{err}");
}
