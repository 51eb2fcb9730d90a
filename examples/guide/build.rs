//! The guide has nineteen programs, each linking all of strata: with the DWARF debug info of
//! every dependency a debug build of each is over 400 MB. They (and the test that runs them)
//! are linked without it — the symbol table stays, so backtraces still name functions, without
//! file and line — which keeps the whole guide under 1 GB. Your own service needs none of this.

fn main() {
    println!("cargo:rustc-link-arg-bins=-Wl,--strip-debug");
    println!("cargo:rustc-link-arg-tests=-Wl,--strip-debug");
}
