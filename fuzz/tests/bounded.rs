//! A bounded run of every fuzz target, so `cargo test` (and `cargo xtask test`) exercises them.
//!
//! Each target runs a fixed number of iterations with a fixed seed: the run is deterministic, and
//! a failure prints the seed, iteration and input to replay with
//! `cargo run -p cellvisor-fuzz -- --target NAME --seed S --replay I`.

use cellvisor_fuzz::{Budget, target};

/// Seed of the bounded runs.
const SEED: u64 = 0x5eed;

fn bounded(name: &str, iterations: u64) {
    let target = target(name).unwrap_or_else(|| panic!("no target {name}"));
    if let Err(failure) = target.run(SEED, Budget::Iterations(iterations)) {
        panic!("{failure}");
    }
}

#[test]
fn esr() {
    bounded("esr", 50_000);
}

#[test]
fn mmio() {
    bounded("mmio", 50_000);
}

#[test]
fn smccc_psci() {
    bounded("smccc-psci", 20_000);
}

#[test]
fn inject() {
    bounded("inject", 50_000);
}

#[test]
fn vuart() {
    bounded("vuart", 20_000);
}

#[test]
fn console() {
    bounded("console", 20_000);
}

#[test]
fn vgic() {
    bounded("vgic", 5_000);
}

#[test]
fn bundle() {
    bounded("bundle", 20_000);
}

#[test]
fn platform() {
    bounded("platform", 5_000);
}

#[test]
fn guest_fdt() {
    bounded("guest-fdt", 20_000);
}

#[test]
fn partition() {
    bounded("partition", 20_000);
}

#[test]
fn image() {
    bounded("image", 50_000);
}

#[test]
fn virtio() {
    bounded("virtio", 20_000);
}

#[test]
fn vsock() {
    bounded("vsock", 20_000);
}
