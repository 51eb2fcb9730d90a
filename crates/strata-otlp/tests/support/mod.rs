//! Shared by the integration tests.

use std::io::Write;
use std::sync::{Arc, Mutex};

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
