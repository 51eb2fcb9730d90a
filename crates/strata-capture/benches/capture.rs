//! Benchmarks of strata-capture (in progress).

fn main() {}
