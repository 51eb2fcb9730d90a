//! Prints the same event in every preset (the documentation's sample lines come from here).
//!
//! Run with `cargo run -p strata-json --example sample`.
use strata_core::store::{SpanFields, TraceContext};
use strata_json::Preset;
use tracing::span::{Attributes, Id};
use tracing_subscriber::layer::Context;
use tracing_subscriber::prelude::*;
use tracing_subscriber::registry::LookupSpan;

/// Sets a fixed trace context on every span, standing in for the OpenTelemetry layer.
struct FixedTrace;

impl<S: tracing::Subscriber + for<'a> LookupSpan<'a>> tracing_subscriber::Layer<S> for FixedTrace {
    fn on_new_span(&self, _: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let span = ctx.span(id).expect("new span exists");
        if let Some(f) = span.extensions_mut().get_mut::<SpanFields>() {
            f.set_trace_context(TraceContext::new(
                0x4bf92f3577b34da6a3ce929d0e0e4736_u128.to_be_bytes(),
                0x00f067aa0ba902b7_u64.to_be_bytes(),
                true,
            ));
        }
    }
}

fn main() {
    for preset in [
        Preset::Default,
        Preset::Ecs,
        Preset::Gcp,
        Preset::OpenTelemetry,
    ] {
        let layer = strata_json::layer()
            .with_preset(preset)
            .with_service("payment_api")
            .with_env("production")
            .with_version("1.4.2")
            .with_gcp_project("my-proj");
        let sub = tracing_subscriber::registry().with(layer).with(FixedTrace);
        tracing::subscriber::with_default(sub, || {
            let span =
                tracing::info_span!("request", request_id = "0193a5c2", user_id = 314159_u64);
            let _e = span.enter();
            tracing::info!(
                target: "payments::charge",
                event = "charge_created",
                duration_ms = 142,
                "Payment successful"
            );
        });
    }
}
