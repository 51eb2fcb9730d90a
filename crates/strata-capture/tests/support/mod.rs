//! Shared by the integration tests.

pub(crate) mod panic_child;
