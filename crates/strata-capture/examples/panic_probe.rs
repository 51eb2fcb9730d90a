//! The panic tests' child as a program of its own, for a build with a real `panic = "abort"`
//! (`cargo build --profile panic-abort -p strata-capture --example panic_probe`, as
//! `scripts/test.sh` does): `panic_probe MODE DIR`.

#[path = "../tests/support/panic_child.rs"]
mod panic_child;

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(mode), Some(dir)) = (args.next(), args.next()) else {
        eprintln!("usage: panic_probe main|thread|task|debug DIR");
        std::process::exit(2);
    };
    panic_child::run(&mode, &dir);
}
