//! `cargo xtask`: build, run, test and bench cellvisor.
fn main() {}
