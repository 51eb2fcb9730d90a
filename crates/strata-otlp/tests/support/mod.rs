//! Shared by the integration tests.
#![allow(dead_code)] // each test binary uses its own part

use std::io::Write;
use std::sync::{Arc, Mutex};

use tracing_subscriber::prelude::*;

/// An in-memory writer for strata-json lines.
#[derive(Clone, Default)]
pub(crate) struct Buf(pub(crate) Arc<Mutex<Vec<u8>>>);

impl Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Buf {
    /// The JSON lines written so far, parsed.
    pub(crate) fn lines(&self) -> Vec<serde_json::Value> {
        String::from_utf8(self.0.lock().unwrap().clone())
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

/// A subscriber with strata's span store, `otlp`'s layer and strata-json lines written to the
/// returned buffer.
pub(crate) fn with_json_lines(
    otlp: &strata_otlp::OtlpGuard,
) -> (impl tracing::Subscriber + Send + Sync + 'static, Buf) {
    let buf = Buf::default();
    let out = buf.clone();
    let subscriber = tracing_subscriber::registry()
        .with(strata_core::StoreLayer::default())
        .with(otlp.layer())
        .with(strata_json::layer().with_writer(move || out.clone()));
    (subscriber, buf)
}
